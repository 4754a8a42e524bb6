// The controller's Prometheus metrics: pool size and states, restarts and failures, per-instance CPU/memory,
// cold-start time. Gauges read the controller's state at scrape time, so removed instances disappear.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { InstanceState } from './instance.js';
import { CRASH_LOOP_THRESHOLD } from './restart-backoff.js';

export interface InstanceSample {
  id: string;
  state: InstanceState;
  /** Consecutive crashes (CRASH_LOOP_THRESHOLD or more: crash-looping). */
  crashes?: number;
  cpu?: number;
  memoryBytes?: number;
}

export interface ControllerMetricsSource {
  desired(): number;
  limits(): { min: number; max: number };
  instances(): InstanceSample[];
}

const STATES: InstanceState[] = ['starting', 'ready', 'draining', 'stopped', 'failed'];

export function createControllerMetrics(source: ControllerMetricsSource, registry = new Registry()) {
  collectDefaultMetrics({ register: registry, prefix: 'yggdrasil_controller_' });
  new Gauge({
    name: 'yggdrasil_instances',
    help: 'Instances in the pool, by state.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const counts = new Map<string, number>(STATES.map((s) => [s, 0]));
      for (const i of source.instances()) counts.set(i.state, (counts.get(i.state) ?? 0) + 1);
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'yggdrasil_desired_instances',
    help: 'Instances the controller wants (autoscaler decision clamped to MIN/MAX_INSTANCES).',
    registers: [registry],
    collect() {
      this.set(source.desired());
    },
  });
  new Gauge({
    name: 'yggdrasil_instances_limit',
    help: 'MIN_INSTANCES and MAX_INSTANCES.',
    labelNames: ['bound'],
    registers: [registry],
    collect() {
      const { min, max } = source.limits();
      this.set({ bound: 'min' }, min);
      this.set({ bound: 'max' }, max);
    },
  });
  new Gauge({
    name: 'yggdrasil_instance_up',
    help: '1 when the instance is ready, 0 otherwise.',
    labelNames: ['instance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of source.instances()) this.set({ instance: i.id }, i.state === 'ready' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'yggdrasil_instance_crash_looping',
    help: '1 while the instance is crash-looping (restarted with backoff after repeated crashes).',
    labelNames: ['instance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of source.instances())
        this.set({ instance: i.id }, (i.crashes ?? 0) >= CRASH_LOOP_THRESHOLD ? 1 : 0);
    },
  });
  new Gauge({
    name: 'yggdrasil_instance_cpu_cores',
    help: 'CPU used by the instance, in cores (1 = one full core).',
    labelNames: ['instance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of source.instances()) if (i.cpu !== undefined) this.set({ instance: i.id }, i.cpu);
    },
  });
  new Gauge({
    name: 'yggdrasil_instance_memory_bytes',
    help: 'Resident memory of the instance.',
    labelNames: ['instance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const i of source.instances())
        if (i.memoryBytes !== undefined) this.set({ instance: i.id }, i.memoryBytes);
    },
  });
  return {
    registry,
    restarts: new Counter({
      name: 'yggdrasil_instance_restarts_total',
      help: 'Restarts of instances after a crash or failed health checks.',
      labelNames: ['instance'],
      registers: [registry],
    }),
    failures: new Counter({
      name: 'yggdrasil_instance_failures_total',
      help: 'Instance failures, by reason (exit, health, startup, start_error, outlier).',
      labelNames: ['reason'],
      registers: [registry],
    }),
    scalingEvents: new Counter({
      name: 'yggdrasil_scaling_events_total',
      help: 'Changes of the desired instance count, by direction (up, down) and reason.',
      labelNames: ['direction', 'reason'],
      registers: [registry],
    }),
    backgroundErrors: new Counter({
      name: 'yggdrasil_controller_background_errors_total',
      help: 'Errors of background tasks (reconcile, health checks, starts, stops, usage), by task: each is logged.',
      labelNames: ['loop'],
      registers: [registry],
    }),
    coldStart: new Histogram({
      name: 'yggdrasil_instance_cold_start_seconds',
      help: 'Time from asking the runtime for an instance to its first healthy answer.',
      buckets: [0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10, 30],
      registers: [registry],
    }),
  };
}

export type ControllerMetrics = ReturnType<typeof createControllerMetrics>;
