// Per-instance circuit breaker modelled on Envoy outlier detection: consecutive failures eject an
// instance for a time that grows with each ejection, then one probe decides. Pure: `now` is an argument.
import { exponentialDelay } from '../core/backoff.js';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /**
   * Consecutive failures that open a closed breaker (BREAKER_FAILURES).
   * @default 5
   */
  failureThreshold?: number;
  /**
   * First ejection; ejection n lasts baseEjectionMs × 2^(n-1) (BREAKER_RESET_MS). Envoy grows it
   * linearly (base × n); doubling reaches the cap in a few steps for an instance that keeps failing.
   * @default 30000
   */
  baseEjectionMs?: number;
  /**
   * Longest ejection (>= baseEjectionMs).
   * @default 300000
   */
  maxEjectionMs?: number;
}

/** A state change, for the caller to log and count; the breaker itself does no I/O. */
export interface BreakerTransition {
  from: BreakerState;
  to: BreakerState;
  at: number;
  /** When `to` is 'open': how long this ejection lasts. */
  ejectionMs?: number;
}

export interface BreakerSnapshot {
  state: BreakerState;
  consecutiveFailures: number;
  /** Ejections remembered for the backoff (after decay). */
  ejections: number;
  /** While open: when the ejection ends and a probe is allowed. */
  openUntil?: number;
}

export class CircuitBreaker {
  readonly failureThreshold: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;

  private current: BreakerState = 'closed';
  private failures = 0;
  private ejections = 0;
  private openUntil = 0;
  private probeInFlight = false;
  /** While closed: start of the period not yet counted toward decaying `ejections`. */
  private decayFrom = 0;
  private last: BreakerTransition | undefined;

  constructor(options: BreakerOptions = {}) {
    const failureThreshold = options.failureThreshold ?? 5;
    const baseEjectionMs = options.baseEjectionMs ?? 30_000;
    const maxEjectionMs = options.maxEjectionMs ?? 300_000;
    if (!(Number.isInteger(failureThreshold) && failureThreshold >= 1)) {
      throw new TypeError(
        `CircuitBreaker: failureThreshold=${failureThreshold} is invalid: must be an integer >= 1`,
      );
    }
    if (!(Number.isFinite(baseEjectionMs) && baseEjectionMs > 0)) {
      throw new TypeError(
        `CircuitBreaker: baseEjectionMs=${baseEjectionMs} is invalid: must be a number > 0`,
      );
    }
    if (!(Number.isFinite(maxEjectionMs) && maxEjectionMs >= baseEjectionMs)) {
      throw new TypeError(
        `CircuitBreaker: maxEjectionMs=${maxEjectionMs} is invalid: must be a number >= baseEjectionMs (${baseEjectionMs})`,
      );
    }
    this.failureThreshold = failureThreshold;
    this.baseEjectionMs = baseEjectionMs;
    this.maxEjectionMs = maxEjectionMs;
  }

  /**
   * The state change made by the last call to canRequest, onSuccess, onFailure or releaseProbe;
   * undefined when that call changed nothing.
   */
  get transition(): BreakerTransition | undefined {
    return this.last;
  }

  /**
   * Asks to send a request. Closed: yes. Open: no until the ejection ends, then the breaker goes
   * half-open and this call takes its single probe. Half-open: no while the probe is out.
   * Read `transition` afterwards for the open → half-open change.
   */
  canRequest(now: number): boolean {
    this.last = undefined;
    if (this.current === 'closed') return true;
    if (this.current === 'open') {
      if (now < this.openUntil) return false;
      this.move('half-open', now);
    } else if (this.probeInFlight) {
      return false;
    }
    this.probeInFlight = true;
    return true;
  }

  /** Whether canRequest(now) would say yes, without taking the probe (for filtering candidates). */
  available(now: number): boolean {
    if (this.current === 'closed') return true;
    if (this.current === 'open') return now >= this.openUntil;
    return !this.probeInFlight;
  }

