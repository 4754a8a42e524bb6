// Knative KPA-style scaling decider (knative/serving pkg/autoscaler/scaling/autoscaler.go): turns
// concurrency (and optionally CPU) samples into a desired instance count. Pure: `now` is an argument.
import { SlidingWindow } from './sliding-window.js';

export interface KpaOptions {
  /** Fewest instances; 0 allows scale to zero. */
  minInstances: number;
  /** Most instances (>= 1 and >= minInstances). */
  maxInstances: number;
  /** Concurrency one instance should carry: MAX_CONCURRENCY × TARGET_UTILIZATION, computed by the caller. */
  targetPerInstance: number;
  /**
   * Window of the stable average; also how long panic lasts after the last over-threshold reading.
   * @default 60000
   */
  stableWindowMs?: number;
  /**
   * Window of the panic average (<= stableWindowMs).
   * @default 6000
   */
  panicWindowMs?: number;
  /**
   * Panic starts when panic-desired / max(ready, 1) reaches this ratio (>= 1).
   * @default 2
   */
  panicThreshold?: number;
  /**
   * One decision asks for at most ceil(max(ready, 1) × rate) instances (> 1).
   * @default 1000
   */
  maxScaleUpRate?: number;
  /**
   * One decision asks for no fewer than floor(max(ready, 1) / rate) instances (> 1).
   * @default 2
   */
  maxScaleDownRate?: number;
  /**
   * With minInstances 0, the last instance stays until concurrency has been 0 this long.
   * @default 30000
   */
  scaleToZeroGraceMs?: number;
  /**
   * Target CPU per ready instance as a share of its limit, in (0, 1]; undefined turns the CPU signal off.
   * @default undefined
   */
  targetCpu?: number;
  /**
   * Width of the averaging buckets, <= panicWindowMs.
   * @default 1000, or panicWindowMs / 6 when that is shorter (the panic window keeps six buckets)
   */
  bucketMs?: number;
}

export interface KpaSample {
  /** Requests in flight plus queued, across the whole pool (the router's view). */
  concurrency: number;
  /** Average CPU use per ready instance as a share of its limit (may exceed 1 on burstable limits). */
  cpu?: number;
}

export type ScaleReason =
  /** Nothing observed in the stable window: keep the current count (`valid: false`). */
  | 'no-data'
  /** The stable-window concurrency decided. */
  | 'stable'
  /** Panic mode: the highest count asked for during this panic. */
  | 'panic'
  /** The CPU signal asked for more than concurrency did. */
  | 'cpu'
  /** Clamped up to minInstances. */
  | 'min'
  /** Clamped down to maxInstances. */
  | 'max'
  /** The stable value was cut by maxScaleUpRate / maxScaleDownRate. */
  | 'rate-limit'
  /** 0 instances: minInstances is 0 and concurrency has been 0 for scaleToZeroGraceMs (or none is ready). */
  | 'scale-to-zero'
  /** Held at 1 because the scale-to-zero grace has not elapsed yet. */
  | 'grace'
  /** No instance is ready and a request waits: at least one must start now. */
  | 'activation';

export interface ScaleDecision {
  desired: number;
  /** False when there was not enough data; the caller should keep the current count. */
  valid: boolean;
  /** True while in panic mode (the caller may log and export it). */
  panic: boolean;
  reason: ScaleReason;
  /** Average concurrency over the stable window. */
  observedStable?: number;
  /** Average concurrency over the panic window. */
  observedPanic?: number;
  /** Average CPU share over the stable window (only with targetCpu). */
  observedCpu?: number;
  /** Count from the stable window, after the rate limits. */
  stableDesired?: number;
  /** Count from the panic window, after the rate limits. */
  panicDesired?: number;
  /** Count from the CPU signal, after the rate limits. */
  cpuDesired?: number;
}

/** Float noise (e.g. 80 × 0.7 = 56.00000000000001) must not add an instance. */
const EPSILON = 1e-9;
const ceilCount = (x: number) => Math.max(0, Math.ceil(x - EPSILON));

export class KpaAutoscaler {
  private min: number;
  private max: number;
  private readonly target: number;
  private readonly stableWindowMs: number;
  private readonly panicThreshold: number;
  private readonly maxScaleUpRate: number;
  private readonly maxScaleDownRate: number;
  private readonly graceMs: number;
  private readonly targetCpu: number | undefined;

  private readonly stableConcurrency: SlidingWindow;
  private readonly panicConcurrency: SlidingWindow;
  private readonly stableCpu: SlidingWindow;

