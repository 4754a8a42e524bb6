// The control plane: keeps the pool at the desired size between MIN_INSTANCES and MAX_INSTANCES, starts
// instances through the runtime driver, health-checks them, restarts crashes with backoff (kills refill at
// once), replaces instances the router finds bad, and drains instances before stopping them. Decisions
// come from the pure `reconcile` and `planRestart`; this class carries them out. Every background task
// is guarded: its errors are logged and counted, never left as unhandled rejections.
import { runGuarded } from '../core/background.js';
import { type Cancel, type Clock, loopOn, systemClock } from '../core/clock.js';
import { type ControllerEvent, EventLog, type EventType, recordPoolEvent } from '../core/events.js';
import type { Logger } from '../core/logger.js';
import type { InstanceState, PoolMember, PoolOutlook } from '../core/pool.js';
import type { Endpoint, ExitInfo, InstanceDriver, InstanceHandle } from '../runtime/driver.js';
import { urlOf } from '../runtime/driver.js';
import { ownerTag } from '../sessions/session-tag.js';
import { pickClaim } from './claim.js';
import { type ProbeResult, probeHealth } from './health-probe.js';
import { isLive, slotNumber } from './instance.js';
import { type ControllerMetrics, createControllerMetrics } from './metrics.js';
import { reconcile } from './reconcile.js';
import { CRASH_LOOP_THRESHOLD, planRestart, STABLE_AFTER_MS, wasKilled } from './restart-backoff.js';
import type { ScalingLimits } from './scaling-limits.js';

export interface ControllerOptions {
  driver: InstanceDriver;
  logger: Logger;
  minInstances: number;
  maxInstances: number;
  healthCheckIntervalMs: number;
  healthCheckTimeoutMs: number;
  /** AGENT_HEALTH_PATH. @default '/health' */
  healthPath?: string;
  /** The health check itself (tests replace it). @default probeHealth */
  probe?: (endpoint: Endpoint, path: string, timeoutMs: number) => Promise<ProbeResult>;
  healthFailureThreshold: number;
  startupTimeoutMs: number;
  startupProbeIntervalMs: number;
  restartBackoffMs: number;
  restartBackoffMaxMs: number;
  drainTimeoutMs: number;
  stopGraceMs: number;
  /** Extra environment for every instance. */
  instanceEnv?: Record<string, string>;
  /** How often the pool is reconciled even when nothing happened. */
  reconcileIntervalMs?: number;
  /** How often CPU and memory are sampled. */
  usageIntervalMs?: number;
  /**
   * False while this controller may not change the pool (a leader whose lease may have run out):
   * nothing is started, drained or removed, the pool is kept as it is. @default always true
   */
  mayAct?: () => boolean;
  /** Where events go (a controller role keeps one log across its terms). @default a new one */
  events?: EventLog;
  /** Time, sleeps and timers (tests pass a FakeClock). @default systemClock */
  clock?: Clock;
  /**
   * SESSION_MODE=dedicated: instances belong to sessions (claim/release), the pool is their count plus
   * the warm ones, and nothing else scales it. @default false (shared)
   */
  dedicated?: boolean;
  /** WARM_INSTANCES: ready idle instances kept beyond the desired count, within MAX_INSTANCES. @default 0 */
  warmInstances?: number;
}

/** Told when a session's instance fails after it had been ready (its state is gone). */
export type OwnedLostListener = (instance: string, owner: string, reason: string) => void;

/** What a dedicated session was given: its instance, and whether it was warm (ready at once). */
export interface Claimed {
  id: string;
  kind: 'warm' | 'starting' | 'new';
}

/** What the data plane reports back: load per instance (in-flight requests, pinned sessions). */
export interface LoadSource {
  inflight(id: string): number;
  sessions(id: string): number;
}

export type { PoolMember } from '../core/pool.js';

interface Failure {
  at: number;
  reason: string;
  exitCode?: number | null;
  signal?: string | null;
  output?: string[];
}

interface Slot {
  id: string;
  state: InstanceState;
  handle?: InstanceHandle;
  createdAt: number;
  startedAt?: number;
  readyAt?: number;
  restarts: number;
  crashes: number;
  nextRestartAt?: number;
  lastFailure?: Failure;
  healthFailures: number;
  /** When the next health check of this incarnation is due (sooner after a failure). */
  nextCheckAt?: number;
  /** A stop of the previous incarnation still in progress; a restart waits for it. */
  pendingStop?: Promise<void>;
  cpu?: number;
  memoryBytes?: number;
  lastUsage?: { cpuSeconds: number; at: number };
  /** Drained to be started again (admin restart): it still counts toward the desired number. */
  restartPending?: boolean;
  /** The dedicated session this instance belongs to; undefined = the pool's (shared, or warm). */
  owner?: string;
  /** A pause or resume in progress (they take turns on one instance). */
  transition?: Promise<void>;
  /** Requests waiting for this slot to become ready (a dedicated session's first ones). */
  readyWaiters?: Array<{ resolve: () => void; reject: (err: Error) => void }>;
}

