// A SIMULATED replica engine (unit tests, on a Clock): it converges to its desired count as Swarm or
// a Deployment would. New replicas start, then are ready after `startMs`; removed ones terminate for
// `terminateMs`, then are gone. On scale-down it honours the victims hint when `honoursHints` (like
// Kubernetes with pod-deletion-cost), else removes the newest (like Swarm's highest slot). A person
// or an HPA may change its desired count, and a replica may die (it is then replaced).
import type { Clock } from '../core/clock.js';
import type { Replica, ReplicaDriver, ReplicaSnapshot, ResourceUsage } from './driver.js';

export interface SimulatedReplicasOptions {
  clock: Clock;
  startMs?: number;
  terminateMs?: number;
  honoursHints?: boolean;
}

export class SimulatedReplicas implements ReplicaDriver {
  readonly kind = 'simulated-replicas';
  readonly target = 'simulated replicas';
  readonly mode = 'replicas' as const;
  readonly cpuLimitCores = 1;
  private desired = 0;
  private n = 0;
  private readonly replicas = new Map<string, Replica>();
  private readonly listeners = new Set<(s: ReplicaSnapshot) => void>();
  /** The hints of the last scale call (tests read them). */
  lastHint: readonly string[] = [];

  constructor(private readonly opts: SimulatedReplicasOptions) {}

  async scale(count: number, o: { preferVictims?: readonly string[] } = {}): Promise<void> {
    this.desired = count;
    this.lastHint = o.preferVictims ?? [];
    this.converge();
  }

  watch(listener: (s: ReplicaSnapshot) => void): () => void {
    this.listeners.add(listener);
    listener(this.snapshot());
    return () => this.listeners.delete(listener);
  }

  async synced(): Promise<void> {}

  /** A person (or an HPA) sets the count on the engine itself. */
  setDesiredExternally(count: number): void {
    this.desired = count;
    this.converge();
  }

  /** A replica dies; the engine starts another. */
  kill(id: string): void {
    if (!this.replicas.delete(id)) return;
    this.converge();
  }

  snapshot(): ReplicaSnapshot {
    return {
      desired: this.desired,
      replicas: [...this.replicas.values()].map((r) => ({ ...r, meta: { ...r.meta } })),
    };
  }

  async usage(): Promise<ResourceUsage | undefined> {
    return undefined;
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }

  private converge(): void {
    const live = [...this.replicas.values()].filter((r) => r.condition !== 'terminating');
    for (let i = live.length; i < this.desired; i++) this.startOne();
    if (live.length > this.desired) {
      const hinted = this.opts.honoursHints ? this.lastHint.filter((id) => this.replicas.has(id)) : [];
      const newestFirst = [...live]
        .sort((a, b) => Number(b.meta.slot) - Number(a.meta.slot))
        .map((r) => r.id);
      const order = [...new Set([...hinted, ...newestFirst])];
      for (const id of order.slice(0, live.length - this.desired)) this.terminate(id);
    }
    this.emit();
  }

  private startOne(): void {
    const slot = ++this.n;
    const r: Replica = {
      id: `task-${slot}`,
      incarnation: `inc-${slot}`,
      endpoint: { host: '127.0.0.1', port: 20_000 + slot },
      condition: 'starting',
      meta: { slot, startedAt: this.opts.clock.now() },
    };
    this.replicas.set(r.id, r);
    this.opts.clock.after(this.opts.startMs ?? 100, () => {
      if (this.replicas.get(r.id)?.condition !== 'starting') return;
      r.condition = 'ready';
      this.emit();
    });
  }

  private terminate(id: string): void {
    const r = this.replicas.get(id);
    if (!r) return;
    r.condition = 'terminating';
    this.opts.clock.after(this.opts.terminateMs ?? 200, () => {
      if (this.replicas.get(id) === r) this.replicas.delete(id);
      this.emit();
    });
  }

  private emit(): void {
    const s = this.snapshot();
    for (const l of this.listeners) l(s);
  }
}
