// A time-bucketed averaging window (like Knative's aggregation buckets): samples are grouped into
// fixed-width buckets and the window average is the mean of the bucket averages. Pure: time is an argument.

interface Bucket {
  /** floor(t / bucketMs) of the samples it holds; a slot whose index is stale is treated as empty. */
  index: number;
  sum: number;
  count: number;
}

/** Refuse windows that would need more buckets than this (memory is one slot per bucket). */
const MAX_BUCKETS = 100_000;

export class SlidingWindow {
  readonly windowMs: number;
  readonly bucketMs: number;
  /** Buckets the window spans, the current one included. */
  private readonly span: number;
  /** Ring of `span` slots: memory stays bounded however long it runs, old buckets are overwritten. */
  private readonly ring: Bucket[];
  private newest = Number.NEGATIVE_INFINITY;

  constructor(windowMs: number, bucketMs: number) {
    if (!(Number.isFinite(bucketMs) && bucketMs > 0)) {
      throw new TypeError(`bucketMs=${bucketMs}: must be a finite number > 0`);
    }
    if (!(Number.isFinite(windowMs) && windowMs >= bucketMs)) {
      throw new TypeError(`windowMs=${windowMs}: must be a finite number >= bucketMs (${bucketMs})`);
    }
    const span = Math.ceil(windowMs / bucketMs);
    if (span > MAX_BUCKETS) {
      throw new TypeError(
        `windowMs=${windowMs}, bucketMs=${bucketMs}: the window needs ${span} buckets, at most ${MAX_BUCKETS} allowed`,
      );
    }
    this.windowMs = windowMs;
    this.bucketMs = bucketMs;
    this.span = span;
    this.ring = Array.from({ length: span }, () => ({ index: Number.NaN, sum: 0, count: 0 }));
  }

  /**
   * Records one sample at `now`; samples in the same bucket are averaged. A sample older than the
   * window of the newest one recorded is dropped (it could only overwrite fresher data).
   */
  record(now: number, value: number): void {
    if (!Number.isFinite(value)) return;
    const index = Math.floor(now / this.bucketMs);
    if (index <= this.newest - this.span) return;
    if (index > this.newest) this.newest = index;
    const slot = this.ring[this.slotOf(index)]!;
    if (slot.index !== index) {
      slot.index = index;
      slot.sum = 0;
      slot.count = 0;
    }
    slot.sum += value;
    slot.count += 1;
  }

  /**
   * Mean of the bucket averages over the buckets in (now - windowMs, now]; empty buckets are not
   * counted. Undefined when no bucket in the window holds a sample. Membership is decided per bucket:
   * the bucket holding `now` and the ceil(windowMs / bucketMs) - 1 before it.
   */
  average(now: number): number | undefined {
    const current = Math.floor(now / this.bucketMs);
    let total = 0;
    let buckets = 0;
    for (const b of this.ring) {
      if (b.count === 0 || b.index > current || b.index <= current - this.span) continue;
      total += b.sum / b.count;
      buckets += 1;
    }
    return buckets === 0 ? undefined : total / buckets;
  }

  private slotOf(index: number): number {
    return ((index % this.span) + this.span) % this.span;
  }
}
