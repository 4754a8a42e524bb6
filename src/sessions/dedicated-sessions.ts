// SESSION_MODE=dedicated: every session gets an instance of its own. This is the one owner of the
// session → instance table: it claims an instance for a new session (warm, starting or new, never past
// MAX_INSTANCES), holds the session while a request of it is in flight, resumes a paused instance for
// the next request, pauses an idle one and ends a session idle for too long (idle-plan.ts decides).
// The instances' lives are the controller's; this class only asks it (SessionInstances).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { BackgroundErrorHandler } from '../core/background.js';
import { type Cancel, type Clock, loopOn, systemClock } from '../core/clock.js';
import { YggError } from '../core/errors.js';
import type { EventLog, EventType } from '../core/events.js';
import { recordPoolEvent } from '../core/events.js';
import type { Logger } from '../core/logger.js';
import type { InstanceState } from '../core/pool.js';
import { idlePlan, sweepIntervalMs } from './idle-plan.js';
import { sessionTag } from './session-tag.js';

/** What this needs of the controller (it implements it). */
export interface SessionInstances {
  claim(owner: string): { id: string; kind: 'warm' | 'starting' | 'new' } | undefined;
  whenReady(id: string): Promise<void>;
  pause(id: string): Promise<boolean>;
  resume(id: string): Promise<void>;
  release(id: string, owner: string): void;
  member(id: string): { state: InstanceState } | undefined;
  scalingLimits(): { maxInstances: number };
}

export interface DedicatedSessionsOptions {
  instances: SessionInstances;
  /** SESSION_IDLE_PAUSE_MS (0 = never). */
  pauseMs: number;
  /** SESSION_IDLE_DELETE_MS (0 = never). */
  deleteMs: number;
  /** How long a request waits for its session's instance to start (STARTUP_TIMEOUT_MS). */
  startupTimeoutMs: number;
  /** How long an ended session is remembered (its requests get 410, not a new instance). */
  endedTtlMs: number;
  events: EventLog;
  registry: Registry;
  logger: Logger;
  onError: BackgroundErrorHandler;
  clock?: Clock;
}

/** A session's hold on its instance for one request (or one WebSocket); release it once, when done. */
export interface SessionHold {
  instance: string;
  /** The instance came from the warm pool / was started for it / was resumed: for headers and tests. */
  how: 'warm' | 'started' | 'resumed' | 'ready';
  release(): void;
}

export interface SessionInfo {
  session: string;
  /** How /status, events and the live feed name it (session-tag.ts). */
  tag: string;
  instance: string;
  state: InstanceState;
  inflight: number;
  createdAt: string;
  lastActiveAt: string;
}

interface Entry {
  id: string;
  instance: string;
  /** The client key's name that started it (CLIENT_AUTH=keys): only it may use the session. */
  tenant: string | undefined;
  inflight: number;
  createdAt: number;
  lastActiveAt: number;
  /** A resume in progress for it (requests that arrive meanwhile wait on the same one). */
  resuming?: Promise<void>;
}

/** Ended sessions remembered at most (oldest forgotten first). */
const MAX_ENDED = 100_000;

export class DedicatedSessions {
  private readonly table = new Map<string, Entry>();
  private readonly byInstance = new Map<string, string>();
  private readonly ended = new Map<string, { at: number; reason: string }>();
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly metrics;
  private sweep: Cancel | undefined;
  private closed = false;