export interface InstanceStatus {
  id: string;
  state: InstanceState;
  address: string | null;
  inflight: number;
  sessions: number;
  startedAt: string | null;
  readyAt: string | null;
  restarts: number;
  crashLoop: boolean;
  nextRestartAt: string | null;
  lastFailure: (Omit<Failure, 'at'> & { at: string }) | null;
  cpu: number | null;
  memoryBytes: number | null;
  meta: Record<string, string | number>;
  /** SESSION_MODE=dedicated: the tag of the session that owns it (session-tag.ts; null: a warm instance). */
  session?: string | null;
}

/** The status envelope of any pool controller: counts and limits around its instances and events. */
export function poolStatus(
  driver: string,
  pool: { desired: number; limits: ScalingLimits; ready: number },
  instances: InstanceStatus[],
  events: EventLog,
): ControllerStatus {
  return {
    driver,
    desiredInstances: pool.desired,
    minInstances: pool.limits.minInstances,
    maxInstances: pool.limits.maxInstances,
    readyInstances: pool.ready,
    instances,
    events: events.recent(50),
  };
}

export interface ControllerStatus {
  driver: string;
  desiredInstances: number;
  minInstances: number;
  maxInstances: number;
  readyInstances: number;
  instances: InstanceStatus[];
  events: ControllerEvent[];
}

const HEALTH_PROBE_BATCH = 64;
/** After a failed health check the next ones come this often (at most), so a dead instance goes fast. */
const RECHECK_MS = 1000;
/** Start-up probes slow down to this interval at most. */
const STARTUP_PROBE_MAX_MS = 1000;
/** A start that takes this long is worth one line in the log. */
const SLOW_START_NOTICE_MS = 5000;
/** A failed slot restarting this soon counts as capacity on its way (requests wait for it). */
const IMMINENT_RESTART_MS = 1000;
const NO_LOAD: LoadSource = { inflight: () => 0, sessions: () => 0 };
/** How long after a warm instance is claimed its replacement starts. */
const REFILL_DELAY_MS = 250;
const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

export class Controller {
  readonly events: EventLog;
  readonly metrics: ControllerMetrics;
  private readonly slots = new Map<string, Slot>();
  private readonly poolListeners: Array<(members: PoolMember[]) => void> = [];
  private readonly timers: Cancel[] = [];
  private readonly clock: Clock;
  private load: LoadSource = NO_LOAD;
  private desired: number;
  private stopping = false;
  private tickQueued = false;
  private readonly log: Logger;
  /** MIN_INSTANCES and MAX_INSTANCES now (PUT /scaling changes them at run time). */
  private limits: ScalingLimits;
  private readonly probe: NonNullable<ControllerOptions['probe']>;
  private readonly healthPath: string;
  /** Background work that failed (the controller's and the autoscaler's): logged and counted. */
  readonly backgroundError = (loop: string, err: unknown): void => {
    this.metrics.backgroundErrors.inc({ loop });
    this.log.error({ err, loop }, `background task failed: ${loop}`);
  };
  private readonly onBackgroundError = this.backgroundError;