  /** Last time the panic threshold was reached; defined exactly while in panic. */
  private lastOverThresholdAt: number | undefined;
  /** Highest count asked for during the current panic: panic never scales down. */
  private maxPanicCount = 0;
  /** Last time a non-zero concurrency was recorded (the first sample's time until then). */
  private lastActiveAt: number | undefined;
  private lastConcurrency = 0;

  constructor(options: KpaOptions) {
    const o = {
      stableWindowMs: 60_000,
      panicWindowMs: 6_000,
      panicThreshold: 2,
      maxScaleUpRate: 1000,
      maxScaleDownRate: 2,
      scaleToZeroGraceMs: 30_000,
      ...stripUndefined(options),
    };
    const bucketMs = options.bucketMs ?? Math.min(1000, o.panicWindowMs / 6);

    check('minInstances', o.minInstances, isInt(o.minInstances, 0), 'an integer >= 0');
    check(
      'maxInstances',
      o.maxInstances,
      isInt(o.maxInstances, Math.max(1, o.minInstances)),
      `an integer >= 1 and >= minInstances (${o.minInstances})`,
    );
    check('targetPerInstance', o.targetPerInstance, above(o.targetPerInstance, 0), 'a number > 0');
    check('stableWindowMs', o.stableWindowMs, above(o.stableWindowMs, 0), 'a number > 0');
    check(
      'panicWindowMs',
      o.panicWindowMs,
      above(o.panicWindowMs, 0) && o.panicWindowMs <= o.stableWindowMs,
      `a number > 0 and <= stableWindowMs (${o.stableWindowMs})`,
    );
    check('panicThreshold', o.panicThreshold, atLeast(o.panicThreshold, 1), 'a number >= 1');
    check('maxScaleUpRate', o.maxScaleUpRate, above(o.maxScaleUpRate, 1), 'a number > 1');
    check('maxScaleDownRate', o.maxScaleDownRate, above(o.maxScaleDownRate, 1), 'a number > 1');
    check('scaleToZeroGraceMs', o.scaleToZeroGraceMs, atLeast(o.scaleToZeroGraceMs, 0), 'a number >= 0');
    if (o.targetCpu !== undefined) {
      check('targetCpu', o.targetCpu, above(o.targetCpu, 0) && o.targetCpu <= 1, 'a number in (0, 1]');
    }
    check(
      'bucketMs',
      bucketMs,
      above(bucketMs, 0) && bucketMs <= o.panicWindowMs,
      `a number > 0 and <= panicWindowMs (${o.panicWindowMs})`,
    );

    this.min = o.minInstances;
    this.max = o.maxInstances;
    this.target = o.targetPerInstance;
    this.stableWindowMs = o.stableWindowMs;
    this.panicThreshold = o.panicThreshold;
    this.maxScaleUpRate = o.maxScaleUpRate;
    this.maxScaleDownRate = o.maxScaleDownRate;
    this.graceMs = o.scaleToZeroGraceMs;
    this.targetCpu = o.targetCpu;
    this.stableConcurrency = new SlidingWindow(o.stableWindowMs, bucketMs);
    this.panicConcurrency = new SlidingWindow(o.panicWindowMs, bucketMs);
    this.stableCpu = new SlidingWindow(o.stableWindowMs, bucketMs);
  }

  /**
   * Records one observation. Record every tick, zeros included: an empty window means "no data",
   * not "no load", and scale to zero needs zeros to be seen.
   */
  /** New bounds for the decisions to come (PUT /scaling); the caller has validated them. */
  setLimits(minInstances: number, maxInstances: number): void {
    this.min = minInstances;
    this.max = maxInstances;
  }

  record(now: number, sample: KpaSample): void {
    check('sample.concurrency', sample.concurrency, atLeast(sample.concurrency, 0), 'a number >= 0');
    if (sample.cpu !== undefined) {
      check('sample.cpu', sample.cpu, atLeast(sample.cpu, 0), 'a number >= 0');
      this.stableCpu.record(now, sample.cpu);
    }
    this.stableConcurrency.record(now, sample.concurrency);
    this.panicConcurrency.record(now, sample.concurrency);
    this.lastConcurrency = sample.concurrency;
    if (sample.concurrency > 0 || this.lastActiveAt === undefined) this.lastActiveAt = now;
  }