  constructor(private readonly opts: DedicatedSessionsOptions) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.logger.child({ part: 'sessions' });
    const table = this.table;
    const instances = opts.instances;
    const registers = [opts.registry];
    this.metrics = {
      claims: new Counter({
        name: 'yggdrasil_session_claims_total',
        help: 'New dedicated sessions by where their instance came from (warm = ready at once, starting = a warm one still starting, new = a cold start).',
        labelNames: ['source'],
        registers,
      }),
      start: new Histogram({
        name: 'yggdrasil_session_start_seconds',
        help: "From a new session's first request to its instance being ready, by source.",
        labelNames: ['source'],
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        registers,
      }),
      resume: new Histogram({
        name: 'yggdrasil_session_resume_seconds',
        help: 'From a request of a paused session to its instance running again.',
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
        registers,
      }),
      refused: new Counter({
        name: 'yggdrasil_session_refusals_total',
        help: 'Requests of dedicated sessions refused: capacity (no instance to be had), ended (410), failed (its instance did not start).',
        labelNames: ['reason'],
        registers,
      }),
    };
    new Gauge({
      name: 'yggdrasil_sessions',
      help: 'Dedicated sessions by the state of their instance.',
      labelNames: ['state'],
      registers,
      collect() {
        const counts = new Map<string, number>([
          ['ready', 0],
          ['paused', 0],
          ['resuming', 0],
          ['starting', 0],
        ]);
        for (const e of table.values()) {
          const st = instances.member(e.instance)?.state ?? 'stopped';
          counts.set(st, (counts.get(st) ?? 0) + 1);
        }
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
  }

  start(): void {
    this.sweep = loopOn(
      this.clock,
      sweepIntervalMs({ pauseMs: this.opts.pauseMs, deleteMs: this.opts.deleteMs }),
      'session idle sweep',
      () => this.sweepNow(),
      this.opts.onError,
    );
  }

  close(): void {
    this.closed = true;
    this.sweep?.();
  }

  /** Live sessions. */
  get size(): number {
    return this.table.size;
  }

  /** The session that owns an instance, if any (only it may reach the instance). */
  ownerOf(instance: string): string | undefined {
    return this.byInstance.get(instance);
  }

  /**
   * The session's instance, ready for a request: claimed for a new session, resumed when paused,
   * waited for while it starts. Throws YGG_ERR_SESSION_ENDED (410), YGG_ERR_CAPACITY (503, no
   * instance to be had) or YGG_ERR_INSTANCE_NOT_READY (503, it failed to start).
   */
  async acquire(sessionId: string, tenant?: string): Promise<SessionHold> {
    const began = this.clock.now();
    const ended = this.ended.get(sessionId);
    if (ended) {
      this.metrics.refused.inc({ reason: 'ended' });
      throw new YggError(
        'YGG_ERR_SESSION_ENDED',
        `session ${sessionId} ended (${ended.reason}) and its instance is gone: start a new session`,
      );
    }
    let e = this.table.get(sessionId);
    let how: SessionHold['how'] = 'ready';
    let source: 'warm' | 'starting' | 'new' | undefined;
    if (!e) {
      const claimed = this.closed ? undefined : this.opts.instances.claim(sessionId);
      if (!claimed) {
        this.metrics.refused.inc({ reason: 'capacity' });
        const max = this.opts.instances.scalingLimits().maxInstances;
        throw new YggError(
          'YGG_ERR_CAPACITY',
          `no instance for a new session: all MAX_INSTANCES=${max} belong to sessions (SESSION_MODE=dedicated)`,
          { retryAfterSeconds: this.retryAfterSeconds() },
        );
      }
      source = claimed.kind;
      e = { id: sessionId, instance: claimed.id, tenant, inflight: 0, createdAt: began, lastActiveAt: began };
      this.table.set(sessionId, e);
      this.byInstance.set(claimed.id, sessionId);
      this.metrics.claims.inc({ source });
      how = claimed.kind === 'warm' ? 'warm' : 'started';
      this.emit(
        'session_started',
        claimed.id,
        `session ${sessionTag(sessionId)} got ${claimed.id} (${source})`,
        {
          session: sessionTag(sessionId),
          source,
        },
      );
    }
    if (e.tenant !== tenant) {
      this.metrics.refused.inc({ reason: 'tenant' });
      throw new YggError('YGG_ERR_FORBIDDEN', `session ${sessionId} belongs to another client`);
    }
    const entry = e;
    // Held before any wait: the sweep never pauses or ends a session a request is waiting for.
    entry.inflight++;
    try {
      const resumed = await this.ready(entry);
      if (resumed) how = 'resumed';
    } catch (err) {
      this.done(entry);
      if (err instanceof YggError) throw err;
      if (!this.table.has(sessionId)) return this.acquire(sessionId, tenant); // ended meanwhile: 410
      this.metrics.refused.inc({ reason: 'failed' });
      throw new YggError(
        'YGG_ERR_INSTANCE_NOT_READY',
        `the instance of session ${sessionId} (${entry.instance}) is not ready: ${(err as Error).message}`,
        { retryAfterSeconds: 1 },
      );
    }
    if (source) this.metrics.start.observe({ source }, (this.clock.now() - began) / 1000);
    let released = false;
    return {
      instance: entry.instance,
      how,
      release: () => {
        if (released) return;
        released = true;
        this.done(entry);
      },
    };
  }

  /** Waits until the entry's instance is ready; true when it had to be resumed. */
  private async ready(e: Entry): Promise<boolean> {
    const state = this.opts.instances.member(e.instance)?.state;
    if (state === 'ready') return false;
    if (state === undefined || state === 'stopped' || state === 'draining') {
      this.forget(e, 'its instance is gone');
      this.opts.instances.release(e.instance, e.id);
      throw new YggError(
        'YGG_ERR_SESSION_ENDED',
        `session ${e.id} ended: its instance ${e.instance} is gone; start a new session`,
      );
    }
    if (state === 'paused' || e.resuming) {
      const began = this.clock.now();
      e.resuming ??= withTimeout(
        this.opts.instances.resume(e.instance),
        this.opts.startupTimeoutMs,
        this.clock,
        `not resumed within STARTUP_TIMEOUT_MS=${this.opts.startupTimeoutMs}`,
      ).finally(() => {
        e.resuming = undefined;
      });
      await e.resuming;
      this.metrics.resume.observe((this.clock.now() - began) / 1000);
      return true;
    }
    // Starting, resuming or failed (restarting): wait, bounded by the start-up time.
    await withTimeout(
      this.opts.instances.whenReady(e.instance),
      this.opts.startupTimeoutMs,
      this.clock,
      `not ready within STARTUP_TIMEOUT_MS=${this.opts.startupTimeoutMs}`,
    );
    return false;
  }

  private done(e: Entry): void {
    e.inflight = Math.max(0, e.inflight - 1);
    e.lastActiveAt = this.clock.now();
  }

  /**
   * The controller lost a session's instance after it had served (a crash, failed health checks): the
   * session ends with it, so its client is told (410) instead of finding a fresh instance without its
   * state.
   */
  instanceLost(instance: string, reason: string): void {
    const id = this.byInstance.get(instance);
    if (id !== undefined) this.end(id, `its instance ${instance} failed: ${reason}`);
  }

  /** Ends a session (admin, or idle past SESSION_IDLE_DELETE_MS): its instance drains and stops. */
  end(sessionId: string, reason: string): boolean {
    const e = this.table.get(sessionId);
    if (!e) return false;
    this.forget(e, reason);
    this.opts.instances.release(e.instance, sessionId);
    this.emit(
      'session_ended',
      e.instance,
      `session ${sessionTag(sessionId)} ended (${reason}); ${e.instance} stops`,
      {
        session: sessionTag(sessionId),
        reason,
      },
    );
    return true;
  }

  private forget(e: Entry, reason: string): void {
    if (this.table.get(e.id) !== e) return;
    this.table.delete(e.id);
    if (this.byInstance.get(e.instance) === e.id) this.byInstance.delete(e.instance);
    this.ended.set(e.id, { at: this.clock.now(), reason });
    if (this.ended.size > MAX_ENDED) {
      const oldest = this.ended.keys().next().value;
      if (oldest !== undefined) this.ended.delete(oldest);
    }
  }

  list(): SessionInfo[] {
    return [...this.table.values()].map((e) => ({
      session: e.id,
      tag: sessionTag(e.id),
      instance: e.instance,
      state: this.opts.instances.member(e.instance)?.state ?? 'stopped',
      inflight: e.inflight,
      createdAt: new Date(e.createdAt).toISOString(),
      lastActiveAt: new Date(e.lastActiveAt).toISOString(),
    }));
  }

  /** One pass of the idle rules: pause, end, and forget sessions ended long ago. */
  async sweepNow(): Promise<void> {
    const now = this.clock.now();
    const plan = idlePlan(
      [...this.table.values()].map((e) => ({
        id: e.id,
        state: this.opts.instances.member(e.instance)?.state ?? 'stopped',
        inflight: e.inflight,
        lastActiveAt: e.lastActiveAt,
      })),
      now,
      { pauseMs: this.opts.pauseMs, deleteMs: this.opts.deleteMs },
    );
    for (const id of plan.end) this.end(id, `idle for SESSION_IDLE_DELETE_MS=${this.opts.deleteMs}`);
    for (const [id, ended] of this.ended) {
      if (now - ended.at < this.opts.endedTtlMs) break; // in the order they ended
      this.ended.delete(id);
    }
    await Promise.all(
      plan.pause.map(async (id) => {
        const e = this.table.get(id);
        if (e)
          await this.opts.instances.pause(e.instance).catch((err) => this.opts.onError('session pause', err));
      }),
    );
  }

  /** Retry-After for a refused new session: when the soonest idle session may end, within 1..60 s. */
  private retryAfterSeconds(): number {
    if (this.opts.deleteMs === 0) return 5;
    const now = this.clock.now();
    let soonest = Number.POSITIVE_INFINITY;
    for (const e of this.table.values()) {
      if (e.inflight === 0) soonest = Math.min(soonest, e.lastActiveAt + this.opts.deleteMs - now);
    }
    if (!Number.isFinite(soonest)) return 5;
    return Math.max(1, Math.min(60, Math.ceil(soonest / 1000)));
  }

  private emit(type: EventType, instance: string, message: string, data: Record<string, unknown>): void {
    recordPoolEvent(this.opts.events, this.log, this.clock.now(), type, instance, message, data);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, clock: Clock, message: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const cancel = clock.after(ms, () => reject(new Error(message)));
    p.then(
      (v) => {
        cancel();
        resolve(v);
      },
      (err: unknown) => {
        cancel();
        reject(err);
      },
    );
  });
}