  constructor(private readonly opts: ControllerOptions) {
    this.log = opts.logger.child({ part: 'controller' });
    this.clock = opts.clock ?? systemClock;
    this.events = opts.events ?? new EventLog();
    this.limits = { minInstances: opts.minInstances, maxInstances: opts.maxInstances };
    this.probe = opts.probe ?? probeHealth;
    this.healthPath = opts.healthPath ?? '/health';
    this.desired = opts.minInstances;
    this.metrics = createControllerMetrics({
      desired: () => this.target(),
      limits: () => ({ min: this.limits.minInstances, max: this.limits.maxInstances }),
      instances: () => [...this.slots.values()],
    });
    opts.driver.onExit((exit) => this.onExit(exit));
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  async start(): Promise<void> {
    let adopted: InstanceHandle[] = [];
    try {
      adopted = await this.opts.driver.adopt();
    } catch (err) {
      // The runtime is down or refusing: say so and keep going; starts will retry with backoff.
      this.emit('driver_error', undefined, (err as Error).message);
    }
    // Abandoned or stopped while adopting (a leader deposed as it took over): start nothing.
    if (this.stopping) return;
    if (this.opts.dedicated && adopted.length > 0) {
      // Their sessions were in the last controller's memory: a container may still hold one's files
      // and memory, so none is handed to a new session. They go; the pool starts fresh.
      this.emit(
        'driver_error',
        undefined,
        `stopping ${adopted.length} instance(s) of an earlier run: SESSION_MODE=dedicated does not adopt`,
      );
      await Promise.all(adopted.map((h) => this.opts.driver.stop(h.id, 0).catch(() => {})));
      adopted = [];
    }
    for (const handle of adopted) {
      const slot = this.newSlot(handle.id);
      slot.handle = handle;
      slot.startedAt = handle.startedAt;
      this.emit(
        'instance_starting',
        slot.id,
        `adopted running instance ${slot.id} (${handle.incarnation.slice(0, 8)})`,
        {
          adopted: true,
        },
      );
      // Its startup deadline counts from now: an instance created long ago (a standby taking over a
      // pool that ran a while) would otherwise be past it, and one missed probe would replace it.
      const adoptedAt = this.clock.now();
      this.background('startup probes', () => this.awaitHealthy(slot, handle, adoptedAt));
    }
    const loop = (ms: number, name: string, fn: () => unknown) =>
      this.timers.push(loopOn(this.clock, ms, name, fn, this.onBackgroundError));
    loop(this.opts.reconcileIntervalMs ?? 1000, 'reconcile', () => this.tick());
    loop(Math.min(this.opts.healthCheckIntervalMs, RECHECK_MS), 'health checks', () => this.checkHealth());
    loop(this.opts.usageIntervalMs ?? 2000, 'usage sampling', () => this.sampleUsage());
    this.tick();
  }

  /** Drains every instance (in-flight requests finish, up to DRAIN_TIMEOUT_MS), then stops them all. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const cancel of this.timers) cancel();
    await Promise.all(
      [...this.slots.values()].map((s) => (s.state === 'ready' ? this.drainSlot(s) : this.removeSlot(s))),
    );
    await this.opts.driver.close();
  }

  /**
   * Lets the pool go without stopping it, as a deposed leader must: the loops stop, no instance is
   * touched by this controller again, and the next leader adopts them (a driver that can hand its
   * instances over: Docker). A driver whose instances cannot outlive this process stops them instead.
   * The controller is spent afterwards.
   */
  async abandon(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const cancel of this.timers) cancel();
    const driver = this.opts.driver;
    driver.detach?.();
    await driver.close();
    this.slots.clear();
    this.notifyPool();
  }

  /** Resolves once at least `count` instances are ready, or rejects after `timeoutMs`. */
  async waitForReady(count: number, timeoutMs: number): Promise<void> {
    const deadline = this.clock.now() + timeoutMs;
    while (this.readyCount() < count) {
      if (this.clock.now() > deadline) {
        throw new Error(`only ${this.readyCount()} of ${count} instances ready after ${timeoutMs} ms`);
      }
      await this.clock.sleep(20);
    }
  }

  // ---- wiring to the data plane and the autoscaler ---------------------------------------------

  setLoadSource(load: LoadSource): void {
    this.load = load;
  }

  /** Subscribes to pool changes; the listener is called at once with the current members. */
  onPoolChange(listener: (members: PoolMember[]) => void): void {
    this.poolListeners.push(listener);
    listener(this.members());
  }

  /** Sets the desired number of instances (clamped to MIN/MAX_INSTANCES) and reconciles. */
  setDesired(count: number, reason: string, data: Record<string, unknown> = {}): void {
    const next = Math.max(this.limits.minInstances, Math.min(this.limits.maxInstances, Math.round(count)));
    if (next === this.desired) return;
    const from = this.desired;
    this.desired = next;
    this.metrics.scalingEvents.inc({ direction: next > from ? 'up' : 'down', reason });
    this.emit('scaled', undefined, `desired ${from} → ${next} (${reason})`, {
      from,
      to: next,
      reason,
      ...data,
    });
    this.tick();
  }

  /** The limits in force now. */
  scalingLimits(): ScalingLimits {
    return { ...this.limits };
  }

  /**
   * New MIN_INSTANCES / MAX_INSTANCES (validated by the caller: scaling-limits.ts). The desired count
   * is brought inside them at once; the autoscaler uses them from its next decision.
   */
  setScalingLimits(next: ScalingLimits, by: string): void {
    const from = this.limits;
    this.limits = { ...next };
    this.log.info(
      { from, to: next, by },
      `scaling limits ${from.minInstances}..${from.maxInstances} → ${next.minInstances}..${next.maxInstances} (${by})`,
    );
    this.setDesired(this.desired, 'limits', { by });
  }

  /**
   * Drains a ready instance through the admin API: no new requests, in-flight ones finish (up to
   * DRAIN_TIMEOUT_MS), then it stops; the pool refills to the desired count. `restart` starts the same
   * slot again instead. Answers what happened: 'accepted', 'unknown' (no such id) or its state.
   */
  drainInstance(id: string, restart: boolean, by: string): 'accepted' | 'unknown' | 'owned' | InstanceState {
    const slot = this.slots.get(id);
    if (!slot) return 'unknown';
    // A session's own instance goes with its session (DELETE /sessions/{id}), never on its own.
    if (slot.owner !== undefined) return 'owned';
    if (slot.state !== 'ready') return slot.state;
    this.log.info({ instance: id, by }, `${restart ? 'restart' : 'drain'} of ${id} asked (${by})`);
    slot.restartPending = restart;
    this.background(restart ? 'restart' : 'drain', () => this.drainSlot(slot, restart));
    return 'accepted';
  }

