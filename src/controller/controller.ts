// The control plane: keeps the pool at the desired size between MIN_INSTANCES and MAX_INSTANCES, starts
// instances through the runtime driver, health-checks them, restarts crashes with backoff, and drains
// instances before stopping them. Decisions come from the pure `reconcile`; this class carries them out.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../core/logger.js';
import type { Endpoint, ExitInfo, InstanceDriver, InstanceHandle } from '../runtime/driver.js';
import { urlOf } from '../runtime/driver.js';
import { type ControllerEvent, EventLog, type EventType } from './events.js';
import { probeHealth } from './health-probe.js';
import { type InstanceState, slotNumber } from './instance.js';
import { type ControllerMetrics, createControllerMetrics } from './metrics.js';
import { reconcile } from './reconcile.js';
import { CRASH_LOOP_THRESHOLD, crashResetMs, restartDelay } from './restart-backoff.js';

export interface ControllerOptions {
  driver: InstanceDriver;
  logger: Logger;
  minInstances: number;
  maxInstances: number;
  healthCheckIntervalMs: number;
  healthCheckTimeoutMs: number;
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
}

/** What the data plane reports back: load per instance (in-flight requests, pinned sessions). */
export interface LoadSource {
  inflight(id: string): number;
  sessions(id: string): number;
}

/** An instance as the router needs it. */
export interface PoolMember {
  id: string;
  incarnation: string;
  endpoint: Endpoint;
  state: InstanceState;
}

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
  /** A stop of the previous incarnation still in progress; a restart waits for it. */
  pendingStop?: Promise<void>;
  cpu?: number;
  memoryBytes?: number;
  lastUsage?: { cpuSeconds: number; at: number };
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
const NO_LOAD: LoadSource = { inflight: () => 0, sessions: () => 0 };
const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

export class Controller {
  readonly events = new EventLog();
  readonly metrics: ControllerMetrics;
  private readonly slots = new Map<string, Slot>();
  private readonly poolListeners: Array<(members: PoolMember[]) => void> = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private load: LoadSource = NO_LOAD;
  private desired: number;
  private stopping = false;
  private tickQueued = false;
  private readonly log: Logger;

  constructor(private readonly opts: ControllerOptions) {
    this.log = opts.logger.child({ part: 'controller' });
    this.desired = opts.minInstances;
    this.metrics = createControllerMetrics({
      desired: () => this.desired,
      limits: () => ({ min: this.opts.minInstances, max: this.opts.maxInstances }),
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
      void this.awaitHealthy(slot, handle);
    }
    const every = (ms: number, fn: () => void) => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.opts.reconcileIntervalMs ?? 1000, () => this.tick());
    every(this.opts.healthCheckIntervalMs, () => void this.checkHealth());
    every(this.opts.usageIntervalMs ?? 2000, () => void this.sampleUsage());
    this.tick();
  }

