// When the router may retry a failed proxy attempt, and how long it waits first. Pure: randomness
// is an argument.

/** Attempts are numbered from 1; 2^30 × any sane base is past every cap and keeps the power finite. */
const MAX_EXPONENT = 30;

/**
 * Delay before the retry that follows failed attempt `attempt` (1-based): exponential backoff with
 * full jitter, random × min(capMs, baseMs × 2^(attempt-1)) (AWS Architecture Blog, "Exponential
 * Backoff And Jitter"). Full jitter spreads the retries of many clients that failed together.
 */
export function retryDelay(attempt: number, random: number, baseMs = 25, capMs = 250): number {
  if (!(Number.isInteger(attempt) && attempt >= 1)) {
    throw new TypeError(`retryDelay: attempt=${attempt} is invalid: must be an integer >= 1`);
  }
  if (!(random >= 0 && random < 1)) {
    throw new TypeError(`retryDelay: random=${random} is invalid: must be in [0, 1)`);
  }
  if (!(Number.isFinite(baseMs) && baseMs >= 0 && Number.isFinite(capMs) && capMs >= 0)) {
    throw new TypeError(`retryDelay: baseMs=${baseMs}, capMs=${capMs} are invalid: must be numbers >= 0`);
  }
  return random * Math.min(capMs, baseMs * 2 ** Math.min(attempt - 1, MAX_EXPONENT));
}

export interface RetryQuestion {
  /** HTTP method, any case. */
  method: string;
  /** Whether any byte of the request was sent to the instance. */
  reachedUpstream: boolean;
  /** The attempt that just failed, 1-based (1 = the original request). */
  attempt: number;
  /** Retries allowed after the original request (0 = none). */
  maxRetries: number;
}

/** Methods safe to send twice: retrying them cannot repeat a side effect. */
const REPLAYABLE = new Set(['GET', 'HEAD']);

/**
 * Whether the failed attempt may be retried. A request that never reached an instance may be
 * retried whatever its method; once any byte was sent only GET and HEAD are, so a POST (an agent
 * run, a payment) is never duplicated.
 */
export function isRetryable({ method, reachedUpstream, attempt, maxRetries }: RetryQuestion): boolean {
  if (attempt > maxRetries) return false;
  return !reachedUpstream || REPLAYABLE.has(method.toUpperCase());
}