  /** What the pool aims at: the desired count (dedicated: the sessions' instances) plus the warm ones. */
  get desiredInstances(): number {
    return this.target();
  }

  private target(): number {
    let base = this.desired;
    if (this.opts.dedicated) {
      base = 0;
      for (const s of this.slots.values()) if (s.owner !== undefined && isLive(s.state)) base++;
    }
    return Math.min(this.limits.maxInstances, base + (this.opts.warmInstances ?? 0));
  }

  // ---- dedicated sessions (SESSION_MODE=dedicated) -----------------------------------------------

  /**
   * An instance of its own for a session (see claim.ts: warm, else starting, else new within
   * MAX_INSTANCES), or undefined when none can be had. The warm pool refills behind it.
   */
  claim(owner: string): Claimed | undefined {
    if (this.stopping) return undefined;
    const picked = pickClaim(
      [...this.slots.values()].map((s) => ({
        id: s.id,
        state: s.state,
        ...(s.owner !== undefined ? { owner: s.owner } : {}),
      })),
      this.limits.maxInstances,
    );
    if (!picked) return undefined;
    const slot = picked.kind === 'new' ? this.newSlot(picked.id) : this.slots.get(picked.id)!;
    slot.owner = owner;
    if (picked.kind === 'new') this.background('start', () => this.startSlot(slot));
    // The refill of the warm pool waits a moment: starting a process (fork, a new runtime warming up)
    // would otherwise land on the claimed session's first request (bench sessions, quick: 22.6 → 8.3 ms).
    else this.clock.after(REFILL_DELAY_MS, () => this.tick());
    return { id: slot.id, kind: picked.kind };
  }

  /** Resolves once the instance is ready; rejects when it fails or goes first. */
  whenReady(id: string): Promise<void> {
    const slot = this.slots.get(id);
    if (!slot) return Promise.reject(new Error(`no instance ${id}`));
    if (slot.state === 'ready') return Promise.resolve();
    return new Promise((resolve, reject) => {
      slot.readyWaiters ??= [];
      slot.readyWaiters.push({ resolve, reject });
    });
  }

  private settleWaiters(slot: Slot, err?: Error): void {
    const waiters = slot.readyWaiters;
    if (!waiters) return;
    slot.readyWaiters = undefined;
    for (const w of waiters) err ? w.reject(err) : w.resolve();
  }

  /**
   * Freezes an idle session's instance (no CPU, memory kept): it leaves the members until resumed.
   * False when it is not a ready, owned instance with nothing in flight.
   */
  async pause(id: string): Promise<boolean> {
    const slot = this.slots.get(id);
    if (slot?.state !== 'ready' || slot.owner === undefined || this.load.inflight(id) > 0) return false;
    if (!(this.opts.mayAct?.() ?? true)) return false;
    slot.state = 'paused';
    this.notifyPool();
    const done = this.opts.driver.pause(id);
    slot.transition = done.catch(() => {});
    try {
      await done;
    } catch (err) {
      this.emit('driver_error', id, `pausing ${id} failed: ${(err as Error).message}`);
      if (slot.state === 'paused') {
        slot.state = 'ready';
        this.notifyPool();
      }
      return false;
    }
    this.emit('instance_paused', id, `paused ${id} (session idle)`, { session: ownerTag(slot.owner) });
    return true;
  }

  /** Thaws a paused instance; resolves once it is ready again (at once when it already is). */
  async resume(id: string): Promise<void> {
    const slot = this.slots.get(id);
    if (!slot) throw new Error(`no instance ${id}`);
    if (slot.state === 'resuming') return this.whenReady(id);
    if (slot.state !== 'paused') return slot.state === 'ready' ? undefined : this.whenReady(id);
    slot.state = 'resuming';
    const began = this.clock.now();
    const before = slot.transition;
    const done = (async () => {
      await before;
      await this.opts.driver.resume(id);
    })();
    slot.transition = done.catch(() => {});
    try {
      await done;
    } catch (err) {
      this.fail(slot, 'resume', `resuming ${id} failed: ${(err as Error).message}`);
      throw err;
    }
    if (slot.state !== 'resuming') return this.whenReady(id);
    slot.state = 'ready';
    slot.nextCheckAt = this.clock.now() + this.opts.healthCheckIntervalMs;
    this.emit('instance_resumed', id, `resumed ${id}`, {
      session: ownerTag(slot.owner),
      resumeMs: this.clock.now() - began,
    });
    this.notifyPool();
    this.settleWaiters(slot);
  }

