// The controllers' election: one leads through a lease in Redis with a fencing token (the term); the
// others stand by and campaign every third of the lease. Decisions come from lease.ts; this class
// talks to Redis and tells its owner when it is elected or deposed.
import type { Redis } from 'ioredis';
import type { BackgroundErrorHandler } from '../core/background.js';
import { every } from '../core/background.js';
import type { SharedKeys } from './keys.js';
import { type LeaseAnswer, type LeaseView, mayAct, mayScale, NO_LEASE, nextLease } from './lease.js';
import type { SharedScripts } from './scripts.js';

export interface LeaderElectionOptions {
  redis: Redis;
  scripts: SharedScripts;
  keys: SharedKeys;
  /** This controller's name in the lease (shown as leadership.holder). */
  holder: string;
  /** LEADER_LEASE_MS. */
  leaseMs: number;
  onElected: (term: number) => void;
  onDeposed: (reason: string) => void;
  onError: BackgroundErrorHandler;
  now?: () => number;
}

export interface Leadership {
  /** Whether this controller leads. */
  leader: boolean;
  holder: string | null;
  term: number;
}

export class LeaderElection {
  private view: LeaseView = NO_LEASE;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private running: Promise<void> | undefined;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.timer = every(
      Math.max(50, Math.floor(this.opts.leaseMs / 3)),
      'leader election',
      () => this.round(),
      this.opts.onError,
    );
    void this.round().catch((err: unknown) => this.opts.onError('leader election', err));
  }

  /** One campaign or renewal (never two at once). */
  round(): Promise<void> {
    this.running ??= this.campaign().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  status(): Leadership {
    return { leader: this.view.leading, holder: this.view.holder, term: this.view.term };
  }

  get term(): number {
    return this.view.term;
  }

  /** May the leader change the pool now (its lease surely holds)? */
  mayAct(): boolean {
    return mayAct(this.view, this.now());
  }

  /** May it scale (it reaches Redis, so it sees every router's load)? */
  mayScale(): boolean {
    return mayScale(this.view, this.now());
  }

  get unreachable(): boolean {
    return this.view.unreachable;
  }

  /** Stops campaigning; a leader gives its lease up so the standby takes over at once. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => {});
    if (this.view.leading) {
      await this.opts.scripts.release(this.opts.keys.leader, this.opts.holder, this.view.term).catch(() => 0);
      this.view = { ...this.view, leading: false };
    }
  }

  private async campaign(): Promise<void> {
    const { keys, scripts, holder, leaseMs } = this.opts;
    const sentAt = this.now();
    let answer: LeaseAnswer;
    try {
      if (this.view.leading) {
        const ok = await scripts.renew(keys.leader, keys.term, holder, this.view.term, leaseMs);
        answer = ok === 1 ? { kind: 'renewed', sentAt } : { kind: 'lost' };
      } else {
        const [won, term, who] = await scripts.acquire(keys.leader, keys.term, holder, leaseMs);
        answer =
          won === 1
            ? { kind: 'acquired', term, holder: who, sentAt }
            : { kind: 'held-by-other', term, holder: who };
      }
    } catch {
      answer = { kind: 'unreachable' };
    }
    const before = this.view;
    const { view, change } = nextLease(this.view, answer, leaseMs);
    this.view = view;
    if (this.timer === undefined && change === 'elected') {
      // Stopped meanwhile: give the lease straight back.
      await scripts.release(keys.leader, holder, view.term).catch(() => 0);
      this.view = { ...view, leading: false };
      return;
    }
    if (change === 'elected') this.opts.onElected(view.term);
    if (change === 'deposed') {
      this.opts.onDeposed(
        answer.kind === 'held-by-other'
          ? `${answer.holder} leads in term ${answer.term}`
          : `the lease of term ${before.term} is no longer ours`,
      );
    }
  }
}
