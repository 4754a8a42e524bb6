// Background work (timers, fire-and-forget tasks) that can never become an unhandled rejection or an
// uncaught exception: every throw and rejection goes to the caller's handler, which logs and counts
// it (a Node 20 process exits on the first unhandled rejection).

export type BackgroundErrorHandler = (loop: string, err: unknown) => void;

/** Runs `fn` now; a throw or a rejection of what it returns goes to `onError`. */
export function runGuarded(loop: string, fn: () => unknown, onError: BackgroundErrorHandler): void {
  try {
    const r = fn();
    if (r instanceof Promise) r.catch((err: unknown) => onError(loop, err));
  } catch (err) {
    onError(loop, err);
  }
}

/** Runs `fn` every `ms` (guarded, see runGuarded); the timer never keeps the process alive. */
export function every(
  ms: number,
  loop: string,
  fn: () => unknown,
  onError: BackgroundErrorHandler,
): NodeJS.Timeout {
  const t = setInterval(() => runGuarded(loop, fn, onError), ms);
  t.unref();
  return t;
}
