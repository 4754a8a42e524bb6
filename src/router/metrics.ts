// The router's Prometheus metrics: requests and latency, in-flight per instance, queue depth and wait,
// session affinity, retries and circuit breakers. Labels stay bounded: instance ids (≤ MAX_INSTANCES),
// status codes and small enums, never paths or session ids.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from './hot-metrics.js';
import type { UpstreamSet } from './upstreams.js';

export interface RouterMetricsSource {
  upstreams: UpstreamSet;
  queueLength: () => number;
  queueLimit: number;
  now: () => number;
  /** Bytes the response cache holds (0 when it is off). */
  cacheBytes?: () => number;
}

const BREAKER_VALUE = { closed: 0, 'half-open': 1, open: 2 } as const;
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export function createRouterMetrics(source: RouterMetricsSource, registry = new Registry()) {
  new Gauge({
    name: 'yggdrasil_router_inflight_requests',
    help: 'Requests the router has in flight at each instance.',
    labelNames: ['instance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const u of source.upstreams.all()) this.set({ instance: u.id }, u.inflight);
    },
  });
  new Gauge({
    name: 'yggdrasil_router_queue_depth',
    help: 'Requests waiting for a free slot because every instance is at MAX_CONCURRENCY.',
    registers: [registry],
    collect() {
      this.set(source.queueLength());
    },
  });
  new Gauge({
    name: 'yggdrasil_router_queue_limit',
    help: 'QUEUE_MAX: most requests that may wait for a slot.',
    registers: [registry],
    collect() {
      this.set(source.queueLimit);
    },
  });
  new Gauge({
    name: 'yggdrasil_router_breaker_state',
    help: 'Circuit breaker per instance: 0 closed, 1 half-open, 2 open.',
    labelNames: ['instance'],
    registers: [registry],
    collect() {
      this.reset();
      const now = source.now();
      for (const u of source.upstreams.all())
        this.set({ instance: u.id }, BREAKER_VALUE[u.breaker.state(now)]);
    },
  });
  new Gauge({
    name: 'yggdrasil_router_cache_bytes',
    help: 'Bytes of answers the response cache holds (RESPONSE_CACHE_BYTES is its room).',
    registers: [registry],
    collect() {
      this.set(source.cacheBytes?.() ?? 0);
    },
  });
  return {
    registry,
    compressed: new Counter({
      name: 'yggdrasil_router_compressed_responses_total',
      help: 'Answers the router compressed (COMPRESSION=on), by coding.',
      labelNames: ['encoding'],
      registers: [registry],
    }),
    cache: new Counter({
      name: 'yggdrasil_router_cache_total',
      help: 'Response cache: hit (answered from it), miss (looked up, not there), stored (an answer kept).',
      labelNames: ['result'],
      registers: [registry],
    }),
    // The three observed on every request are hot metrics (hot-metrics.ts): the same series, cheaper.
    requests: new HotCounter(
      'yggdrasil_router_requests_total',
      'Requests answered by the router, by instance ("none" when no instance was reached) and status code.',
      ['instance', 'code'],
      registry,
    ),
    duration: new HotHistogram(
      'yggdrasil_router_request_duration_seconds',
      'Time from the request reaching the router to the end of its answer (queue wait included), by instance.',
      ['instance'],
      LATENCY_BUCKETS,
      registry,
    ),
    ttfb: new HotHistogram(
      'yggdrasil_router_time_to_first_byte_seconds',
      "Time from the request reaching the router to the instance's answer starting (queue wait included), by instance: the latency SLO (a stream's length is not latency).",
      ['instance'],
      LATENCY_BUCKETS,
      registry,
    ),
    backgroundErrors: new Counter({
      name: 'yggdrasil_router_background_errors_total',
      help: 'Errors of the router’s background work (queue sweep, stall checks, session sweep, body deadlines), by task: each is logged.',
      labelNames: ['loop'],
      registers: [registry],
    }),
    clientRequests: new HotCounter(
      'yggdrasil_router_client_requests_total',
      'Proxied requests by tenant (the client key’s name; "anonymous" for clients known by address) and outcome (admitted, rate_limited, inflight_limited, sessions_limited, unauthorized), when a per-client rule is on.',
      ['tenant', 'outcome'],
      registry,
    ),
    stalls: new Counter({
      name: 'yggdrasil_router_stalls_total',
      help: 'Times an instance was ejected because its requests waited for an answer far longer than the pool usually takes (OUTLIER_STALL_MS).',
      labelNames: ['instance'],
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: 'yggdrasil_router_queue_wait_seconds',
      help: 'Time queued requests waited for a slot.',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    queueRejections: new Counter({
      name: 'yggdrasil_router_queue_rejections_total',
      help: 'Requests refused with 503 while waiting for a slot: queue full, wait timed out, or no instance ready or starting.',
      labelNames: ['reason'],
      registers: [registry],
    }),
    affinity: new Counter({
      name: 'yggdrasil_router_session_affinity_total',
      help: 'Session routing: hit (stayed on its instance), new (first request), moved (its instance was gone).',
      labelNames: ['result'],
      registers: [registry],
    }),
    retries: new Counter({
      name: 'yggdrasil_router_retries_total',
      help: 'Requests retried on another instance, by reason.',
      labelNames: ['reason'],
      registers: [registry],
    }),
    breakerTransitions: new Counter({
      name: 'yggdrasil_router_breaker_transitions_total',
      help: 'Circuit breaker state changes, by instance and new state.',
      labelNames: ['instance', 'to'],
      registers: [registry],
    }),
  };
}

export type RouterMetrics = ReturnType<typeof createRouterMetrics>;
