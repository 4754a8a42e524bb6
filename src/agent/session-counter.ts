// Counts the requests of each session this instance served: visible proof of session affinity.
// Bounded: the least recently used sessions are forgotten past `capacity`.

export class SessionCounter {
  private readonly counts = new Map<string, number>();

  constructor(private readonly capacity = 10_000) {}

  /** Records one request of `sessionId` and returns how many this instance has now served. */
  hit(sessionId: string): number {
    const n = (this.counts.get(sessionId) ?? 0) + 1;
    this.counts.delete(sessionId);
    this.counts.set(sessionId, n);
    if (this.counts.size > this.capacity) {
      const oldest = this.counts.keys().next().value;
      if (oldest !== undefined) this.counts.delete(oldest);
    }
    return n;
  }

  get size(): number {
    return this.counts.size;
  }
}