  /** Whom to tell when a session's instance fails after it had been ready. */
  onOwnedLost(listener: OwnedLostListener): void {
    this.ownedLost = listener;
  }

  private ownedLost: OwnedLostListener | undefined;

  /** The session is over: its instance drains and stops, and is not replaced. */
  release(id: string, owner: string): void {
    const slot = this.slots.get(id);
    if (!slot || slot.owner !== owner) return;
    slot.owner = undefined;
    slot.restartPending = false;
    this.settleWaiters(slot, new Error(`the session of ${id} ended`));
    this.background(
      'release',
      slot.state === 'ready' ? () => this.drainSlot(slot) : () => this.removeSlot(slot),
    );
  }

  readyCount(): number {
    let n = 0;
    for (const s of this.slots.values()) if (s.state === 'ready') n++;
    return n;
  }

  members(): PoolMember[] {
    const out: PoolMember[] = [];
    for (const s of this.slots.values()) {
      if (s.handle && (s.state === 'ready' || s.state === 'draining')) {
        out.push({
          id: s.id,
          incarnation: s.handle.incarnation,
          endpoint: s.handle.endpoint,
          state: s.state,
        });
      }
    }
    return out;
  }

  /**
   * Whether capacity can come when none is ready: 'starting' while an instance starts, a failed one
   * restarts within a second, or the desired count asks for more; 'none' when every instance failed
   * and waits out a longer backoff (requests are then answered at once instead of queueing).
   */
  outlook(): PoolOutlook {
    const now = this.clock.now();
    let live = 0;
    let coming = false;
    for (const s of this.slots.values()) {
      if (s.state === 'ready') return 'ready';
      if (s.state === 'starting') coming = true;
      if (s.state === 'failed' && (s.nextRestartAt ?? 0) <= now + IMMINENT_RESTART_MS) coming = true;
      if (s.state === 'starting' || s.state === 'failed') live++;
    }
    return coming || live < this.target() ? 'starting' : 'none';
  }

  /**
   * The data plane found this instance bad (stalled, or ejected again and again) whatever its health
   * check says: stop this incarnation and start a new one.
   */
  replace(id: string, reason: string): void {
    const slot = this.slots.get(id);
    if (slot?.state !== 'ready') return;
    this.fail(slot, 'outlier', `replaced: ${reason}`);
  }

  /** The member with this id whatever its state (for /agent/{id}/… routes), or undefined. */
  member(id: string): { state: InstanceState; endpoint?: Endpoint } | undefined {
    const s = this.slots.get(id);
    if (!s) return undefined;
    return { state: s.state, ...(s.handle ? { endpoint: s.handle.endpoint } : {}) };
  }

  status(): ControllerStatus {
    const instances = [...this.slots.values()]
      .sort((a, b) => slotNumber(a.id) - slotNumber(b.id))
      .map(
        (s): InstanceStatus => ({
          id: s.id,
          state: s.state,
          address: s.handle ? urlOf(s.handle.endpoint) : null,
          inflight: this.load.inflight(s.id),
          sessions: this.load.sessions(s.id),
          startedAt: iso(s.startedAt),
          readyAt: iso(s.readyAt),
          restarts: s.restarts,
          crashLoop: s.crashes >= CRASH_LOOP_THRESHOLD && s.state !== 'ready',
          nextRestartAt: s.state === 'failed' ? iso(s.nextRestartAt) : null,
          lastFailure: s.lastFailure
            ? { ...s.lastFailure, at: new Date(s.lastFailure.at).toISOString() }
            : null,
          cpu: s.cpu ?? null,
          memoryBytes: s.memoryBytes ?? null,
          meta: s.handle?.meta ?? {},
          ...(this.opts.dedicated ? { session: ownerTag(s.owner) } : {}),
        }),
      );
    return poolStatus(
      this.opts.driver.kind,
      { desired: this.target(), limits: this.limits, ready: this.readyCount() },
      instances,
      this.events,
    );
  }

  // ---- reconciliation --------------------------------------------------------------------------

  /** Reconciles now (coalesced: several triggers in one turn of the event loop run once). */
  tick(): void {
    if (this.tickQueued || this.stopping) return;
    this.tickQueued = true;
    queueMicrotask(() => {
      this.tickQueued = false;
      if (!this.stopping && (this.opts.mayAct?.() ?? true)) this.reconcileNow();
    });
  }

