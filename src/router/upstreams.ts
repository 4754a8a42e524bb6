// The router's view of the pool: one connection pool (h1/upstream-pool.ts) per instance incarnation, with its in-flight
// count, circuit breaker and what the stall detector needs. Kept in sync with the controller's pool
// members; a draining instance takes no new requests. Only the SlotPool changes `inflight` and `awaiting`.
import { type PoolMember, urlOf } from '../core/pool.js';
import { type BreakerOptions, CircuitBreaker } from './breaker.js';
import { UpstreamPool } from './h1/upstream-pool.js';
import type { Lease } from './slot-pool.js';

export class Upstream {
  /** Slots held (leases granted and not yet released). */
  inflight = 0;
  /**
   * Slots this router may hold at most: MAX_CONCURRENCY, or this router's share of it when several
   * routers serve the pool (shared/capacity.ts). Only the SlotPool's grant compares against it.
   */
  limit: number;
  draining = false;
  /** Leases still waiting for this instance's response headers. */
  readonly awaiting = new Set<Lease>();
  /** When the instance last started an answer (ms, the router's clock). */
  lastResponseAt: number | undefined;
  /** Set (to when it was seen) while the stall detector holds the instance ejected. */
  stalledAt: number | undefined;
  /** The stall opened its breaker (so an answer closes it again). */
  stallOpened = false;
  /** The controller was asked to replace this incarnation. */
  replaceRequested = false;
  /** The stall detector's health check of this suspect is out / when the last one answered. */
  probing = false;
  probedAt: number | undefined;
  readonly pool: UpstreamPool;
  readonly origin: string;
  readonly breaker: CircuitBreaker;

  constructor(
    readonly id: string,
    readonly incarnation: string,
    endpoint: PoolMember['endpoint'],
    connections: number,
    breaker: BreakerOptions,
  ) {
    this.limit = connections;
    this.origin = urlOf(endpoint);
    this.breaker = new CircuitBreaker(breaker);
    this.pool = new UpstreamPool({
      host: endpoint.host,
      port: endpoint.port,
      connectTimeoutMs: 5_000,
      keepAliveMs: 60_000,
      keepAliveMaxMs: 600_000,
    });
  }
}

export interface UpstreamChange {
  added: Upstream[];
  removed: Upstream[];
  /** Upstreams that started draining in this change. */
  draining: Upstream[];
}

export class UpstreamSet {
  private readonly byId = new Map<string, Upstream>();
  /** Ready, non-draining upstreams: the balancer's candidates (rebuilt on each pool change). */
  active: Upstream[] = [];
  private readonly listeners: Array<(change: UpstreamChange) => void> = [];

  /** The limit a new upstream starts with (its share when routers split capacity). */
  private initialLimit: (id: string) => number;

  constructor(
    private readonly connectionsPerInstance: number,
    private readonly breaker: BreakerOptions,
  ) {
    this.initialLimit = () => connectionsPerInstance;
  }

  /** Where new upstreams take their limit from (the capacity split); existing ones keep theirs. */
  setInitialLimit(limit: (id: string) => number): void {
    this.initialLimit = limit;
  }

  sync(members: readonly PoolMember[]): void {
    const change: UpstreamChange = { added: [], removed: [], draining: [] };
    const seen = new Set<string>();
    for (const m of members) {
      seen.add(m.id);
      let up = this.byId.get(m.id);
      if (up && up.incarnation !== m.incarnation) {
        change.removed.push(up);
        up = undefined;
      }
      if (!up) {
        up = new Upstream(m.id, m.incarnation, m.endpoint, this.connectionsPerInstance, this.breaker);
        up.limit = Math.min(this.connectionsPerInstance, this.initialLimit(m.id));
        this.byId.set(m.id, up);
        change.added.push(up);
      }
      const draining = m.state === 'draining';
      if (draining && !up.draining) change.draining.push(up);
      up.draining = draining;
    }
    for (const [id, up] of this.byId) {
      if (!seen.has(id)) {
        this.byId.delete(id);
        change.removed.push(up);
      }
    }
    // close() lets requests in flight finish, then frees the sockets.
    for (const up of change.removed) void up.pool.close().catch(() => {});
    this.active = [...this.byId.values()].filter((u) => !u.draining);
    for (const l of this.listeners) l(change);
  }

  get(id: string): Upstream | undefined {
    return this.byId.get(id);
  }

  all(): Upstream[] {
    return [...this.byId.values()];
  }

  onChange(listener: (change: UpstreamChange) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    await Promise.all([...this.byId.values()].map((u) => u.pool.close().catch(() => {})));
    this.byId.clear();
    this.active = [];
  }
}
