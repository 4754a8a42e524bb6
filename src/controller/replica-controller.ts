// The control plane over an engine that owns its replicas (Docker Swarm, Kubernetes): it asks for a
// count (with the victims it would pick as a hint) and follows what the engine reports. Ready replicas
// are the router's members; terminating ones are drained (the router finishes what they hold). The
// engine's own desired count wins when someone else changes it (a person, an HPA): it becomes ours,
// within MIN/MAX_INSTANCES. Decisions are pure (replica-victims.ts); this class carries them out.
import { runGuarded } from '../core/background.js';
import { type Clock, systemClock } from '../core/clock.js';
import { type ControllerEvent, EventLog, type EventType } from '../core/events.js';
import type { Logger } from '../core/logger.js';
import type { InstanceState, PoolMember, PoolOutlook } from '../core/pool.js';
import type { Replica, ReplicaDriver, ReplicaSnapshot } from '../runtime/driver.js';
import type { LoadSource } from './controller.js';
import { chooseVictims } from './replica-victims.js';

export interface ReplicaControllerOptions {
  driver: ReplicaDriver;
  logger: Logger;
  minInstances: number;
  maxInstances: number;
  clock?: Clock;
  events?: EventLog;
}

const STATE: Record<Replica['condition'], InstanceState> = {
  starting: 'starting',
  ready: 'ready',
  terminating: 'draining',
};
const NO_LOAD: LoadSource = { inflight: () => 0, sessions: () => 0 };

export class ReplicaController {
  readonly events: EventLog;
  private readonly clock: Clock;
  private readonly log: Logger;
  private desired: number;
  private snapshot: ReplicaSnapshot = { desired: 0, replicas: [] };
  private load: LoadSource = NO_LOAD;
  private readonly poolListeners: Array<(members: PoolMember[]) => void> = [];
  private unwatch: (() => void) | undefined;
  /** The count we last asked the engine for (to tell our changes from someone else's). */
  private asked: number | undefined;

  constructor(private readonly opts: ReplicaControllerOptions) {
    this.clock = opts.clock ?? systemClock;
    this.events = opts.events ?? new EventLog();
    this.log = opts.logger.child({ part: 'replica-controller' });
    this.desired = opts.minInstances;
  }

  async start(): Promise<void> {
    this.unwatch = this.opts.driver.watch((s) => this.onSnapshot(s));
    await this.ask(this.desired);
  }

  async stop(): Promise<void> {
    this.unwatch?.();
    await this.opts.driver.close();
  }

  setLoadSource(load: LoadSource): void {
    this.load = load;
  }

  // ---- ScaleTarget -----------------------------------------------------------------------------

  readyCount(): number {
    return this.snapshot.replicas.filter((r) => r.condition === 'ready').length;
  }

  usageOfReady(): Array<{ cpu: number | undefined }> {
    return this.snapshot.replicas.filter((r) => r.condition === 'ready').map(() => ({ cpu: undefined }));
  }

  setDesired(count: number, reason: string, data: Record<string, unknown> = {}): void {
    const next = this.clamp(count);
    if (next === this.desired) return;
    const from = this.desired;
    this.desired = next;
    this.emit('scaled', undefined, `desired ${from} → ${next} (${reason})`, {
      from,
      to: next,
      reason,
      ...data,
    });
    runGuarded(
      'scale',
      () => this.ask(next),
      (loop, err) => this.log.error({ err, loop }, 'scaling the engine failed'),
    );
  }

  get desiredInstances(): number {
    return this.desired;
  }

  // ---- the pool, as the router sees it ------------------------------------------------------------

  onPoolChange(listener: (members: PoolMember[]) => void): void {
    this.poolListeners.push(listener);
    listener(this.members());
  }

  members(): PoolMember[] {
    return this.snapshot.replicas
      .filter(
        (r): r is Replica & { endpoint: NonNullable<Replica['endpoint']> } =>
          r.endpoint !== undefined && r.condition !== 'starting',
      )
      .map((r) => ({
        id: r.id,
        incarnation: r.incarnation,
        endpoint: r.endpoint,
        state: STATE[r.condition],
      }));
  }

  member(id: string): { state: InstanceState } | undefined {
    const r = this.snapshot.replicas.find((x) => x.id === id);
    return r ? { state: STATE[r.condition] } : undefined;
  }

  outlook(): PoolOutlook {
    const live = this.snapshot.replicas.filter((r) => r.condition !== 'terminating');
    if (live.some((r) => r.condition === 'ready')) return 'ready';
    return live.length > 0 || this.desired > 0 ? 'starting' : 'none';
  }

  /** The engine's view: its desired count, and each replica. */
  engine(): ReplicaSnapshot {
    return this.snapshot;
  }

  // ---- following the engine -----------------------------------------------------------------------

  private async ask(count: number): Promise<void> {
    const victims = chooseVictims(this.snapshot.replicas, count, this.load);
    this.asked = count;
    await this.opts.driver.scale(count, victims.length > 0 ? { preferVictims: victims } : {});
  }

  private onSnapshot(s: ReplicaSnapshot): void {
    const before = this.members();
    this.snapshot = s;
    if (this.asked !== undefined && s.desired !== this.asked && s.desired !== this.desired) {
      // Someone else set the engine's count: it is the desired count now (within the limits).
      const theirs = this.clamp(s.desired);
      const from = this.desired;
      this.desired = theirs;
      this.asked = s.desired;
      this.emit('scaled', undefined, `desired ${from} → ${theirs} (set on the engine)`, {
        from,
        to: theirs,
        reason: 'engine',
      });
      if (theirs !== s.desired) void this.ask(theirs).catch(() => {});
    }
    const after = this.members();
    if (JSON.stringify(before) !== JSON.stringify(after)) for (const l of this.poolListeners) l(after);
  }

  private clamp(n: number): number {
    return Math.max(this.opts.minInstances, Math.min(this.opts.maxInstances, Math.round(n)));
  }

  private emit(
    type: EventType,
    instance: string | undefined,
    message: string,
    data?: Record<string, unknown>,
  ): void {
    const e: ControllerEvent = {
      at: this.clock.now(),
      type,
      message,
      ...(instance ? { instance } : {}),
      ...(data ? { data } : {}),
    };
    this.events.push(e);
    this.log.info({ event: type, ...data }, message);
  }
}