  private reconcileNow(): void {
    const now = this.clock.now();
    // A slot that has stayed ready a while has proved its start good: its crash count starts over.
    for (const s of this.slots.values()) {
      if (
        s.state === 'ready' &&
        s.crashes > 0 &&
        s.readyAt !== undefined &&
        now - s.readyAt >= STABLE_AFTER_MS
      ) {
        s.crashes = 0;
      }
    }
    const plan = reconcile({
      desired: this.target(),
      now,
      slots: [...this.slots.values()].map((s) => ({
        id: s.id,
        // A slot drained to restart is on its way back: no replacement for it, and not a victim.
        state: s.restartPending && s.state === 'draining' ? 'starting' : s.state,
        // A session's own instance goes only when the session ends.
        ...(s.restartPending || s.owner !== undefined ? { keep: true } : {}),
        inflight: this.load.inflight(s.id),
        sessions: this.load.sessions(s.id),
        ...(s.nextRestartAt !== undefined ? { nextRestartAt: s.nextRestartAt } : {}),
      })),
    });
    for (const id of plan.create) {
      const slot = this.newSlot(id);
      this.background('start', () => this.startSlot(slot));
    }
    for (const id of plan.restart) {
      const s = this.slots.get(id);
      if (!s) continue;
      s.restarts++;
      this.metrics.restarts.inc({ instance: id });
      this.emit('instance_restarting', id, `restarting ${id} (restart ${s.restarts})`, {
        restarts: s.restarts,
      });
      this.background('restart', () => this.startSlot(s));
    }
    for (const id of plan.drain) {
      const s = this.slots.get(id);
      if (s) this.background('drain', () => this.drainSlot(s));
    }
    for (const id of plan.remove) {
      const s = this.slots.get(id);
      if (s) this.background('remove', () => this.removeSlot(s));
    }
  }

  private background(name: string, fn: () => Promise<unknown>): void {
    runGuarded(name, fn, this.onBackgroundError);
  }

  private newSlot(id: string): Slot {
    const slot: Slot = {
      id,
      state: 'starting',
      createdAt: this.clock.now(),
      restarts: 0,
      crashes: 0,
      healthFailures: 0,
    };
    this.slots.set(id, slot);
    return slot;
  }

  private async startSlot(slot: Slot): Promise<void> {
    slot.state = 'starting';
    slot.healthFailures = 0;
    slot.readyAt = undefined;
    slot.nextRestartAt = undefined;
    slot.startedAt = this.clock.now();
    if (slot.pendingStop) await slot.pendingStop;
    if (slot.state !== 'starting' || this.stopping) return;
    this.emit('instance_starting', slot.id, `starting ${slot.id}`);
    let handle: InstanceHandle;
    try {
      handle = await this.opts.driver.start({ id: slot.id, env: this.opts.instanceEnv ?? {} });
    } catch (err) {
      this.fail(slot, 'start_error', `the runtime could not start it: ${(err as Error).message}`);
      return;
    }
    if (slot.state !== 'starting' || this.stopping) {
      await this.opts.driver.stop(slot.id, 0);
      return;
    }
    slot.handle = handle;
    await this.awaitHealthy(slot, handle);
  }

  /**
   * Startup probes: the instance is ready only once its health check answers. They start every
   * STARTUP_PROBE_INTERVAL_MS and slow by a quarter per failed probe, to once a second: a fast agent is
   * seen at once, a slow one (loading a model) is not asked (and does not log) 20 times a second.
   */
  /** `adoptedAt`: an adopted instance's startup deadline (and no cold start) counts from its adoption. */
  private async awaitHealthy(slot: Slot, handle: InstanceHandle, adoptedAt?: number): Promise<void> {
    const began = adoptedAt ?? slot.startedAt ?? this.clock.now();
    const deadline = began + this.opts.startupTimeoutMs;
    let pause = this.opts.startupProbeIntervalMs;
    let told = false;
    while (slot.state === 'starting' && slot.handle === handle && !this.stopping) {
      const left = deadline - this.clock.now();
      const result = await this.probe(
        handle.endpoint,
        this.healthPath,
        Math.max(10, Math.min(this.opts.healthCheckTimeoutMs, left)),
      );
      if (slot.state !== 'starting' || slot.handle !== handle) return;
      if (result.ok) {
        slot.state = 'ready';
        slot.readyAt = this.clock.now();
        slot.nextCheckAt = slot.readyAt + this.opts.healthCheckIntervalMs;
        if (adoptedAt === undefined) this.metrics.coldStart.observe((slot.readyAt - began) / 1000);
        this.emit(
          'instance_ready',
          slot.id,
          `${slot.id} is ready at ${urlOf(handle.endpoint)}`,
          adoptedAt === undefined ? { coldStartMs: slot.readyAt - began } : { adopted: true },
        );
        this.notifyPool();
        this.settleWaiters(slot);
        this.tick();
        return;
      }
      if (this.clock.now() >= deadline) {
        this.fail(
          slot,
          'startup',
          `not healthy within STARTUP_TIMEOUT_MS=${this.opts.startupTimeoutMs} (${result.reason})`,
        );
        return;
      }
      if (!told && this.clock.now() - began >= SLOW_START_NOTICE_MS) {
        told = true;
        this.log.info(
          { instance: slot.id, reason: result.reason },
          `${slot.id} is not healthy yet after ${Math.round((this.clock.now() - began) / 1000)} s (${result.reason}); waiting up to STARTUP_TIMEOUT_MS=${this.opts.startupTimeoutMs}`,
        );
      }
      await this.clock.sleep(pause);
      pause = Math.max(this.opts.startupProbeIntervalMs, Math.min(STARTUP_PROBE_MAX_MS, pause * 1.25));
    }
  }