  /** Drains every instance (in-flight requests finish, up to DRAIN_TIMEOUT_MS), then stops them all. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    await Promise.all(
      [...this.slots.values()].map((s) => (s.state === 'ready' ? this.drainSlot(s) : this.removeSlot(s))),
    );
    await this.opts.driver.close();
  }

  /** Resolves once at least `count` instances are ready, or rejects after `timeoutMs`. */
  async waitForReady(count: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.readyCount() < count) {
      if (Date.now() > deadline) {
        throw new Error(`only ${this.readyCount()} of ${count} instances ready after ${timeoutMs} ms`);
      }
      await sleep(20);
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
    const next = Math.max(this.opts.minInstances, Math.min(this.opts.maxInstances, Math.round(count)));
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

  get desiredInstances(): number {
    return this.desired;
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
          crashLoop: s.crashes >= CRASH_LOOP_THRESHOLD,
          nextRestartAt: s.state === 'failed' ? iso(s.nextRestartAt) : null,
          lastFailure: s.lastFailure
            ? { ...s.lastFailure, at: new Date(s.lastFailure.at).toISOString() }
            : null,
          cpu: s.cpu ?? null,
          memoryBytes: s.memoryBytes ?? null,
          meta: s.handle?.meta ?? {},
        }),
      );
    return {
      driver: this.opts.driver.kind,
      desiredInstances: this.desired,
      minInstances: this.opts.minInstances,
      maxInstances: this.opts.maxInstances,
      readyInstances: this.readyCount(),
      instances,
      events: this.events.recent(50),
    };
  }

  // ---- reconciliation --------------------------------------------------------------------------

  /** Reconciles now (coalesced: several triggers in one turn of the event loop run once). */
  tick(): void {
    if (this.tickQueued || this.stopping) return;
    this.tickQueued = true;
    queueMicrotask(() => {
      this.tickQueued = false;
      if (!this.stopping) this.reconcileNow();
    });
  }

  private reconcileNow(): void {
    const now = Date.now();
    const resetAfter = crashResetMs(this.opts.restartBackoffMaxMs);
    for (const s of this.slots.values()) {
      if (s.state === 'ready' && s.crashes > 0 && s.readyAt !== undefined && now - s.readyAt >= resetAfter) {
        s.crashes = 0;
      }
    }
    const plan = reconcile({
      desired: this.desired,
      now,
      slots: [...this.slots.values()].map((s) => ({
        id: s.id,
        state: s.state,
        inflight: this.load.inflight(s.id),
        sessions: this.load.sessions(s.id),
        ...(s.nextRestartAt !== undefined ? { nextRestartAt: s.nextRestartAt } : {}),
      })),
    });
    for (const id of plan.create) void this.startSlot(this.newSlot(id));
    for (const id of plan.restart) {
      const s = this.slots.get(id);
      if (!s) continue;
      s.restarts++;
      this.metrics.restarts.inc({ instance: id });
      this.emit('instance_restarting', id, `restarting ${id} (restart ${s.restarts})`, {
        restarts: s.restarts,
      });
      void this.startSlot(s);
    }
    for (const id of plan.drain) {
      const s = this.slots.get(id);
      if (s) void this.drainSlot(s);
    }
    for (const id of plan.remove) {
      const s = this.slots.get(id);
      if (s) void this.removeSlot(s);
    }
  }

  private newSlot(id: string): Slot {
    const slot: Slot = {
      id,
      state: 'starting',
      createdAt: Date.now(),
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
    slot.startedAt = Date.now();
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

  /** Startup probes: the instance is ready only once its health check answers. */
  private async awaitHealthy(slot: Slot, handle: InstanceHandle): Promise<void> {
    const began = slot.startedAt ?? Date.now();
    const deadline = began + this.opts.startupTimeoutMs;
    while (slot.state === 'starting' && slot.handle === handle && !this.stopping) {
      const left = deadline - Date.now();
      const result = await probeHealth(
        handle.endpoint,
        Math.max(10, Math.min(this.opts.healthCheckTimeoutMs, left)),
      );
      if (slot.state !== 'starting' || slot.handle !== handle) return;
      if (result.ok) {
        slot.state = 'ready';
        slot.readyAt = Date.now();
        this.metrics.coldStart.observe((slot.readyAt - began) / 1000);
        this.emit('instance_ready', slot.id, `${slot.id} is ready at ${urlOf(handle.endpoint)}`, {
          coldStartMs: slot.readyAt - began,
        });
        this.notifyPool();
        this.tick();
        return;
      }
      if (Date.now() >= deadline) {
        this.fail(
          slot,
          'startup',
          `not healthy within STARTUP_TIMEOUT_MS=${this.opts.startupTimeoutMs} (${result.reason})`,
        );
        return;
      }
      await sleep(this.opts.startupProbeIntervalMs);
    }
  }

  /**
   * One round of health checks over the ready instances, at most HEALTH_PROBE_BATCH at a time: the
   * router shares this event loop, and 1000 probes at once stalled it ~45 ms (bench: control plane).
   */
  private async checkHealth(): Promise<void> {
    const ready = [...this.slots.values()].filter((s) => s.state === 'ready' && s.handle);
    for (let i = 0; i < ready.length; i += HEALTH_PROBE_BATCH) {
      await Promise.all(ready.slice(i, i + HEALTH_PROBE_BATCH).map((slot) => this.checkOne(slot)));
    }
  }

  private async checkOne(slot: Slot): Promise<void> {
    const handle = slot.handle!;
    const result = await probeHealth(handle.endpoint, this.opts.healthCheckTimeoutMs);
    if (slot.state !== 'ready' || slot.handle !== handle) return;
    if (result.ok) {
      slot.healthFailures = 0;
      return;
    }
    slot.healthFailures++;
    this.log.warn(
      { instance: slot.id, reason: result.reason, failures: slot.healthFailures },
      'health check failed',
    );
    if (slot.healthFailures >= this.opts.healthFailureThreshold) {
      this.fail(
        slot,
        'health',
        `${slot.healthFailures} consecutive failed health checks (last: ${result.reason})`,
      );
    }
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
    this.fail(slot, 'exit', `${slot.id} ${how}`, {
      exitCode: exit.code,
      signal: exit.signal,
      output: exit.lastOutput,
    });
  }

  private fail(slot: Slot, kind: string, reason: string, extra: Partial<Failure> = {}): void {
    if (slot.state === 'draining' || slot.state === 'stopped' || this.stopping) return;
    const wasReady = slot.state === 'ready';
    slot.state = 'failed';
    slot.crashes++;
    const delay = restartDelay(slot.crashes, this.opts.restartBackoffMs, this.opts.restartBackoffMaxMs);
    const now = Date.now();
    // The first crash of a healthy instance is replaced at once; repeated ones back off.
    slot.nextRestartAt = slot.crashes === 1 ? now : now + delay;
    slot.lastFailure = { at: now, reason, ...extra };
    this.metrics.failures.inc({ reason: kind });
    if (kind !== 'exit' && slot.handle) {
      slot.pendingStop = this.opts.driver
        .stop(slot.id, Math.min(this.opts.stopGraceMs, 2000))
        .catch(() => {});
    }
    slot.handle = undefined;
    const crashLoop = slot.crashes >= CRASH_LOOP_THRESHOLD;
    this.emit('instance_failed', slot.id, `${reason}; restart in ${slot.nextRestartAt - now} ms`, {
      reason: kind,
      crashes: slot.crashes,
      crashLoop,
      restartInMs: slot.nextRestartAt - now,
    });
    if (wasReady) this.notifyPool();
    this.tick();
    if (slot.nextRestartAt > now) {
      setTimeout(() => this.tick(), slot.nextRestartAt - now + 1).unref();
    }
  }

  /** Stops sending it new requests, lets in-flight ones finish (up to DRAIN_TIMEOUT_MS), then stops it. */
  private async drainSlot(slot: Slot): Promise<void> {
    slot.state = 'draining';
    this.emit('instance_draining', slot.id, `draining ${slot.id}`, { inflight: this.load.inflight(slot.id) });
    this.notifyPool();
    const deadline = Date.now() + this.opts.drainTimeoutMs;
    while (this.load.inflight(slot.id) > 0 && Date.now() < deadline) await sleep(25);
    const left = this.load.inflight(slot.id);
    await this.opts.driver.stop(slot.id, this.opts.stopGraceMs).catch((err: Error) => {
      this.emit('driver_error', slot.id, `stopping ${slot.id} failed: ${err.message}`);
    });
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
    const e: ControllerEvent = {
      at: Date.now(),
      type,
      message,
      ...(instance ? { instance } : {}),
      ...(data ? { data } : {}),
    };
    this.events.push(e);
    const level = type === 'instance_failed' || type === 'driver_error' ? 'warn' : 'info';
    this.log[level]({ event: type, instance, ...data }, message);
  }
}
