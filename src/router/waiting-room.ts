// The requests waiting for a slot when every instance is at MAX_CONCURRENCY: the promises, timers and
// hand-overs around the pure AdmissionQueue (FIFO order and bounds). A freed slot goes to the oldest
// waiter its instance can serve, as a Lease granted by the SlotPool; waiters past QUEUE_TIMEOUT_MS get
// 503; a wait with no instance at all wakes the autoscaler (the activator), and when nothing is ready
// or starting either, waiters are told so at once (YGG_ERR_NO_INSTANCES) instead of waiting it out.
import type { EventEmitter } from 'node:events';
import type { BackgroundErrorHandler } from '../core/background.js';
import { type Cancel, type Clock, loopOn, systemClock } from '../core/clock.js';
import { YggError } from '../core/errors.js';
import type { PoolOutlook } from '../core/pool.js';
import { AdmissionQueue, type Waiter } from './admission-queue.js';
import type { RouterMetrics } from './metrics.js';
import type { Lease } from './slot-pool.js';
import type { Upstream, UpstreamSet } from './upstreams.js';

/** Rejection reason of a waiter whose client went away (nothing to answer). */
export const CLIENT_GONE = null;

interface Pending {
  resolve: (lease: Lease) => void;
  reject: (err: YggError | null) => void;
}

export interface WaitingRoomOptions {
  queueMax: number;
  queueTimeoutMs: number;
  upstreams: UpstreamSet;
  metrics: Pick<RouterMetrics, 'queueRejections' | 'queueWait'>;
  now: () => number;
  /** Whether `up` may get requests now (breaker available, not stalled). */
  usable: (up: Upstream, now: number) => boolean;
  /** Lets one request into `up` if its breaker allows (and reports the breaker's transitions). */
  enter: (up: Upstream, now: number) => boolean;
  /** Takes a slot of `up` (the only way in-flight counts go up). */
  grant: (up: Upstream, now: number) => Lease;
  /** The least loaded usable instance with room, already entered, or undefined. */
  pick: (now: number) => Upstream | undefined;
  /** A request waits and no instance is ready: start one now. */
  onDemand?: (() => void) | undefined;
  /** Whether any capacity can come (see PoolOutlook); without it, waiters always wait. */
  outlook?: (() => PoolOutlook) | undefined;
  /** Where an error of the sweep goes (logged and counted by the owner). */
  onError?: BackgroundErrorHandler | undefined;
  /** The sweep's timer (tests pass a FakeClock, and its `now` as `now`). @default systemClock */
  clock?: Clock | undefined;
}

const noInstances = () =>
  new YggError(
    'YGG_ERR_NO_INSTANCES',
    'no instance is ready or starting: every instance failed and waits to restart (the controller status says why)',
    { retryAfterSeconds: 1 },
  );

export class WaitingRoom {
  private readonly queue: AdmissionQueue<Pending>;
  private sweepTimer: Cancel | undefined;

  constructor(private readonly opts: WaitingRoomOptions) {
    this.queue = new AdmissionQueue<Pending>({ maxLength: opts.queueMax, timeoutMs: opts.queueTimeoutMs });
  }

  get length(): number {
    return this.queue.length;
  }

  /**
   * Waits (pinned to an instance, or for any) until a slot is handed over as a Lease. Rejects with
   * YGG_ERR_CAPACITY when full or too late, YGG_ERR_NO_INSTANCES when no capacity can come, and
   * CLIENT_GONE when `gone` closes first.
   */
  wait(gone: EventEmitter, pinned: string | null): Promise<Lease> {
    return new Promise<Lease>((resolve, reject) => {
      const enqueuedAt = this.opts.now();
      const pending: Pending = { resolve, reject };
      const waiter = this.queue.enqueue(pending, pinned, enqueuedAt);
      if (!waiter) {
        this.opts.metrics.queueRejections.inc({ reason: 'full' });
        reject(
          new YggError(
            'YGG_ERR_CAPACITY',
            `every instance is at MAX_CONCURRENCY and QUEUE_MAX=${this.opts.queueMax} requests already wait`,
            { retryAfterSeconds: 1 },
          ),
        );
        return;
      }
      if (this.opts.upstreams.active.length === 0) {
        // Counted in the queue first: the activator sees this request as demand.
        this.opts.onDemand?.();
        if (this.nothingComing()) {
          this.queue.cancel(waiter);
          this.opts.metrics.queueRejections.inc({ reason: 'no_instances' });
          reject(noInstances());
          return;
        }
      }
      const onGone = () => {
        if (this.queue.cancel(waiter)) reject(CLIENT_GONE);
      };
      gone.once('close', onGone);
      pending.resolve = (lease) => {
        gone.off('close', onGone);
        this.opts.metrics.queueWait.observe((this.opts.now() - enqueuedAt) / 1000);
        resolve(lease);
      };
      pending.reject = (err) => {
        gone.off('close', onGone);
        reject(err);
      };
      this.ensureSweep();
    });
  }

