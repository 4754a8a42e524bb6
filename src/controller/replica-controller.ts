// The control plane over an engine that owns its replicas (Docker Swarm, Kubernetes): it asks for a
// count (with the victims it would pick as a hint) and follows what the engine reports. Ready replicas
// are the router's members; terminating ones are drained (the router finishes what they hold). The
// engine's own desired count wins when someone else changes it (a person, an HPA): it becomes ours,
// within MIN/MAX_INSTANCES. Decisions are pure (replica-victims.ts); this class carries them out.
import { type BackgroundErrorHandler, runGuarded } from '../core/background.js';
import { type Clock, systemClock } from '../core/clock.js';
import { EventLog, type EventType, recordPoolEvent } from '../core/events.js';
import type { Logger } from '../core/logger.js';
import type { InstanceState, PoolMember, PoolOutlook } from '../core/pool.js';
import { urlOf } from '../core/pool.js';
import type { Replica, ReplicaDriver, ReplicaSnapshot } from '../runtime/driver.js';
import { type ControllerStatus, type InstanceStatus, type LoadSource, poolStatus } from './controller.js';
import { probeHealth } from './health-probe.js';
import { type ControllerMetrics, createControllerMetrics } from './metrics.js';
import { chooseVictims } from './replica-victims.js';
import type { ScalingLimits } from './scaling-limits.js';