  /**
   * A request succeeded. Half-open: the probe passed and the breaker closes; the ejection count is
   * kept (and decays while closed) so an instance that flaps is ejected for longer each time.
   */
  onSuccess(now: number): BreakerTransition | undefined {
    this.last = undefined;
    if (this.current === 'half-open') {
      this.close(now);
    } else if (this.current === 'closed') {
      this.decay(now);
      this.failures = 0;
    }
    // Open: the late answer of a request sent before the ejection; it does not end the ejection.
    return this.last;
  }

  /**
   * A request failed. Closed: counts toward the threshold and ejects on reaching it. Half-open:
   * the probe failed and the breaker opens again for a longer time.
   */
  onFailure(now: number): BreakerTransition | undefined {
    this.last = undefined;
    if (this.current === 'closed') {
      this.decay(now);
      this.failures += 1;
      if (this.failures >= this.failureThreshold) this.eject(now);
    } else if (this.current === 'half-open') {
      this.eject(now);
    }
    // Open: a late failure of a request sent before the ejection; the ejection already covers it.
    return this.last;
  }

  /**
   * Ejects now whatever the failure count (outlier detection saw the instance stall), like a failure
   * that reached the threshold. An open breaker stays open (its ejection is not extended).
   */
  trip(now: number): BreakerTransition | undefined {
    this.last = undefined;
    if (this.current === 'closed') this.decay(now);
    if (this.current !== 'open') this.eject(now);
    return this.last;
  }

  /**
   * Ends an ejection early: the reason for it is gone (a stalled instance answered again). The
   * ejection count is kept, so an instance that keeps stalling is held out longer each time.
   */
  reset(now: number): BreakerTransition | undefined {
    this.last = undefined;
    if (this.current !== 'closed') this.close(now);
    return this.last;
  }

  /** The probe was abandoned (client gone) with no verdict: let the next request probe instead. */
  releaseProbe(): void {
    this.last = undefined;
    if (this.current === 'half-open') this.probeInFlight = false;
  }

  /** The state as canRequest would see it: an open breaker whose ejection has ended reads half-open. */
  state(now: number): BreakerState {
    return this.current === 'open' && now >= this.openUntil ? 'half-open' : this.current;
  }

  snapshot(now: number): BreakerSnapshot {
    return {
      state: this.state(now),
      consecutiveFailures: this.failures,
      ejections: this.current === 'closed' ? this.decayed(now).ejections : this.ejections,
      ...(this.current === 'open' && { openUntil: this.openUntil }),
    };
  }

  private eject(now: number): void {
    const ms = exponentialDelay(this.ejections + 1, this.baseEjectionMs, this.maxEjectionMs);
    this.ejections += 1;
    this.failures = 0;
    this.probeInFlight = false;
    this.openUntil = now + ms;
    this.move('open', now, ms);
  }

  private close(now: number): void {
    this.failures = 0;
    this.probeInFlight = false;
    this.decayFrom = now;
    this.move('closed', now);
  }

  /**
   * Forgets one ejection per baseEjectionMs spent closed, so an instance that stays healthy is soon
   * back to the base ejection time while one that flaps keeps growing it.
   */
  private decay(now: number): void {
    const d = this.decayed(now);
    this.ejections = d.ejections;
    this.decayFrom = d.decayFrom;
  }

  private decayed(now: number): { ejections: number; decayFrom: number } {
    if (this.ejections === 0) return { ejections: 0, decayFrom: now };
    const steps = Math.max(0, Math.floor((now - this.decayFrom) / this.baseEjectionMs));
    return {
      ejections: Math.max(0, this.ejections - steps),
      decayFrom: this.decayFrom + steps * this.baseEjectionMs,
    };
  }

  private move(to: BreakerState, at: number, ejectionMs?: number): void {
    this.last = { from: this.current, to, at, ...(ejectionMs !== undefined && { ejectionMs }) };
    this.current = to;
  }
}
