// The bounded FIFO queue of requests waiting for a free slot when every instance is at MAX_CONCURRENCY
// (HAProxy's `maxconn` + `timeout queue`, Knative's queue-proxy breaker). Pure: `now` is an argument,
// nothing is timed or sent here. A waiter is either free (any instance will do) or pinned to one
// instance by its session; a freed slot on instance X goes to the oldest waiter that X can serve.

export interface Waiter<T> {
  readonly value: T;
  /** Instance id the waiter must go to, or null for any. */
  readonly pinned: string | null;
  readonly enqueuedAt: number;
  /** Arrival order across all queues (FIFO tie-breaker). */
  readonly seq: number;
  /** Set once the waiter left the queue (dispatched, expired, cancelled). */
  done: boolean;
}

export interface AdmissionQueueOptions {
  /** Most waiters in all queues together (QUEUE_MAX); more are refused. */
  maxLength: number;
  /** Longest wait (QUEUE_TIMEOUT_MS); older waiters expire. */
  timeoutMs: number;
}

/** A FIFO with O(1) push/shift and lazy removal of waiters that are done. */
class Fifo<T> {
  private items: Array<Waiter<T>> = [];
  private head = 0;

  push(w: Waiter<T>): void {
    this.items.push(w);
  }

  /** The oldest waiter not done yet (skipping removed ones). */
  peek(): Waiter<T> | undefined {
    while (this.head < this.items.length && this.items[this.head]!.done) this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return this.items[this.head];
  }

  shift(): Waiter<T> | undefined {
    const w = this.peek();
    if (w) this.head++;
    return w;
  }

  /** Waiters not done, oldest first. */
  live(): Array<Waiter<T>> {
    return this.items.slice(this.head).filter((w) => !w.done);
  }
}

export class AdmissionQueue<T> {
  private readonly free = new Fifo<T>();
  private readonly pinned = new Map<string, Fifo<T>>();
  private seq = 0;
  private count = 0;

  constructor(private readonly opts: AdmissionQueueOptions) {
    if (!(Number.isInteger(opts.maxLength) && opts.maxLength >= 0)) {
      throw new TypeError(`AdmissionQueue: maxLength=${opts.maxLength} must be an integer >= 0`);
    }
    if (!(opts.timeoutMs >= 0))
      throw new TypeError(`AdmissionQueue: timeoutMs=${opts.timeoutMs} must be >= 0`);
  }

  /** Waiters in all queues. */
  get length(): number {
    return this.count;
  }

  /** Waiters pinned to one instance. */
  pinnedLength(instanceId: string): number {
    return this.pinned.get(instanceId)?.live().length ?? 0;
  }

  /** Adds a waiter, or returns undefined when the queue is full (the caller answers 503). */
  enqueue(value: T, pinned: string | null, now: number): Waiter<T> | undefined {
    if (this.count >= this.opts.maxLength) return undefined;
    const w: Waiter<T> = { value, pinned, enqueuedAt: now, seq: this.seq++, done: false };
    if (pinned === null) this.free.push(w);
    else {
      let q = this.pinned.get(pinned);
      if (!q) {
        q = new Fifo<T>();
        this.pinned.set(pinned, q);
      }
      q.push(w);
    }
    this.count++;
    return w;
  }

  /**
   * The waiter a freed slot on `instanceId` should serve: the older of that instance's pinned head and
   * the free head. `acceptsFree` is false for an instance that may only serve its own sessions.
   */
  takeFor(instanceId: string, acceptsFree = true): Waiter<T> | undefined {
    const own = this.pinned.get(instanceId);
    const a = own?.peek();
    const b = acceptsFree ? this.free.peek() : undefined;
    const pick = a && b ? (a.seq < b.seq ? a : b) : (a ?? b);
    if (!pick) return undefined;
    (pick === a ? own! : this.free).shift();
    this.finish(pick);
    return pick;
  }

  /** Removes a waiter whose client went away. Returns false if it already left. */
  cancel(w: Waiter<T>): boolean {
    if (w.done) return false;
    this.finish(w);
    return true;
  }

  /** Removes and returns the waiters that have waited `timeoutMs` or longer, oldest first. */
  expire(now: number): Array<Waiter<T>> {
    const out: Array<Waiter<T>> = [];
    const drain = (q: Fifo<T>) => {
      for (let w = q.peek(); w && now - w.enqueuedAt >= this.opts.timeoutMs; w = q.peek()) {
        q.shift();
        this.finish(w);
        out.push(w);
      }
    };
    drain(this.free);
    for (const q of this.pinned.values()) drain(q);
    return out.sort((x, y) => x.seq - y.seq);
  }

  /**
   * Releases the waiters pinned to an instance that is gone, oldest first, so the caller can send
   * them elsewhere (their session moves).
   */
  unpin(instanceId: string): Array<Waiter<T>> {
    const q = this.pinned.get(instanceId);
    if (!q) return [];
    this.pinned.delete(instanceId);
    const out = q.live();
    for (const w of out) this.finish(w);
    return out;
  }

  /** When the oldest waiter arrived, or undefined when nobody waits (for the expiry timer). */
  oldest(): number | undefined {
    let min: number | undefined;
    const h = this.free.peek();
    if (h) min = h.enqueuedAt;
    for (const q of this.pinned.values()) {
      const p = q.peek();
      if (p && (min === undefined || p.enqueuedAt < min)) min = p.enqueuedAt;
    }
    return min;
  }

  private finish(w: Waiter<T>): void {
    w.done = true;
    this.count--;
  }
}