  /** Decides the desired count for `readyInstances` ready now. Updates the panic state. */
  decide(now: number, readyInstances: number): ScaleDecision {
    check('readyInstances', readyInstances, isInt(readyInstances, 0), 'an integer >= 0');
    const ready = readyInstances;
    // A request waits with nothing ready (the activator case): start one whatever the windows say.
    const activating = ready === 0 && this.lastConcurrency > 0;

    const observedStable = this.stableConcurrency.average(now);
    if (observedStable === undefined) {
      // Silence after a panic must not pin the pool at its panic size (knative/serving#14573).
      this.exitPanicIfCalm(now);
      const panic = this.inPanic;
      if (activating) return { desired: this.clamp(1), valid: true, panic, reason: 'activation' };
      return { desired: this.clamp(ready), valid: false, panic, reason: 'no-data' };
    }
    const observedPanic = this.panicConcurrency.average(now);

    // Rates are relative to max(ready, 1) as in Knative, so a pool at zero may still grow.
    const base = Math.max(1, ready);
    const maxUp = Math.ceil(base * this.maxScaleUpRate);
    const maxDown = Math.floor(base / this.maxScaleDownRate);
    const limit = (n: number) => Math.min(Math.max(n, maxDown), maxUp);

    const rawStable = ceilCount(observedStable / this.target);
    const stableDesired = limit(rawStable);
    const rawPanic = observedPanic === undefined ? undefined : ceilCount(observedPanic / this.target);
    const panicDesired = rawPanic === undefined ? undefined : limit(rawPanic);

    // The threshold uses the count before rate limits, like Knative's dppc / readyPodsCount.
    if (rawPanic !== undefined && rawPanic / base >= this.panicThreshold) {
      this.lastOverThresholdAt = now;
    } else {
      this.exitPanicIfCalm(now);
    }
    const panic = this.inPanic;

    let desired: number;
    let reason: ScaleReason;
    if (panic) {
      // Provision for whichever window asks more (knative/serving#8106), and never below what this
      // panic already asked for.
      this.maxPanicCount = Math.max(this.maxPanicCount, panicDesired ?? 0, stableDesired);
      desired = this.maxPanicCount;
      reason = 'panic';
    } else {
      desired = stableDesired;
      reason = stableDesired === rawStable ? 'stable' : 'rate-limit';
    }

    let observedCpu: number | undefined;
    let cpuDesired: number | undefined;
    if (this.targetCpu !== undefined) {
      observedCpu = this.stableCpu.average(now);
      if (observedCpu !== undefined) {
        cpuDesired = limit(ceilCount((ready * observedCpu) / this.targetCpu));
        if (cpuDesired > desired) {
          desired = cpuDesired;
          reason = 'cpu';
        }
      }
    }

    if (desired > this.max) {
      desired = this.max;
      reason = 'max';
    }
    if (desired < this.min) {
      desired = this.min;
      reason = 'min';
    }

    if (desired === 0) {
      // Only reachable with minInstances 0. lastActiveAt is set: observedStable implies a sample.
      // The grace keeps the last instance warm for a quick return; a pool already at zero stays there.
      if (ready >= 1 && now - (this.lastActiveAt ?? now) < this.graceMs) {
        desired = 1;
        reason = 'grace';
      } else {
        reason = 'scale-to-zero';
      }
    }

    if (activating && desired <= 1) {
      desired = 1;
      reason = 'activation';
    }

    return {
      desired,
      valid: true,
      panic,
      reason,
      observedStable,
      ...(observedPanic !== undefined && { observedPanic }),
      ...(observedCpu !== undefined && { observedCpu }),
      stableDesired,
      ...(panicDesired !== undefined && { panicDesired }),
      ...(cpuDesired !== undefined && { cpuDesired }),
    };
  }

  /**
   * Leaves panic once a whole stable window has passed below the threshold: by then the stable
   * average covers only post-burst load, so the exit does not undo the scale-up only to panic again
   * (knative/serving#3153).
   */
  private exitPanicIfCalm(now: number): void {
    if (this.lastOverThresholdAt !== undefined && now - this.lastOverThresholdAt >= this.stableWindowMs) {
      this.lastOverThresholdAt = undefined;
      this.maxPanicCount = 0;
    }
  }

  private get inPanic(): boolean {
    return this.lastOverThresholdAt !== undefined;
  }

  private clamp(n: number): number {
    return Math.min(Math.max(n, this.min), this.max);
  }
}

const above = (v: number, min: number) => Number.isFinite(v) && v > min;
const atLeast = (v: number, min: number) => Number.isFinite(v) && v >= min;
const isInt = (v: number, min: number) => Number.isInteger(v) && v >= min;

function check(name: string, value: unknown, ok: boolean, allowed: string): void {
  if (!ok) throw new TypeError(`KpaAutoscaler: ${name}=${String(value)} is invalid: must be ${allowed}`);
}

/** `{...defaults, ...options}` would let an explicit `undefined` erase a default. */
function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
