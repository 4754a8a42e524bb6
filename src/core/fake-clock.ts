// A clock that moves only when told (tests): timers run in time order as `advance` passes them, with
// the promises they start settled between two timers, so code that sleeps and awaits behaves as it
// would over that much real time, in microseconds.
import type { Cancel, Clock } from './clock.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  /** Repeats this often. */
  every?: number;
}

/** Lets pending promise chains (and I/O-free async functions) run to their next real wait. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}

export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers = new Set<Timer>();

  constructor(start = 1_700_000_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(ms, resolve));
  }

  after(ms: number, fn: () => void): Cancel {
    return this.add({ at: this.t + Math.max(0, ms), seq: this.seq++, fn });
  }

  every(ms: number, fn: () => void): Cancel {
    const step = Math.max(1, ms);
    return this.add({ at: this.t + step, seq: this.seq++, fn, every: step });
  }

  /** Timers waiting (for tests that check nothing is left). */
  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, running every timer due on the way in order. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let next: Timer | undefined;
      for (const x of this.timers) {
        if (x.at <= end && (!next || x.at < next.at || (x.at === next.at && x.seq < next.seq))) next = x;
      }
      if (!next) break;
      this.t = next.at;
      if (next.every) {
        next.at += next.every;
        next.seq = this.seq++;
      } else this.timers.delete(next);
      next.fn();
    }
    this.t = end;
    await settle();
  }

  private add(timer: Timer): Cancel {
    this.timers.add(timer);
    return () => {
      this.timers.delete(timer);
    };
  }
}