export interface ReplicaControllerOptions {
  driver: ReplicaDriver;
  logger: Logger;
  minInstances: number;
  maxInstances: number;
  /** False while this controller may not change the pool (a leader past its lease). @default always */
  mayAct?: () => boolean;
  /** AGENT_HEALTH_PATH and HEALTH_CHECK_TIMEOUT_MS, for the router's checks of a suspect. */
  healthPath?: string;
  healthCheckTimeoutMs?: number;
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
  readonly metrics: ControllerMetrics;
  private limits: ScalingLimits;
  private stopped = false;
  readonly backgroundError: BackgroundErrorHandler = (loop, err) => {
    this.metrics.backgroundErrors.inc({ loop });
    this.log.error({ err, loop }, `background task failed: ${loop}`);
  };
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
    this.limits = { minInstances: opts.minInstances, maxInstances: opts.maxInstances };
    this.metrics = createControllerMetrics({
      desired: () => this.desired,
      limits: () => ({ min: this.limits.minInstances, max: this.limits.maxInstances }),
      instances: () => this.snapshot.replicas.map((r) => ({ id: r.id, state: STATE[r.condition] })),
    });
  }

  /**
   * Follows the engine; a pool it already runs (a restart, a standby taking over) is adopted at its
   * count, within the limits, not reset to MIN_INSTANCES. The count is then asked for once, which
   * also hands the engine what changed in the configuration (a new AGENT_IMAGE is rolled out).
   */
  async start(): Promise<void> {
    this.unwatch = this.opts.driver.watch((s) => this.onSnapshot(s));
    await this.opts.driver.synced();
    if (this.stopped) return; // deposed (or stopped) while the engine did not answer: nothing to ask
    const s = this.snapshot;
    if (s.desired > 0 || s.replicas.length > 0) {
      this.desired = this.clamp(s.desired);
      this.asked = s.desired;
    }
    await this.ask(this.desired);
  }

  /** `npm start`'s stop: the engine lets every replica go (drained: terminating ones finish), then it closes. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.asked = 0; // our own 0: not a count someone else set (onSnapshot would fight it)
    await this.opts.driver.scale(0).catch(() => {});
    await this.waitFor(() => this.snapshot.replicas.length === 0, 30_000).catch(() => {});
    this.unwatch?.();
    await this.opts.driver.down?.().catch(() => false);
    await this.opts.driver.close();
  }

  /** A deposed leader: stop following; the engine keeps the replicas for the next leader. */
  async abandon(): Promise<void> {
    this.stopped = true;
    this.unwatch?.();
    await this.opts.driver.close();
  }

  async waitForReady(count: number, timeoutMs: number): Promise<void> {
    await this.waitFor(() => this.readyCount() >= count, timeoutMs).catch(() => {
      throw new Error(`only ${this.readyCount()} of ${count} instances ready after ${timeoutMs} ms`);
    });
  }

  private async waitFor(check: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = this.clock.now() + timeoutMs;
    while (!check()) {
      if (this.clock.now() > deadline) throw new Error('timed out');
      await this.clock.sleep(50);
    }
  }

  scalingLimits(): ScalingLimits {
    return { ...this.limits };
  }

  setScalingLimits(next: ScalingLimits, by: string): void {
    this.limits = { ...next };
    this.log.info({ to: next, by }, `scaling limits ${next.minInstances}..${next.maxInstances} (${by})`);
    const clamped = this.clamp(this.desired);
    if (clamped !== this.desired) this.setDesired(clamped, 'limits', { by });
  }

  /**
   * Drain (or restart) one replica: the engine removes it as the chosen victim and starts another,
   * so the pool refills to the desired count either way. Answers like the instance controller.
   */
  drainInstance(id: string, _restart: boolean, by: string): 'accepted' | 'unknown' | InstanceState {
    const r = this.snapshot.replicas.find((x) => x.id === id);
    if (!r) return 'unknown';
    if (r.condition !== 'ready') return STATE[r.condition];
    this.log.info({ instance: id, by }, `drain of ${id} asked (${by})`);
    runGuarded('drain', () => this.cycle(id), this.backgroundError);
    return 'accepted';
  }

  /** The router found a replica bad: the engine replaces it. */
  replace(id: string, reason: string): void {
    if (this.snapshot.replicas.find((x) => x.id === id)?.condition !== 'ready') return;
    this.log.warn({ instance: id, reason }, `replacing ${id}: ${reason}`);
    runGuarded('replace', () => this.cycle(id), this.backgroundError);
  }

  async checkNow(id: string): Promise<boolean | undefined> {
    const r = this.snapshot.replicas.find((x) => x.id === id);
    if (r?.condition !== 'ready' || !r.endpoint) return undefined;
    return (
      await probeHealth(r.endpoint, this.opts.healthPath ?? '/health', this.opts.healthCheckTimeoutMs ?? 2000)
    ).ok;
  }

  status(): ControllerStatus {
    const instances = this.snapshot.replicas.map(
      (r): InstanceStatus => ({
        id: r.id,
        state: STATE[r.condition],
        address: r.endpoint ? urlOf(r.endpoint) : null,
        inflight: this.load.inflight(r.id),
        sessions: this.load.sessions(r.id),
        startedAt: r.meta.startedAt ? new Date(Number(r.meta.startedAt)).toISOString() : null,
        readyAt: null,
        restarts: 0,
        crashLoop: false,
        nextRestartAt: null,
        lastFailure: null,
        cpu: null,
        memoryBytes: null,
        meta: r.meta,
      }),
    );
    return poolStatus(
      this.opts.driver.kind,
      { desired: this.desired, limits: this.limits, ready: this.readyCount() },
      instances,
      this.events,
    );
  }

  /** One replica out (as the victim) and the count back: the engine starts a new one. */
  private async cycle(id: string): Promise<void> {
    const keep = this.desired;
    this.asked = Math.max(0, keep - 1); // our own count: not one someone else set (onSnapshot)
    await this.opts.driver.scale(this.asked, { preferVictims: [id] });
    await this.waitFor(
      () => !this.snapshot.replicas.some((r) => r.id === id && r.condition !== 'terminating'),
      30_000,
    );
    await this.ask(keep);
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
    if (!(this.opts.mayAct?.() ?? true)) return; // the pool is kept as it is
    const victims = chooseVictims(this.snapshot.replicas, count, this.load);
    this.asked = count;
    await this.opts.driver.scale(count, victims.length > 0 ? { preferVictims: victims } : {});
  }

  private onSnapshot(s: ReplicaSnapshot): void {
    const before = this.members();
    this.snapshot = s;
    if (!this.stopped && this.asked !== undefined && s.desired !== this.asked && s.desired !== this.desired) {
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
    return Math.max(this.limits.minInstances, Math.min(this.limits.maxInstances, Math.round(n)));
  }

  private emit(
    type: EventType,
    instance: string | undefined,
    message: string,
    data?: Record<string, unknown>,
  ): void {
    recordPoolEvent(this.events, this.log, this.clock.now(), type, instance, message, data);
  }
}
