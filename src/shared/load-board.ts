// The leader's view of the data plane's load: every live router's last report summed per instance
// (in flight) and over the pool (in flight + queued: the autoscaler's signal), and the sessions
// pinned to each instance from the shared session table. Read from Redis on a timer into a snapshot:
// the controller reads numbers, never a promise.
import type { Redis } from 'ioredis';
import type { SharedKeys } from './keys.js';
import type { PresenceReport } from './router-presence.js';

export interface LoadTotals {
  inflight: Record<string, number>;
  concurrency: number;
  routers: number;
}

/** Sums the reports of the live routers (pure). */
export function sumReports(reports: readonly PresenceReport[]): LoadTotals {
  const inflight: Record<string, number> = {};
  let concurrency = 0;
  for (const r of reports) {
    concurrency += r.queued;
    for (const [id, n] of Object.entries(r.inflight)) {
      inflight[id] = (inflight[id] ?? 0) + n;
      concurrency += n;
    }
  }
  return { inflight, concurrency, routers: reports.length };
}

export interface LoadBoardOptions {
  redis: Redis;
  keys: SharedKeys;
  /** A router silent this long is gone (3 × ROUTER_HEARTBEAT_MS). */
  routerTtlMs: number;
  /** SESSION_TTL_MS: older session entries do not count (and are swept). */
  sessionTtlMs: number;
  now?: () => number;
}

export class LoadBoard {
  private totals: LoadTotals = { inflight: {}, concurrency: 0, routers: 0 };
  private sessionCounts: Record<string, number> = {};
  private readonly now: () => number;
  private ok = false;

  constructor(private readonly opts: LoadBoardOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Reads the reports and the session counts of these instances. Throws when Redis does not answer. */
  async refresh(instances: readonly string[]): Promise<void> {
    const { redis, keys } = this.opts;
    const now = this.now();
    const tx = redis
      .multi()
      .zrangebyscore(keys.routers, now - this.opts.routerTtlMs, '+inf')
      .hgetall(keys.reports);
    for (const id of instances) {
      tx.zremrangebyscore(keys.sessionsOf(id), '-inf', now - this.opts.sessionTtlMs);
      tx.zcard(keys.sessionsOf(id));
    }
    const replies = await tx.exec().catch((err: unknown) => {
      this.ok = false;
      throw err;
    });
    if (!replies) throw new Error('the load transaction was discarded');
    for (const [err] of replies) if (err) throw err;
    const live = new Set(replies[0]![1] as string[]);
    const all = replies[1]![1] as Record<string, string>;
    const reports: PresenceReport[] = [];
    for (const [id, text] of Object.entries(all)) {
      if (!live.has(id)) continue;
      try {
        reports.push(JSON.parse(text) as PresenceReport);
      } catch {
        // A malformed report adds nothing.
      }
    }
    this.totals = sumReports(reports);
    const counts: Record<string, number> = {};
    instances.forEach((id, i) => {
      counts[id] = Number(replies[2 + i * 2 + 1]![1]) || 0;
    });
    this.sessionCounts = counts;
    this.ok = true;
  }

  /** Whether the last refresh reached Redis. */
  get fresh(): boolean {
    return this.ok;
  }

  inflight(id: string): number {
    return this.totals.inflight[id] ?? 0;
  }

  sessions(id: string): number {
    return this.sessionCounts[id] ?? 0;
  }

  /** In flight plus queued over every live router. */
  concurrency(): number {
    return this.totals.concurrency;
  }

  routers(): number {
    return this.totals.routers;
  }
}
