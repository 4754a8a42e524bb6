// The reference agent's Prometheus metrics: requests by route and status, in-flight, latency, process CPU/memory.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface AgentMetrics {
  registry: Registry;
  requests: Counter<'route' | 'code'>;
  inflight: Gauge;
  duration: Histogram<'route'>;
}

export function createAgentMetrics(agentId: string): AgentMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ agent_id: agentId });
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    requests: new Counter({
      name: 'yggdrasil_agent_requests_total',
      help: 'Requests served by the agent, by route and HTTP status code.',
      labelNames: ['route', 'code'],
      registers: [registry],
    }),
    inflight: new Gauge({
      name: 'yggdrasil_agent_inflight_requests',
      help: 'Requests being processed by the agent now.',
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'yggdrasil_agent_request_duration_seconds',
      help: 'Time the agent took to answer, by route.',
      labelNames: ['route'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
  };
}