  /**
   * One round of health checks over the ready instances that are due, at most HEALTH_PROBE_BATCH at a
   * time: the router shares this event loop, and 1000 probes at once stalled it ~45 ms (bench: control
   * plane). Each check is of the incarnation seen when the round began; one stopped meanwhile is skipped.
   * @internal public for tests, which pass `now` to make every instance due.
   */
  async checkHealth(now?: number): Promise<void> {
    now ??= this.clock.now();
    const due: Array<[Slot, InstanceHandle]> = [];
    for (const s of this.slots.values()) {
      if (s.state === 'ready' && s.handle && (s.nextCheckAt ?? 0) <= now) due.push([s, s.handle]);
    }
    for (let i = 0; i < due.length; i += HEALTH_PROBE_BATCH) {
      await Promise.all(
        due.slice(i, i + HEALTH_PROBE_BATCH).map(([slot, handle]) => this.checkOne(slot, handle)),
      );
    }
  }

  /**
   * A health check of this instance now, out of schedule (the router suspects it: a request has waited
   * long with no answer). Counts like a scheduled one. Undefined when it is not ready or a check of it
   * is already out.
   */
  async checkNow(id: string): Promise<boolean | undefined> {
    const slot = this.slots.get(id);
    if (slot?.state !== 'ready' || !slot.handle || slot.nextCheckAt === Number.POSITIVE_INFINITY)
      return undefined;
    return (await this.checkOne(slot, slot.handle))?.ok;
  }

  private async checkOne(slot: Slot, handle: InstanceHandle): Promise<ProbeResult | undefined> {
    if (slot.state !== 'ready' || slot.handle !== handle) return undefined;
    slot.nextCheckAt = Number.POSITIVE_INFINITY; // no second check of it while this one is out
    const result = await this.probe(handle.endpoint, this.healthPath, this.opts.healthCheckTimeoutMs);
    if (slot.state !== 'ready' || slot.handle !== handle) return undefined;
    const now = this.clock.now();
    if (result.ok) {
      if (slot.healthFailures > 0) {
        this.log.info({ instance: slot.id, failures: slot.healthFailures }, 'health check passes again');
      }
      slot.healthFailures = 0;
      slot.nextCheckAt = now + this.opts.healthCheckIntervalMs;
      return result;
    }
    slot.healthFailures++;
    slot.nextCheckAt = now + Math.min(RECHECK_MS, this.opts.healthCheckIntervalMs);
    // Logged once per run of failures; the failure that replaces the instance sums them up.
    if (slot.healthFailures === 1) {
      this.log.warn(
        { instance: slot.id, reason: result.reason },
        `health check of ${slot.id} failed: ${result.reason}`,
      );
    }
    if (slot.healthFailures >= this.opts.healthFailureThreshold) {
      this.fail(
        slot,
        'health',
        `${slot.healthFailures} consecutive failed health checks (last: ${result.reason})`,
      );
    }
    return result;
  }

  private async sampleUsage(): Promise<void> {
    await Promise.all(
      [...this.slots.values()].map(async (slot) => {
        if (!slot.handle || (slot.state !== 'ready' && slot.state !== 'draining')) return;
        const u = await this.opts.driver.usage(slot.id);
        if (!u) return;
        if (slot.lastUsage && u.at > slot.lastUsage.at) {
          slot.cpu = Math.max(
            0,
            (u.cpuSeconds - slot.lastUsage.cpuSeconds) / ((u.at - slot.lastUsage.at) / 1000),
          );
        }
        slot.lastUsage = { cpuSeconds: u.cpuSeconds, at: u.at };
        slot.memoryBytes = u.memoryBytes;
      }),
    );
  }

  /** CPU (cores) and memory of the ready instances, for the autoscaler's CPU signal. */
  usageOfReady(): Array<{ id: string; cpu: number | undefined; memoryBytes: number | undefined }> {
    return [...this.slots.values()]
      .filter((s) => s.state === 'ready')
      .map((s) => ({ id: s.id, cpu: s.cpu, memoryBytes: s.memoryBytes }));
  }

