// Crash-loop backoff: the delay before restart n doubles from a base up to a cap (Kubernetes-like).

/** Delay before restarting after `crashes` consecutive crashes (1 = first crash). */
export function restartDelay(crashes: number, baseMs: number, maxMs: number): number {
  if (crashes <= 0) return 0;
  const exp = Math.min(crashes - 1, 30);
  return Math.min(maxMs, baseMs * 2 ** exp);
}

/** A slot is shown as crash-looping once it has crashed this many times in a row. */
export const CRASH_LOOP_THRESHOLD = 3;

/** A slot that stays ready this long has its crash count reset. */
export function crashResetMs(maxBackoffMs: number): number {
  return Math.max(10_000, 2 * maxBackoffMs);
}
