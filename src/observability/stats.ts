// Turns the router's cumulative request counter and latency histogram into the live feed's numbers:
// requests per second, share of 5xx and p95 latency over a short rolling window. Pure: every sample
// carries its own time, so tests step time exactly.

/** One cumulative histogram bucket: observations <= `le` seconds (the last one is +Inf). */
export interface Bucket {
  le: number;
  count: number;
}

/** The router's totals at one instant (cumulative since the router started). */
export interface RequestTotals {
  /** Milliseconds since the epoch. */
  at: number;
  requests: number;
  /** Answers with a 5xx status. */
  errors: number;
  /** Cumulative latency buckets in ascending `le`, +Inf last (the histogram as Prometheus sees it). */
  buckets: Bucket[];
}

export interface WindowStats {
  requestsPerSecond: number;
  /** 5xx share of the requests in the window; null when there were none. */
  errorRatio: number | null;
  /** 95th percentile latency in milliseconds; null when there were no requests in the window. */
  p95LatencyMs: number | null;
}

/**
 * The q-quantile of cumulative buckets, interpolated linearly inside the bucket that holds it, exactly as
 * Prometheus's histogram_quantile() does (so the page and Grafana agree). A quantile that falls in the
 * +Inf bucket answers the highest finite bound. Null when the buckets hold no observation.
 */
export function histogramQuantile(q: number, buckets: readonly Bucket[]): number | null {
  if (buckets.length === 0) return null;
  const total = buckets[buckets.length - 1]!.count;
  if (!(total > 0)) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (let i = 0; i < buckets.length; i++) {
    const b = buckets[i]!;
    if (b.count >= rank) {
      if (b.le === Number.POSITIVE_INFINITY) return i === 0 ? null : buckets[i - 1]!.le;
      // The first bucket starts at 0 (latencies are never negative).
      const inBucket = b.count - prevCount;
      if (inBucket <= 0) return b.le;
      return prevLe + (b.le - prevLe) * ((rank - prevCount) / inBucket);
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

/** What happened between two cumulative samples. A counter that went down (restart) counts as 0. */
export function windowStats(older: RequestTotals, newer: RequestTotals): WindowStats {
  const seconds = (newer.at - older.at) / 1000;
  const requests = Math.max(0, newer.requests - older.requests);
  const errors = Math.max(0, newer.errors - older.errors);
  const before = new Map(older.buckets.map((b) => [b.le, b.count]));
  const delta = newer.buckets.map((b) => ({
    le: b.le,
    count: Math.max(0, b.count - (before.get(b.le) ?? 0)),
  }));
  const p95 = requests > 0 ? histogramQuantile(0.95, delta) : null;
  return {
    requestsPerSecond: seconds > 0 ? requests / seconds : 0,
    errorRatio: requests > 0 ? errors / requests : null,
    p95LatencyMs: p95 === null ? null : p95 * 1000,
  };
}

/**
 * Keeps the samples of the last `windowMs` and answers the window's stats at each new sample. The oldest
 * kept sample is the last one at or before the window's start, so a full window is measured.
 */
export class RollingTotals {
  private readonly samples: RequestTotals[] = [];

  constructor(readonly windowMs: number) {
    if (!(windowMs > 0)) throw new TypeError(`RollingTotals: windowMs=${windowMs} must be a number > 0`);
  }

  push(sample: RequestTotals): WindowStats {
    this.samples.push(sample);
    const start = sample.at - this.windowMs;
    while (this.samples.length > 2 && this.samples[1]!.at <= start) this.samples.shift();
    const oldest = this.samples[0]!;
    if (oldest === sample) return { requestsPerSecond: 0, errorRatio: null, p95LatencyMs: null };
    return windowStats(oldest, sample);
  }
}

/** A bounded list that drops its oldest item past `capacity`. */
export class Ring<T> {
  private readonly items: T[] = [];

  constructor(readonly capacity: number) {}

  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.capacity) this.items.shift();
  }

  toArray(): T[] {
    return this.items.slice();
  }
}