  /** Hands free slots of `up` to the oldest waiters it can serve. */
  pump(up: Upstream): void {
    const { upstreams } = this.opts;
    if (this.queue.length === 0 || up.draining || upstreams.get(up.id) !== up) return;
    const now = this.opts.now();
    while (up.inflight < up.limit && this.queue.length > 0 && this.opts.usable(up, now)) {
      const w = this.queue.takeFor(up.id);
      if (!w) return;
      if (!this.opts.enter(up, now)) {
        // Lost the half-open probe race: the waiter goes elsewhere or back in line.
        this.dispatchElsewhere(w);
        return;
      }
      w.value.resolve(this.opts.grant(up, now));
    }
  }

  pumpAll(): void {
    for (const up of this.opts.upstreams.active) this.pump(up);
  }

  /** The waiters pinned to an instance that is gone or ejected move on (their sessions move). */
  unpin(instanceId: string): void {
    for (const w of this.queue.unpin(instanceId)) this.dispatchElsewhere(w);
  }

  /** Answers every waiter with `err` (the router is stopping). */
  close(err: YggError): void {
    this.sweepTimer?.();
    this.sweepTimer = undefined;
    this.rejectAll(err);
  }

  private rejectAll(err: YggError): void {
    for (const w of this.queue.expire(Number.POSITIVE_INFINITY)) w.value.reject(err);
  }

  private nothingComing(): boolean {
    return this.opts.upstreams.active.length === 0 && this.opts.outlook?.() === 'none';
  }

  /** A waiter whose instance is gone or unusable: give it to any instance, or back to the free queue. */
  private dispatchElsewhere(w: Waiter<Pending>): void {
    const now = this.opts.now();
    const up = this.opts.pick(now);
    if (up) {
      w.value.resolve(this.opts.grant(up, now));
      return;
    }
    if (!this.queue.enqueue(w.value, null, w.enqueuedAt)) {
      w.value.reject(new YggError('YGG_ERR_CAPACITY', 'the queue is full', { retryAfterSeconds: 1 }));
    }
  }

  /**
   * While anyone waits: expire old waiters (503), answer them all when no capacity can come, and hand
   * slots to breakers that reopened.
   */
  private ensureSweep(): void {
    if (this.sweepTimer) return;
    const timeout = this.opts.queueTimeoutMs;
    const tick = Math.max(5, Math.min(50, Math.floor(timeout / 10)));
    this.sweepTimer = loopOn(
      this.opts.clock ?? systemClock,
      tick,
      'queue sweep',
      () => this.sweep(timeout),
      this.opts.onError ?? (() => {}),
    );
  }

  private sweep(timeout: number): void {
    for (const w of this.queue.expire(this.opts.now())) {
      this.opts.metrics.queueRejections.inc({ reason: 'timeout' });
      w.value.reject(
        new YggError('YGG_ERR_CAPACITY', `no instance had a free slot within QUEUE_TIMEOUT_MS=${timeout}`, {
          retryAfterSeconds: Math.max(1, Math.ceil(timeout / 10_000)),
        }),
      );
    }
    if (this.queue.length > 0 && this.nothingComing()) {
      this.opts.metrics.queueRejections.inc({ reason: 'no_instances' }, this.queue.length);
      this.rejectAll(noInstances());
    }
    this.pumpAll();
    if (this.queue.length === 0 && this.sweepTimer) {
      this.sweepTimer();
      this.sweepTimer = undefined;
    }
  }
}
