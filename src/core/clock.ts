// Time for the parts that wait (the controller, the autoscale loop, the waiting room): what time it
// is, a sleep, a timer and a repeating one. The system clock in production; a FakeClock
// (fake-clock.ts) in tests, so their timing is tested the way the pure deciders' is: by moving time.
import { setTimeout as sleep } from 'node:timers/promises';
import { type BackgroundErrorHandler, runGuarded } from './background.js';

/** Stops a timer; calling it again does nothing. */
export type Cancel = () => void;

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Calls `fn` once after `ms`. System timers are unref'd: they never keep the process alive. */
  after(ms: number, fn: () => void): Cancel;
  /** Calls `fn` every `ms`. */
  every(ms: number, fn: () => void): Cancel;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => sleep(ms),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  },
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return () => clearInterval(t);
  },
};

/** A background loop on a clock: each run's error is logged and counted by `onError`, never thrown. */
export function loopOn(
  clock: Clock,
  ms: number,
  loop: string,
  fn: () => unknown,
  onError: BackgroundErrorHandler,
): Cancel {
  return clock.every(ms, () => runGuarded(loop, fn, onError));
}
