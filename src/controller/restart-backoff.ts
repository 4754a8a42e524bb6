// The restart policy: tells a crash from a kill. An instance that dies before it was ready, or exits
// on its own within STABLE_AFTER_MS of becoming ready, crashed: restarts of a slot that keeps crashing
// back off (the first restart at once, then RESTART_BACKOFF_MS doubling up to RESTART_BACKOFF_MAX_MS).
// A ready instance killed from outside (SIGKILL, SIGTERM: an operator, the OOM killer, a chaos test)
// or one that ran for a while is not a crash loop: the pool refills at once. Pure.
import { exponentialDelay } from '../core/backoff.js';

/** A slot is shown as crash-looping once it has crashed this many times in a row. */
export const CRASH_LOOP_THRESHOLD = 3;

/** Running this long after becoming ready proves a start good (Docker's restart policy uses 10 s). */
export const STABLE_AFTER_MS = 10_000;

const KILL_SIGNALS = new Set(['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGHUP']);
/** Exit codes a container runtime reports for those signals (128 + n). */
const KILL_CODES = new Set([137, 143, 130, 129]);

/** Whether an exit was a signal from outside rather than the instance failing by itself. */
export function wasKilled(exit: { code: number | null; signal: string | null }): boolean {
  return (
    (exit.signal !== null && KILL_SIGNALS.has(exit.signal)) ||
    (exit.code !== null && KILL_CODES.has(exit.code))
  );
}

export interface Death {
  /** Crashes in a row before this one. */
  crashesBefore: number;
  /** How long the instance had been ready when it died; undefined = it never was. */
  readyForMs: number | undefined;
  /** Killed from outside (see wasKilled); false for exits, failed health checks and start errors. */
  killed: boolean;
}

export interface RestartPlan {
  /** Crashes in a row, this one included (0 when this death was not a crash). */
  crashes: number;
  /** How long to wait before starting the slot again. */
  delayMs: number;
}

export function planRestart(d: Death, baseMs: number, maxMs: number): RestartPlan {
  const crashed = d.readyForMs === undefined || (!d.killed && d.readyForMs < STABLE_AFTER_MS);
  if (!crashed) return { crashes: 0, delayMs: 0 };
  const crashes = d.crashesBefore + 1;
  return { crashes, delayMs: crashes === 1 ? 0 : exponentialDelay(crashes - 1, baseMs, maxMs) };
}
