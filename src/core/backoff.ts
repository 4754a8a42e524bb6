// The one exponential backoff (cockatiel's `(attempt) → delay` shape), used by the router's retries,
// the breaker's ejections and the controller's restarts. Pure: randomness is an argument.

/** Attempts are numbered from 1; 2^30 × any sane base is past every cap and keeps the power finite. */
const MAX_EXPONENT = 30;

/** Delay before attempt `n` (1-based): baseMs × 2^(n-1), at most capMs. */
export function exponentialDelay(n: number, baseMs: number, capMs: number): number {
  if (!(Number.isInteger(n) && n >= 1)) {
    throw new TypeError(`exponentialDelay: attempt=${n} is invalid: must be an integer >= 1`);
  }
  if (!(Number.isFinite(baseMs) && baseMs >= 0 && Number.isFinite(capMs) && capMs >= 0)) {
    throw new TypeError(
      `exponentialDelay: baseMs=${baseMs}, capMs=${capMs} are invalid: must be numbers >= 0`,
    );
  }
  return Math.min(capMs, baseMs * 2 ** Math.min(n - 1, MAX_EXPONENT));
}

/**
 * Exponential backoff with full jitter: random × exponentialDelay(n) (AWS Architecture Blog,
 * "Exponential Backoff And Jitter"). Full jitter spreads the retries of many clients that failed together.
 */
export function fullJitter(n: number, random: number, baseMs: number, capMs: number): number {
  if (!(random >= 0 && random < 1)) {
    throw new TypeError(`fullJitter: random=${random} is invalid: must be in [0, 1)`);
  }
  return random * exponentialDelay(n, baseMs, capMs);
}
