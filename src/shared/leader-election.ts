// The controllers' election: one leads through a lease with a fencing token (the term); the others
// stand by and campaign every third of the lease. The lease lives in a LeaseStore: Redis (its scripts),
// or a Kubernetes Lease (kube-lease-store.ts) with the term still handed out by Redis. Decisions come
// from lease.ts; this class campaigns and tells its owner when it is elected or deposed.
import type { BackgroundErrorHandler } from '../core/background.js';
import { every } from '../core/background.js';
import type { SharedKeys } from './keys.js';
import { type LeaseAnswer, type LeaseView, mayAct, mayScale, NO_LEASE, nextLease } from './lease.js';
import type { SharedScripts } from './scripts.js';

/** Where the lease is held. Answers as the Redis scripts do: [won 1|0, term, holder]; 1|0. */
export interface LeaseStore {
  acquire(holder: string, leaseMs: number): Promise<[number, number, string]>;
  renew(holder: string, term: number, leaseMs: number): Promise<number>;
  release(holder: string, term: number): Promise<number>;
  /** Where, in words (status and logs): "redis", "Lease ns/name". */
  readonly where: string;
}

/** The lease in Redis: the leader key with the holder and term, the term key INCRed by each new leader. */
export function redisLeaseStore(scripts: SharedScripts, keys: SharedKeys): LeaseStore {
  return {
    where: 'redis',
    acquire: (holder, leaseMs) => scripts.acquire(keys.leader, keys.term, holder, leaseMs),
    renew: (holder, term, leaseMs) => scripts.renew(keys.leader, keys.term, holder, term, leaseMs),
    release: (holder, term) => scripts.release(keys.leader, holder, term),
  };
}

export interface LeaderElectionOptions {
  store: LeaseStore;
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
  /** Where the lease is held: "redis", "Lease ns/name". */
  via: string;
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
    return {
      leader: this.view.leading,
      holder: this.view.holder,
      term: this.view.term,
      via: this.opts.store.where,
    };
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
      await this.opts.store.release(this.opts.holder, this.view.term).catch(() => 0);
      this.view = { ...this.view, leading: false };
    }
  }

  private async campaign(): Promise<void> {
    const { store, holder, leaseMs } = this.opts;
    const sentAt = this.now();
    let answer: LeaseAnswer;
    try {
      if (this.view.leading) {
        const ok = await store.renew(holder, this.view.term, leaseMs);
        answer = ok === 1 ? { kind: 'renewed', sentAt } : { kind: 'lost' };
      } else {
        const [won, term, who] = await store.acquire(holder, leaseMs);
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
      await store.release(holder, view.term).catch(() => 0);
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
