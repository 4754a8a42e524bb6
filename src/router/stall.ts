// Passive health by time to first byte (outlier detection for agents whose /health passes while their
// requests hang, and for frozen ones that accept connections and never answer). An instance is stalled
// when at least `minWaiting` of its requests have waited longer than the threshold for response headers
// and it started no answer in that time, or when one request alone has waited twice as long; one such
// request makes it a suspect before that, and a health check of it decides at once (a frozen instance
// fails it). An ejected instance that answers again is back at once. The threshold adapts to the
// workload: the longest of
// OUTLIER_STALL_MS, 10 × the pool's p99 time to first byte and 2 × the longest one seen recently, so a
// pool of agents that legitimately take minutes is judged on minutes. Pure: `now` is an argument.

export interface StallOptions {
  /** OUTLIER_STALL_MS: the shortest stall that counts; 0 turns detection off. */
  minStallMs: number;
  /**
   * Requests that must be waiting past the threshold (one long request alone proves nothing).
   * @default 2
   */
  minWaiting?: number;
  /**
   * The threshold is at least this multiple of the pool's p99 time to first byte.
   * @default 10
   */
  p99Factor?: number;
  /**
   * Answers seen before the pool's times count; until then the threshold is 10 × minStallMs.
   * @default 20
   */
  minSamples?: number;
}

/** The last `size` times to first byte of the pool (ms), for its p99 and maximum. */
export class TtfbWindow {
  private readonly samples: Float64Array;
  private count = 0;
  private next = 0;

  constructor(size = 1024) {
    this.samples = new Float64Array(size);
  }

  add(ms: number): void {
    this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.samples.length;
    if (this.count < this.samples.length) this.count++;
  }

  get size(): number {
    return this.count;
  }

  /** p99 and maximum of the window, or undefined when empty. */
  summary(): { p99: number; max: number } | undefined {
    if (this.count === 0) return undefined;
    const sorted = this.samples.slice(0, this.count).sort();
    return {
      p99: sorted[Math.min(this.count - 1, Math.floor(this.count * 0.99))]!,
      max: sorted[this.count - 1]!,
    };
  }
}

/** How long a request may wait for headers before it counts toward a stall, given the pool's times. */
export function stallThreshold(window: TtfbWindow, opts: StallOptions): number {
  const min = opts.minStallMs;
  const s = window.size >= (opts.minSamples ?? 20) ? window.summary() : undefined;
  if (!s) return 10 * min;
  return Math.max(min, (opts.p99Factor ?? 10) * s.p99, 2 * s.max);
}

export interface InstanceWaits {
  /** When each request still waiting for this instance's response headers was sent (ms). */
  waitingSince: Iterable<number>;
  /** When the instance last started an answer, if ever. */
  lastResponseAt: number | undefined;
}

/**
 * With no answer from the instance for the threshold: `stalled` when at least `minWaiting` requests
 * waited past the threshold; `lone` when only one did but for twice as long (a hung instance gets few
 * requests: the balancer sends them where fewer are in flight); `suspect` when one waited past it (a
 * health check decides whether the instance is frozen); `ok` otherwise.
 */
export function stallVerdict(
  w: InstanceWaits,
  now: number,
  thresholdMs: number,
  minWaiting = 2,
): 'ok' | 'suspect' | 'lone' | 'stalled' {
  if (thresholdMs <= 0) return 'ok';
  const cutoff = now - thresholdMs;
  if (w.lastResponseAt !== undefined && w.lastResponseAt > cutoff) return 'ok';
  let old = 0;
  let oldest = Number.POSITIVE_INFINITY;
  for (const t of w.waitingSince) {
    if (t > cutoff) continue;
    if (++old >= minWaiting) return 'stalled';
    oldest = Math.min(oldest, t);
  }
  if (old === 0) return 'ok';
  return oldest <= now - 2 * thresholdMs ? 'lone' : 'suspect';
}