  private onExit(exit: ExitInfo): void {
    const slot = this.slots.get(exit.id);
    if (!slot || slot.state === 'draining' || slot.state === 'stopped' || slot.state === 'failed') return;
    // Only the current incarnation's exit matters: a stop we asked for (after failed health checks)
    // reports the old one's exit after the slot has moved on.
    if (!slot.handle || slot.handle.incarnation !== exit.incarnation) return;
    const how = exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}`;
    this.fail(
      slot,
      'exit',
      `${slot.id} ${how}`,
      { exitCode: exit.code, signal: exit.signal, output: exit.lastOutput },
      wasKilled(exit),
    );
  }

  /**
   * The instance failed (exit, health, start-up, runtime error, replaced as an outlier): mark the slot
   * failed, stop what is left of it, and schedule its restart by the restart policy.
   */
  private fail(slot: Slot, kind: string, reason: string, extra: Partial<Failure> = {}, killed = false): void {
    if (slot.state === 'draining' || slot.state === 'stopped' || this.stopping) return;
    const wasReady = slot.state === 'ready' || slot.state === 'paused';
    const now = this.clock.now();
    const plan = planRestart(
      {
        crashesBefore: slot.crashes,
        readyForMs: wasReady && slot.readyAt !== undefined ? now - slot.readyAt : undefined,
        killed,
      },
      this.opts.restartBackoffMs,
      this.opts.restartBackoffMaxMs,
    );
    slot.state = 'failed';
    this.settleWaiters(slot, new Error(reason));
    // A session's instance that had served is lost with its state: the session ends (it restarts as
    // a warm instance, nobody's).
    if (slot.owner !== undefined && slot.readyAt !== undefined) {
      const owner = slot.owner;
      slot.owner = undefined;
      this.ownedLost?.(slot.id, owner, reason);
    }
    slot.crashes = plan.crashes;
    slot.nextRestartAt = now + plan.delayMs;
    slot.lastFailure = { at: now, reason, ...extra };
    this.metrics.failures.inc({ reason: kind });
    if (kind !== 'exit' && slot.handle) {
      slot.pendingStop = this.opts.driver
        .stop(slot.id, Math.min(this.opts.stopGraceMs, 2000))
        .catch(() => {});
    }
    slot.handle = undefined;
    const crashLoop = slot.crashes >= CRASH_LOOP_THRESHOLD;
    this.emit('instance_failed', slot.id, `${reason}; restart in ${plan.delayMs} ms`, {
      reason: kind,
      crashes: slot.crashes,
      crashLoop,
      restartInMs: plan.delayMs,
    });
    if (wasReady) this.notifyPool();
    this.tick();
    if (plan.delayMs > 0) this.clock.after(plan.delayMs + 1, () => this.tick());
  }

  /** Stops sending it new requests, lets in-flight ones finish (up to DRAIN_TIMEOUT_MS), then stops it. */
  private async drainSlot(slot: Slot, restartAfter = false): Promise<void> {
    slot.state = 'draining';
    this.emit('instance_draining', slot.id, `draining ${slot.id}`, { inflight: this.load.inflight(slot.id) });
    this.notifyPool();
    const deadline = this.clock.now() + this.opts.drainTimeoutMs;
    while (this.load.inflight(slot.id) > 0 && this.clock.now() < deadline) await this.clock.sleep(25);
    const left = this.load.inflight(slot.id);
    await this.opts.driver.stop(slot.id, this.opts.stopGraceMs).catch((err: Error) => {
      this.emit('driver_error', slot.id, `stopping ${slot.id} failed: ${err.message}`);
    });
    slot.restartPending = false;
    if (restartAfter && !this.stopping && this.slots.get(slot.id) === slot) {
      slot.handle = undefined;
      slot.restarts++;
      this.metrics.restarts.inc({ instance: slot.id });
      this.emit('instance_restarting', slot.id, `restarting ${slot.id} (asked; restart ${slot.restarts})`, {
        restarts: slot.restarts,
      });
      await this.startSlot(slot);
      return;
    }
    this.finishStop(
      slot,
      left > 0
        ? `stopped ${slot.id} with ${left} request(s) still in flight after DRAIN_TIMEOUT_MS`
        : `stopped ${slot.id}`,
    );
  }

  private async removeSlot(slot: Slot): Promise<void> {
    slot.state = 'stopped';
    if (slot.pendingStop) await slot.pendingStop;
    await this.opts.driver.stop(slot.id, this.opts.stopGraceMs).catch(() => {});
    this.finishStop(slot, `stopped ${slot.id}`);
  }

  private finishStop(slot: Slot, message: string): void {
    slot.state = 'stopped';
    slot.handle = undefined;
    this.settleWaiters(slot, new Error(`${slot.id} stopped`));
    if (this.slots.get(slot.id) === slot) this.slots.delete(slot.id);
    this.emit('instance_stopped', slot.id, message);
    this.notifyPool();
    this.tick();
  }

  private notifyPool(): void {
    const members = this.members();
    for (const l of this.poolListeners) l(members);
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
