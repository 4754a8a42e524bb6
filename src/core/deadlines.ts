// Many deadlines on one timer. Every request body gets a deadline (CLIENT_BODY_TIMEOUT_MS); a
// setTimeout each would put a Timeout object and two timer-list operations on the hot path, so
// deadlines sit in a set and one interval, running only while the set is not empty, fires the late
// ones. They fire up to `tickMs` late, which is fine for timeouts of seconds.

export interface Deadline {
  /** Forgets the deadline; it will not fire. */
  cancel(): void;
}

class Entry implements Deadline {
  constructor(
    readonly at: number,
    readonly fire: () => void,
    private readonly set: Set<Entry>,
  ) {}

  cancel(): void {
    this.set.delete(this);
  }
}

export class Deadlines {
  private readonly entries = new Set<Entry>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly tickMs: number,
    private readonly now: () => number = Date.now,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Calls `fire` once, `ms` from now, unless cancelled first. */
  after(ms: number, fire: () => void): Deadline {
    const entry = new Entry(this.now() + ms, fire, this.entries);
    this.entries.add(entry);
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.tickMs);
      this.timer.unref();
    }
    return entry;
  }

  /** Fires every deadline that has passed (the interval's work; public for tests). */
  sweep(): void {
    const now = this.now();
    for (const e of this.entries) {
      if (e.at > now) continue;
      this.entries.delete(e);
      try {
        e.fire();
      } catch (err) {
        this.onError(err);
      }
    }
    if (this.entries.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  close(): void {
    this.entries.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
