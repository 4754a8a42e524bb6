// Runs the KPA decider against the live system: samples the router's concurrency (in-flight + queued)
// and the instances' CPU, decides every SCALE_INTERVAL_MS, and sets the controller's desired count.
// Also answers the activator: a request waiting with no instance ready triggers a decision at once.
import { Gauge, type Registry } from 'prom-client';
import { KpaAutoscaler, type ScaleDecision } from '../autoscaler/kpa.js';
import type { BackgroundErrorHandler } from '../core/background.js';
import { type Cancel, type Clock, loopOn, systemClock } from '../core/clock.js';

/** What the loop drives, declared here by the loop: the controller, or anything that sizes a pool. */
export interface ScaleTarget {
  readyCount(): number;
  /** CPU (cores) of each ready instance, when sampled. */
  usageOfReady(): ReadonlyArray<{ cpu: number | undefined }>;
  setDesired(count: number, reason: string, data: Record<string, unknown>): void;
}

export interface AutoscaleLoopOptions {
  target: ScaleTarget;
  /** Where the loop's gauges are registered. */
  registry: Registry;
  /** Where errors of the loop's timers go. */
  onError: BackgroundErrorHandler;
  /** In-flight plus queued requests across the pool, now (summed over every router). */
  concurrency: () => number;
  /** False while the loop may not scale (the shared state is unreachable): no decisions are made. */
  mayScale?: () => boolean;
  /** Time and timers (tests pass a FakeClock). @default systemClock */
  clock?: Clock;
  minInstances: number;
  maxInstances: number;
  maxConcurrency: number;
  targetUtilization: number;
  /** 0 turns the CPU signal off. */
  targetCpu: number;
  /** CPU limit of one instance, in cores (the CPU signal is a share of it). */
  cpuLimitCores: number;
  stableWindowMs: number;
  panicWindowMs: number;
  scaleIntervalMs: number;
  scaleToZeroGraceMs: number;
}

export interface AutoscalerStatus {
  targetPerInstance: number;
  lastDecision: (ScaleDecision & { at: string }) | null;
}

export class AutoscaleLoop {
  private readonly kpa: KpaAutoscaler;
  private readonly timers: Cancel[] = [];
  private last: (ScaleDecision & { at: string }) | null = null;
  readonly targetPerInstance: number;
  private readonly sampleEveryMs: number;

  private readonly clock: Clock;

  constructor(private readonly opts: AutoscaleLoopOptions) {
    this.clock = opts.clock ?? systemClock;
    this.targetPerInstance = opts.maxConcurrency * opts.targetUtilization;
    // Several samples per bucket: the panic window keeps six buckets.
    this.sampleEveryMs = Math.max(20, Math.min(250, Math.floor(opts.panicWindowMs / 24)));
    this.kpa = new KpaAutoscaler({
      minInstances: opts.minInstances,
      maxInstances: opts.maxInstances,
      targetPerInstance: this.targetPerInstance,
      stableWindowMs: opts.stableWindowMs,
      panicWindowMs: opts.panicWindowMs,
      scaleToZeroGraceMs: opts.scaleToZeroGraceMs,
      ...(opts.targetCpu > 0 ? { targetCpu: opts.targetCpu } : {}),
    });
    const registry = opts.registry;
    const self = this;
    new Gauge({
      name: 'yggdrasil_autoscaler_observed_concurrency',
      help: 'Average concurrency (in-flight + queued) the autoscaler saw, by window.',
      labelNames: ['window'],
      registers: [registry],
      collect() {
        const d = self.last;
        if (d?.observedStable !== undefined) this.set({ window: 'stable' }, d.observedStable);
        if (d?.observedPanic !== undefined) this.set({ window: 'panic' }, d.observedPanic);
      },
    });
    new Gauge({
      name: 'yggdrasil_autoscaler_panic',
      help: '1 while the autoscaler is in panic mode.',
      registers: [registry],
      collect() {
        this.set(self.last?.panic ? 1 : 0);
      },
    });
    new Gauge({
      name: 'yggdrasil_autoscaler_target_concurrency',
      help: 'Concurrency per instance the autoscaler aims for (MAX_CONCURRENCY × TARGET_UTILIZATION).',
      registers: [registry],
      collect() {
        this.set(self.targetPerInstance);
      },
    });
  }

  start(): void {
    const onError = this.opts.onError;
    const clock = this.clock;
    this.timers.push(
      loopOn(clock, this.sampleEveryMs, 'autoscaler sampling', () => this.sample(clock.now()), onError),
      loopOn(
        clock,
        this.opts.scaleIntervalMs,
        'autoscaler decisions',
        () => this.decide(clock.now()),
        onError,
      ),
    );
  }

  stop(): void {
    for (const cancel of this.timers) cancel();
  }

  /** The activator: a request waits and nothing is ready, so decide now instead of at the next tick. */
  activate(): void {
    const now = this.clock.now();
    this.sample(now);
    this.decide(now);
  }

  /** New bounds (PUT /scaling), for the next decision. */
  setLimits(minInstances: number, maxInstances: number): void {
    this.kpa.setLimits(minInstances, maxInstances);
  }

  status(): AutoscalerStatus {
    return { targetPerInstance: this.targetPerInstance, lastDecision: this.last };
  }

  private sample(now: number): void {
    const usage = this.opts.target.usageOfReady();
    const cpus = usage.map((u) => u.cpu).filter((c): c is number => c !== undefined);
    const cpu =
      cpus.length > 0 ? cpus.reduce((a, b) => a + b, 0) / cpus.length / this.opts.cpuLimitCores : undefined;
    this.kpa.record(now, { concurrency: this.opts.concurrency(), ...(cpu !== undefined ? { cpu } : {}) });
  }

  private decide(now: number): void {
    if (this.opts.mayScale && !this.opts.mayScale()) return;
    const ready = this.opts.target.readyCount();
    const d = this.kpa.decide(now, ready);
    this.last = { ...d, at: new Date(now).toISOString() };
    if (!d.valid) return;
    this.opts.target.setDesired(d.desired, d.reason, {
      panic: d.panic,
      ready,
      observedStable: round(d.observedStable),
      observedPanic: round(d.observedPanic),
      observedCpu: round(d.observedCpu),
      stableDesired: d.stableDesired,
      panicDesired: d.panicDesired,
      cpuDesired: d.cpuDesired,
    });
  }
}

const round = (x: number | undefined) => (x === undefined ? undefined : Math.round(x * 100) / 100);
