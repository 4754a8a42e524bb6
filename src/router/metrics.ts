// The router's Prometheus metrics: requests and latency per instance, in-flight per instance.
// Labels stay bounded: instance ids (≤ MAX_INSTANCES) and status codes, never paths or session ids.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { UpstreamSet } from './upstreams.js';

export function createRouterMetrics(upstreams: UpstreamSet, registry = new Registry()) {
  new Gauge({
    name: 'yggdrasil_router_inflight_requests',
    help: 'Requests the router has in flight at each instance.',
    labelNames: ['instance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const u of upstreams.all()) this.set({ instance: u.id }, u.inflight);
    },
  });
  return {
    registry,
    requests: new Counter({
      name: 'yggdrasil_router_requests_total',
      help: 'Requests answered by the router, by instance ("none" when no instance was reached) and status code.',
      labelNames: ['instance', 'code'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'yggdrasil_router_request_duration_seconds',
      help: 'Time from the request reaching the router to the end of its answer.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [registry],
    }),
  };
}

export type RouterMetrics = ReturnType<typeof createRouterMetrics>;
