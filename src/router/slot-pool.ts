// The one owner of instance slots (undici's pool-base.js owns its queue and running count the same
// way). A slot is taken only by grant() and given back only by Lease.release(), exactly once, with the
// verdict of the attempt; every in-flight count, breaker verdict, queue hand-over and stall check
// happens here. The router decides where a request should go (sessions, named instances); this decides
// whether it may, and when.
import type { EventEmitter } from 'node:events';
import { type BackgroundErrorHandler, every } from '../core/background.js';
import { YggError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { PoolOutlook } from '../core/pool.js';
import type { Verdict } from './attribution.js';
import { pickTwoChoices } from './balancer.js';
import type { BreakerTransition } from './breaker.js';
import type { RouterMetrics } from './metrics.js';
import { type StallOptions, stallThreshold, stallVerdict, TtfbWindow } from './stall.js';
import type { Upstream, UpstreamChange, UpstreamSet } from './upstreams.js';
import { WaitingRoom } from './waiting-room.js';

/** An instance that opens its breaker this many times without recovering in between is replaced. */
const REPLACE_AFTER_EJECTIONS = 3;
const STALL_CHECK_MS = 250;

/** One request's hold on one slot of one instance. */
export class Lease {
  /** When the slot was granted (the router's clock). */
  readonly grantedAt: number;
  /** This lease carries the half-open probe of the instance's breaker. */
  readonly probe: boolean;
  private released = false;
  private answered = false;

  /** `throughBreaker`: the breaker let this request in (not a named /agent/{id} request, which bypasses it). */
  constructor(
    readonly up: Upstream,
    private readonly owner: SlotPool,
    now: number,
    throughBreaker: boolean,
  ) {
    this.grantedAt = now;
    this.probe = throughBreaker && up.breaker.state(now) === 'half-open';
  }

  /** The instance started its answer (the stall detector's evidence of progress). */
  responded(): void {
    if (this.answered || this.released) return;
    this.answered = true;
    this.owner.onResponded(this);
  }

  /** Gives the slot back; later calls do nothing. */
  release(verdict: Verdict): void {
    if (this.released) return;
    this.released = true;
    this.owner.onReleased(this, verdict);
  }
}

export interface SlotPoolOptions {
  upstreams: UpstreamSet;
  /** MAX_CONCURRENCY. */
  limit: number;
  queueMax: number;
  queueTimeoutMs: number;
  stall: StallOptions;
  metrics: RouterMetrics;
  logger: Logger;
  now: () => number;
  random: () => number;
  onDemand?: (() => void) | undefined;
  outlook?: (() => PoolOutlook) | undefined;
  onBreaker?: ((instance: string, t: BreakerTransition) => void) | undefined;
  /** Asks for a new incarnation of an instance that stays bad (stalled or ejected again and again). */
  onReplace?: ((instance: string, reason: string) => void) | undefined;
  /** A health check of a suspect instance now: false = it failed (undefined: no verdict). */
  probe?: ((instance: string) => Promise<boolean | undefined>) | undefined;
  /** Where errors of the background work (stall checks, queue sweeps) go. */
  onError: BackgroundErrorHandler;
}

export class SlotPool {
  private readonly room: WaitingRoom;
  private readonly ttfb = new TtfbWindow();
  private readonly stallTimer: NodeJS.Timeout | undefined;
  private held = 0;

  constructor(private readonly opts: SlotPoolOptions) {
    this.room = new WaitingRoom({
      queueMax: opts.queueMax,
      queueTimeoutMs: opts.queueTimeoutMs,
      upstreams: opts.upstreams,
      metrics: opts.metrics,
      now: opts.now,
      usable: (up, now) => this.usable(up, now),
      enter: (up, now) => this.enter(up, now),
      grant: (up, now) => this.grant(up, now),
      pick: (now) => this.pick(now, undefined),
      onDemand: opts.onDemand,
      outlook: opts.outlook,
      onError: opts.onError,
    });
    opts.upstreams.onChange((c) => this.onPoolChange(c));
    if (opts.stall.minStallMs > 0) {
      this.stallTimer = every(
        STALL_CHECK_MS,
        'stall checks',
        () => this.checkStalls(this.opts.now()),
        opts.onError,
      );
    }
  }

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.room.length;
  }

  /** Slots held across the pool (every lease not yet released). */
  get inflight(): number {
    return this.held;
  }

  // ---- taking a slot ---------------------------------------------------------------------------

  /** A slot on `up` now if it has room and its breaker lets the request in, else undefined. */
  tryTake(up: Upstream): Lease | undefined {
    const now = this.opts.now();
    if (up.inflight >= up.limit || !this.usable(up, now) || !this.enter(up, now)) return undefined;
    return this.grant(up, now);
  }

  /** A slot on the least loaded usable instance (never `exclude` when there is another), or undefined. */
  tryPick(exclude?: Upstream): Lease | undefined {
    const now = this.opts.now();
    const up = this.pick(now, exclude);
    return up ? this.grant(up, now) : undefined;
  }

  /** A slot on a named instance, which waits for nothing: YGG_ERR_CAPACITY when it is full. */
  take(up: Upstream): Lease {
    if (up.inflight >= up.limit) {
      const what =
        up.limit === this.opts.limit
          ? `MAX_CONCURRENCY=${up.limit}`
          : `this router's share of MAX_CONCURRENCY=${this.opts.limit} (${up.limit})`;
      throw new YggError('YGG_ERR_CAPACITY', `instance ${up.id} is at ${what}`, { retryAfterSeconds: 1 });
    }
    return this.grant(up, this.opts.now(), false);
  }

  /**
   * Sets how many slots this router may hold on `up` (its share of MAX_CONCURRENCY). A lower limit
   * takes effect for the next grant (requests in flight finish); a higher one serves waiters at once.
   */
  setLimit(up: Upstream, limit: number): void {
    const next = Math.max(0, Math.min(this.opts.limit, limit));
    const raised = next > up.limit;
    up.limit = next;
    if (raised) this.room.pump(up);
  }

  /** Waits in the FIFO for a slot (on `pinned` when given); see WaitingRoom.wait. */
  wait(gone: EventEmitter, pinned: string | null): Promise<Lease> {
    return this.room.wait(gone, pinned);
  }

  /**
   * When every active instance is ejected: how long until the first may take a request again (for
   * Retry-After), else undefined.
   */
  allEjected(): number | undefined {
    const now = this.opts.now();
    const active = this.opts.upstreams.active;
    if (active.length === 0 || active.some((u) => this.usable(u, now))) return undefined;
    let min = Number.POSITIVE_INFINITY;
    for (const u of active) {
      const s = u.breaker.snapshot(now);
      if (s.openUntil !== undefined) min = Math.min(min, s.openUntil - now);
    }
    return Number.isFinite(min) ? min : 1000;
  }

  close(err: YggError): void {
    if (this.stallTimer) clearInterval(this.stallTimer);
    this.room.close(err);
  }

  // ---- the lease's two ends ----------------------------------------------------------------------

  /** The only place a slot is taken. */
  private grant(up: Upstream, now: number, throughBreaker = true): Lease {
    const lease = new Lease(up, this, now, throughBreaker);
    up.inflight++;
    up.awaiting.add(lease);
    this.held++;
    return lease;
  }

  /** @internal Lease.responded */
  onResponded(lease: Lease): void {
    const now = this.opts.now();
    lease.up.awaiting.delete(lease);
    lease.up.lastResponseAt = now;
    this.ttfb.add(now - lease.grantedAt);
    if (lease.up.stalledAt !== undefined) this.recover(lease.up, now);
  }

  /** @internal Lease.release: the only place a slot is given back. */
  onReleased(lease: Lease, verdict: Verdict): void {
    const { up } = lease;
    up.inflight--;
    up.awaiting.delete(lease);
    this.held--;
    const now = this.opts.now();
    let t: BreakerTransition | undefined;
    if (verdict === 'success') t = up.breaker.onSuccess(now);
    else if (verdict === 'failure') t = up.breaker.onFailure(now);
    else if (lease.probe) up.breaker.releaseProbe(); // a probe without a verdict: let another probe
    if (t) this.onBreakerTransition(up, t);
    this.room.pump(up);
  }

  // ---- choosing ----------------------------------------------------------------------------------

  /** Whether `up` may get requests now: its breaker lets them (a stall ejects through the breaker too). */
  private usable(up: Upstream, now: number): boolean {
    return up.breaker.available(now);
  }

  /** Asks the breaker to let one request in, reporting the open → half-open change it may make. */
  private enter(up: Upstream, now: number): boolean {
    const ok = up.breaker.canRequest(now);
    const t = up.breaker.transition;
    if (t) this.onBreakerTransition(up, t);
    return ok;
  }

  /** Least in-flight by two choices among usable instances with room, already entered. */
  private pick(now: number, exclude: Upstream | undefined): Upstream | undefined {
    const { active } = this.opts.upstreams;
    const limit = this.opts.limit;
    const load = (u: Upstream) =>
      (u === exclude && active.length > 1) || u.inflight >= u.limit || !this.usable(u, now)
        ? limit
        : u.inflight;
    const up = pickTwoChoices(active, load, limit, this.opts.random);
    if (up && !this.enter(up, now)) return undefined;
    return up;
  }

  // ---- instances that fail -----------------------------------------------------------------------

  private onBreakerTransition(up: Upstream, t: BreakerTransition): void {
    this.opts.metrics.breakerTransitions.inc({ instance: up.id, to: t.to });
    this.opts.logger.warn(
      { instance: up.id, from: t.from, to: t.to, ejectionMs: t.ejectionMs },
      'circuit breaker',
    );
    this.opts.onBreaker?.(up.id, t);
    if (t.to === 'open') {
      // Its sessions' waiters move on rather than wait out the ejection.
      this.room.unpin(up.id);
      const ejections = up.breaker.snapshot(t.at).ejections;
      if (ejections >= REPLACE_AFTER_EJECTIONS) {
        this.replace(up, `its breaker opened ${ejections} times without the instance recovering`);
      }
    }
    if (t.to === 'closed') this.room.pump(up);
  }

  /**
   * Outlier detection by time to first byte (stall.ts): an instance that stalls is ejected at once
   * and is back as soon as it answers. When its ejection ends it gets one request (the half-open
   * probe); if that too waits with no answer, it stays bad and is replaced. A lone late request never
   * gets an instance replaced (a legitimately long one is unharmed).
   */
  private checkStalls(now: number): void {
    const threshold = stallThreshold(this.ttfb, this.opts.stall);
    for (const up of this.opts.upstreams.all()) {
      if (up.awaiting.size === 0 && up.stalledAt === undefined) continue;
      const waits = { waitingSince: grantTimes(up.awaiting), lastResponseAt: up.lastResponseAt };
      const verdict = stallVerdict(waits, now, threshold, this.opts.stall.minWaiting);
      if (verdict === 'ok' && up.stalledAt !== undefined) {
        this.recover(up, now);
      } else if (up.stalledAt === undefined) {
        if (verdict === 'suspect') this.suspect(up, now, threshold);
        else if (verdict === 'lone')
          this.eject(
            up,
            now,
            `a request waited over ${Math.round(2 * threshold)} ms for an answer`,
            threshold,
          );
        else if (verdict === 'stalled')
          this.eject(up, now, `requests waited over ${Math.round(threshold)} ms for an answer`, threshold);
      } else if (verdict === 'stalled' && up.breaker.state(now) === 'half-open') {
        // Its ejection is over and it still answers nothing, the probe included: it stays bad.
        this.replace(up, `stalled for ${Math.round(now - up.stalledAt + threshold)} ms with no answer`);
      }
    }
  }

  /** A stalled instance answered: its ejection was for the stall only, so it is back at once. */
  private recover(up: Upstream, now: number): void {
    this.opts.logger.info({ instance: up.id }, 'instance answers again after a stall');
    up.stalledAt = undefined;
    const t = up.stallOpened ? up.breaker.reset(now) : undefined;
    up.stallOpened = false;
    if (t) this.onBreakerTransition(up, t);
    this.room.pumpAll();
  }

  /** Holds a stalled instance out of the pool (its breaker opens) until it answers again. */
  private eject(up: Upstream, now: number, why: string, threshold: number): void {
    up.stalledAt = now;
    this.opts.metrics.stalls.inc({ instance: up.id });
    this.opts.logger.warn(
      { instance: up.id, waiting: up.awaiting.size, thresholdMs: Math.round(threshold) },
      `instance stalled: ${why}; ejecting it`,
    );
    const t = up.breaker.trip(now);
    up.stallOpened = t !== undefined;
    if (t) this.onBreakerTransition(up, t);
    else this.room.unpin(up.id);
  }

  /** One request has waited too long: a health check now says whether the instance is frozen. */
  private suspect(up: Upstream, now: number, threshold: number): void {
    const probe = this.opts.probe;
    if (!probe || up.probing || (up.probedAt !== undefined && now - up.probedAt < threshold)) return;
    up.probing = true;
    probe(up.id)
      .then((healthy) => {
        const at = this.opts.now();
        up.probedAt = at;
        if (healthy === false && up.stalledAt === undefined && this.opts.upstreams.get(up.id) === up) {
          this.eject(up, at, 'a request waited with no answer and its health check failed', threshold);
        }
      })
      .catch((err: unknown) => this.opts.onError('suspect health check', err))
      .finally(() => {
        up.probing = false;
      });
  }

  private replace(up: Upstream, reason: string): void {
    if (up.replaceRequested || !this.opts.onReplace) return;
    up.replaceRequested = true;
    this.opts.logger.warn({ instance: up.id, reason }, 'asking the controller to replace the instance');
    this.opts.onReplace(up.id, reason);
  }

  private onPoolChange(c: UpstreamChange): void {
    for (const up of [...c.removed, ...c.draining]) this.room.unpin(up.id);
    for (const up of c.removed) {
      // Requests still counted on a removed incarnation finish on their own; nothing new goes there.
      up.draining = true;
    }
    this.room.pumpAll();
  }
}

function* grantTimes(leases: Iterable<Lease>): Iterable<number> {
  for (const l of leases) yield l.grantedAt;
}
