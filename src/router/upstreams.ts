// The router's view of the pool: one undici connection pool per instance incarnation, with its in-flight
// count. Kept in sync with the controller's pool members; a draining instance takes no new requests.
import { Pool } from 'undici';
import type { PoolMember } from '../controller/controller.js';
import { urlOf } from '../runtime/driver.js';

export class Upstream {
  inflight = 0;
  draining = false;
  readonly pool: Pool;
  readonly origin: string;

  constructor(
    readonly id: string,
    readonly incarnation: string,
    endpoint: PoolMember['endpoint'],
    connections: number,
  ) {
    this.origin = urlOf(endpoint);
    this.pool = new Pool(this.origin, {
      connections,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 600_000,
      connect: { timeout: 5_000 },
    });
  }
}

export class UpstreamSet {
  private readonly byId = new Map<string, Upstream>();
  /** Ready, non-draining upstreams: the balancer's candidates (rebuilt on each pool change). */
  active: Upstream[] = [];
  private readonly listeners: Array<(removed: Upstream[]) => void> = [];

  constructor(private readonly connectionsPerInstance: number) {}

  sync(members: readonly PoolMember[]): void {
    const seen = new Set<string>();
    const removed: Upstream[] = [];
    for (const m of members) {
      seen.add(m.id);
      let up = this.byId.get(m.id);
      if (up && up.incarnation !== m.incarnation) {
        removed.push(up);
        up = undefined;
      }
      if (!up) {
        up = new Upstream(m.id, m.incarnation, m.endpoint, this.connectionsPerInstance);
        this.byId.set(m.id, up);
      }
      up.draining = m.state === 'draining';
    }
    for (const [id, up] of this.byId) {
      if (!seen.has(id) || removed.includes(up)) {
        if (this.byId.get(id) === up) this.byId.delete(id);
        removed.push(up);
      }
    }
    for (const up of new Set(removed)) void up.pool.close().catch(() => {});
    this.active = [...this.byId.values()].filter((u) => !u.draining);
    if (removed.length > 0) for (const l of this.listeners) l(removed);
  }

  get(id: string): Upstream | undefined {
    return this.byId.get(id);
  }

  all(): Upstream[] {
    return [...this.byId.values()];
  }

  onRemoved(listener: (removed: Upstream[]) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    await Promise.all([...this.byId.values()].map((u) => u.pool.close().catch(() => {})));
    this.byId.clear();
    this.active = [];
  }
}
