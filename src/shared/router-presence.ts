// A router among routers: every heartbeat it says it is alive, reads who else is, applies its share
// of each instance's capacity (capacity.ts decides) and then reports its shares and load. The leader
// sums the reports for the autoscaler; the other routers read them to raise their shares safely.
import type { Redis } from 'ioredis';
import { nextShare, type RouterReport, viewKey } from './capacity.js';
import type { SharedKeys } from './keys.js';

/** What the presence needs of the router, declared here. */
export interface ShareHolder {
  /** The instances the router serves now, each with its share and in-flight requests. */
  instances(): Array<{ id: string; limit: number; inflight: number }>;
  /** Requests waiting in the router's queue. */
  queued(): number;
  setLimit(id: string, limit: number): void;
}

export interface PresenceReport extends RouterReport {
  queued: number;
  at: number;
}

export interface RouterPresenceOptions {
  redis: Redis;
  keys: SharedKeys;
  id: string;
  /** MAX_CONCURRENCY. */
  total: number;
  /** ROUTER_HEARTBEAT_MS: a router silent for 3 heartbeats is gone. */
  heartbeatMs: number;
  router: ShareHolder;
  now?: () => number;
}

export class RouterPresence {
  private readonly now: () => number;
  private routers: string[];
  private others: PresenceReport[] = [];
  private lastOkAt: number | undefined;
  /** Raises are held until then (after a gap in our heartbeats others may have counted us gone). */
  private holdUntil = 0;
  /** The first heartbeat has read who else serves the pool. */
  private joined = false;

  constructor(private readonly opts: RouterPresenceOptions) {
    this.now = opts.now ?? Date.now;
    this.routers = [opts.id];
  }

  get ttlMs(): number {
    return this.opts.heartbeatMs * 3;
  }

  /** The routers seen at the last heartbeat (this one included). */
  peers(): readonly string[] {
    return this.routers;
  }

  /** A share for an instance that just appeared, from the last reports (the same rule). */
  initialShare(instance: string): number {
    return this.share(instance, 0);
  }

  /**
   * One heartbeat: register, read the live routers and their reports, apply shares, report.
   * Throws when Redis does not answer (the caller counts it; shares stay as they are).
   */
  async beat(): Promise<void> {
    const { redis, keys, id } = this.opts;
    const now = this.now();
    if (this.lastOkAt !== undefined && now - this.lastOkAt > this.opts.heartbeatMs * 2) {
      // We were silent long enough to have been counted gone: let the others settle first.
      this.holdUntil = now + this.ttlMs;
    }
    const replies = await redis
      .multi()
      .zadd(keys.routers, now, id)
      .zrangebyscore(keys.routers, now - this.ttlMs, '+inf')
      .hgetall(keys.reports)
      .exec();
    if (!replies) throw new Error('the heartbeat transaction was discarded');
    for (const [err] of replies) if (err) throw err;
    const live = (replies[1]![1] as string[]).filter((r) => r !== id);
    this.joined = true;
    const all = replies[2]![1] as Record<string, string>;
    this.routers = [id, ...live];
    this.others = [];
    for (const r of live) {
      const text = all[r];
      if (!text) continue;
      try {
        this.others.push(JSON.parse(text) as PresenceReport);
      } catch {
        // A malformed report counts as none: no raise against it.
      }
    }
    const shares: Record<string, number> = {};
    const inflight: Record<string, number> = {};
    for (const inst of this.opts.router.instances()) {
      const next = this.share(inst.id, inst.limit, now);
      if (next !== inst.limit) this.opts.router.setLimit(inst.id, next);
      shares[inst.id] = next;
      inflight[inst.id] = inst.inflight;
    }
    // After applying, the report: what we may hold and hold now (in flight only drops from here).
    for (const inst of this.opts.router.instances()) inflight[inst.id] = inst.inflight;
    const report: PresenceReport = {
      id,
      view: viewKey(this.routers),
      shares,
      inflight,
      queued: this.opts.router.queued(),
      at: now,
    };
    const stale = Object.keys(all).filter((r) => r !== id && !live.includes(r));
    const tx = redis.multi().hset(keys.reports, id, JSON.stringify(report));
    tx.zremrangebyscore(keys.routers, '-inf', now - this.ttlMs);
    if (stale.length > 0) tx.hdel(keys.reports, ...stale);
    const done = await tx.exec();
    for (const [err] of done ?? []) if (err) throw err;
    this.lastOkAt = now;
  }

  /** Leaves at once (a clean stop): the others take its share at their next heartbeat. */
  async leave(): Promise<void> {
    const { redis, keys, id } = this.opts;
    await redis.multi().zrem(keys.routers, id).hdel(keys.reports, id).exec();
  }

  private share(instance: string, current: number, now = this.now()): number {
    // Until the first heartbeat this router does not know who else serves the pool: it raises nothing.
    if (!this.joined) {
      return current;
    }
    return nextShare({
      total: this.opts.total,
      me: this.opts.id,
      routers: this.routers,
      others: this.others,
      current,
      instance,
      holdRaises: now < this.holdUntil,
    });
  }
}
