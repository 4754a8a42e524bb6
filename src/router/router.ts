// The data plane. For each request: admission (size, shutdown), session lookup, a slot on an instance
// (least in-flight by two choices, never more than MAX_CONCURRENCY, else a bounded FIFO wait), forward,
// then breaker bookkeeping and a safe retry. Decisions come from pure modules (balancer, admission
// queue, breaker, session store, retry backoff); this class wires them to sockets and timers.
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { InstanceState } from '../controller/instance.js';
import { YggError } from '../core/errors.js';
import { readBody, sendError } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import { sessionIdOf } from '../core/session.js';
import { pickTwoChoices } from './balancer.js';
import type { BreakerTransition } from './breaker.js';
import { type ForwardOutcome, forward, INSTANCE_HEADER } from './forward.js';
import { upstreamHeaders } from './headers.js';
import { lazyBody } from './lazy-body.js';
import { createRouterMetrics, type RouterMetrics } from './metrics.js';
import { isRetryable, retryDelay } from './retry-backoff.js';
import { issuedTarget, issueSessionId, SESSION_MOVED_HEADER, sessionCookie } from './session-id.js';
import { MemorySessionStore, type SessionStore } from './session-store.js';
import { proxyUpgrade, refuseSocket } from './upgrade.js';
import { type Upstream, type UpstreamChange, UpstreamSet } from './upstreams.js';
import { CLIENT_GONE, WaitingRoom } from './waiting-room.js';

export interface RouterOptions {
  maxConcurrency: number;
  maxBodyBytes: number;
  requestTimeoutMs: number;
  queueMax: number;
  queueTimeoutMs: number;
  sessionAffinity: boolean;
  sessionTtlMs: number;
  maxRetries: number;
  breakerFailures: number;
  breakerResetMs: number;
  logger: Logger;
  /** Looks an instance up by id whatever its state (for /agent/{id}/… routes). */
  lookup: (id: string) => { state: InstanceState } | undefined;
  /** Called when a request waits and no instance is ready (scale from zero: start one now). */
  onDemand?: () => void;
  /** Called on every breaker state change (events, live feed). */
  onBreaker?: (instance: string, t: BreakerTransition) => void;
  sessions?: SessionStore;
  random?: () => number;
  now?: () => number;
}

interface Slot {
  up: Upstream;
  /** The session's instance changed for this request. */
  moved: boolean;
}

/** Bodies up to this size with a Content-Length are buffered (Envoy buffers for retries the same way). */
const SMALL_BODY_BYTES = 64 * 1024;

export class Router {
  readonly upstreams: UpstreamSet;
  readonly metrics: RouterMetrics;
  readonly sessions: SessionStore;
  private readonly room: WaitingRoom;
  private readonly random: () => number;
  private readonly now: () => number;
  private sessionSweep: NodeJS.Timeout;
  private closing = false;
  private readonly limit: number;
  private readonly recorders = new Map<
    string,
    { count: { inc(): void }; time: { observe(v: number): void } }
  >();

  constructor(private readonly opts: RouterOptions) {
    this.limit = opts.maxConcurrency;
    this.upstreams = new UpstreamSet(opts.maxConcurrency, {
      failureThreshold: opts.breakerFailures,
      baseEjectionMs: opts.breakerResetMs,
      maxEjectionMs: Math.max(300_000, opts.breakerResetMs * 10),
    });
    this.sessions = opts.sessions ?? new MemorySessionStore({ ttlMs: opts.sessionTtlMs });
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
    this.metrics = createRouterMetrics({
      upstreams: this.upstreams,
      queueLength: () => this.room.length,
      queueLimit: opts.queueMax,
      now: this.now,
    });
    this.room = new WaitingRoom({
      queueMax: opts.queueMax,
      queueTimeoutMs: opts.queueTimeoutMs,
      limit: this.limit,
      upstreams: this.upstreams,
      metrics: this.metrics,
      now: this.now,
      enter: (up, now) => this.enter(up, now),
      pick: (now) => this.pick(now, undefined),
      onDemand: opts.onDemand,
    });
    this.upstreams.onChange((c) => this.onPoolChange(c));
    this.sessionSweep = setInterval(() => void this.sessions.sweep(this.now()), 10_000);
    this.sessionSweep.unref();
  }

  // ---- load, as the controller and autoscaler see it --------------------------------------------

  inflight(id: string): number {
    return this.upstreams.get(id)?.inflight ?? 0;
  }

  /** Sessions pinned to an instance (the memory store answers synchronously). */
  sessionCount(id: string): number {
    const n = this.sessions.countByInstance(id);
    return typeof n === 'number' ? n : 0;
  }

  queued(): number {
    return this.room.length;
  }

  /** In-flight plus queued requests across the pool: the autoscaler's concurrency signal. */
  concurrency(): number {
    let n = this.room.length;
    for (const u of this.upstreams.all()) n += u.inflight;
    return n;
  }

  breakerStates(): Record<string, { state: string; consecutiveFailures: number; ejections: number }> {
    const now = this.now();
    const out: Record<string, { state: string; consecutiveFailures: number; ejections: number }> = {};
    for (const u of this.upstreams.all()) out[u.id] = u.breaker.snapshot(now);
    return out;
  }

  // ---- requests ---------------------------------------------------------------------------------

  /** Proxies a request to the pool (balanced, or to the instance of its session). */
  async proxy(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const started = performance.now();
    const refused = this.admissionError(req);
    if (refused) return this.refuse(res, refused, started);
    const sessionId = this.opts.sessionAffinity ? sessionIdOf(req) : undefined;
    const issueCookie = this.opts.sessionAffinity && sessionId === undefined;
    await this.run(req, res, path, started, sessionId, undefined, issueCookie);
  }

  /** Proxies a request to one named instance (GET /agent/{id}/health and friends). */
  async proxyTo(id: string, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const started = performance.now();
    const member = this.opts.lookup(id);
    if (!member) {
      return this.refuse(
        res,
        new YggError('YGG_ERR_UNKNOWN_INSTANCE', `no instance ${id} in the pool`),
        started,
      );
    }
    const up = this.upstreams.get(id);
    if (member.state !== 'ready' || !up || up.draining) {
      const err = new YggError('YGG_ERR_INSTANCE_NOT_READY', `instance ${id} is ${member.state}, not ready`, {
        retryAfterSeconds: 1,
        details: { state: member.state },
      });
      return this.refuse(res, err, started);
    }
    const refused = this.admissionError(req);
    if (refused) return this.refuse(res, refused, started);
    await this.run(req, res, path, started, undefined, up);
  }

  /** Carries an Upgrade (WebSocket) to the session's instance; the connection holds a slot while open. */
  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    if (this.closing) {
      return refuseSocket(
        socket,
        new YggError('YGG_ERR_SHUTTING_DOWN', 'the router is stopping', { retryAfterSeconds: 1 }),
      );
    }
    const extra: Record<string, string> = {};
    const sessionId = this.opts.sessionAffinity ? sessionIdOf(req) : undefined;
    let slot: Slot;
    try {
      slot = await this.acquire(socket, sessionId, undefined);
    } catch (err) {
      if (err !== CLIENT_GONE) refuseSocket(socket, err as YggError);
      return;
    }
    if (this.opts.sessionAffinity && sessionId === undefined) extra['set-cookie'] = this.issueCookie(slot.up);
    if (slot.moved) extra[SESSION_MOVED_HEADER] = '1';
    const outcome = await proxyUpgrade(slot.up, req, socket, head, extra);
    if (outcome.kind === 'failed') {
      refuseSocket(
        socket,
        new YggError(
          'YGG_ERR_UPSTREAM',
          `instance ${slot.up.id} failed the upgrade: ${outcome.error.message}`,
        ),
      );
      this.release(slot, { kind: 'failed', error: outcome.error, timeout: false, headersSent: false });
    } else {
      this.release(slot, { kind: 'response', status: outcome.kind === 'upgraded' ? 101 : outcome.status });
    }
  }

  close(): Promise<void> {
    this.closing = true;
    clearInterval(this.sessionSweep);
    this.room.close(
      new YggError('YGG_ERR_SHUTTING_DOWN', 'the router is stopping', { retryAfterSeconds: 1 }),
    );
    return this.upstreams.close();
  }

  private admissionError(req: IncomingMessage): YggError | undefined {
    if (this.closing)
      return new YggError('YGG_ERR_SHUTTING_DOWN', 'the router is stopping', { retryAfterSeconds: 1 });
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > this.opts.maxBodyBytes) {
      return new YggError(
        'YGG_ERR_BODY_TOO_LARGE',
        `request body exceeds MAX_BODY_BYTES=${this.opts.maxBodyBytes}`,
        {
          details: { limitBytes: this.opts.maxBodyBytes },
        },
      );
    }
    return undefined;
  }

  /** Acquire a slot, forward, and retry where safe; exactly one answer per request. */
  private async run(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    started: number,
    sessionId: string | undefined,
    target: Upstream | undefined,
    issueCookie = false,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    const idempotent = method === 'GET' || method === 'HEAD';
    const headers = upstreamHeaders(req);
    // A small body with a declared length is read first (before a slot is taken): one write upstream,
    // and safe to send again on a retry. Larger or chunked bodies stream (see lazyBody).
    let buffered: Buffer | null = null;
    const declared = req.headers['content-length'];
    if (!idempotent && declared !== undefined && Number(declared) <= SMALL_BODY_BYTES) {
      try {
        buffered = await readBody(req, SMALL_BODY_BYTES);
      } catch {
        return this.record('none', 499, started);
      }
    }
    let exclude: Upstream | undefined;
    let movedOnce = false;
    for (let attempt = 1; ; attempt++) {
      let slot: Slot;
      try {
        slot = target ? this.takeTarget(target) : await this.acquire(res, sessionId, exclude);
      } catch (err) {
        if (err === CLIENT_GONE) return this.record('none', 499, started);
        return this.refuse(res, err as YggError, started);
      }
      const { up } = slot;
      if (slot.moved) movedOnce = true;
      if (issueCookie) res.setHeader('set-cookie', this.issueCookie(up));
      // A fresh lazy wrapper per attempt: an attempt that never connected leaves the body unread.
      const body = idempotent || buffered ? null : lazyBody(req, this.opts.maxBodyBytes);
      const outcome = await forward(up, {
        req,
        res,
        path,
        headers,
        body: buffered ?? body?.stream ?? null,
        timeoutMs: this.opts.requestTimeoutMs,
        ...(movedOnce ? { responseHeaders: { [SESSION_MOVED_HEADER]: '1' } } : {}),
      });
      this.release(slot, outcome);
      switch (outcome.kind) {
        case 'response':
          return this.record(up.id, outcome.status, started);
        case 'aborted':
          return this.record(up.id, 499, started);
        case 'unreached':
        case 'failed': {
          const reached = outcome.kind === 'failed' || (body?.started() ?? false);
          const headersSent = outcome.kind === 'failed' && outcome.headersSent;
          if (
            !headersSent &&
            !(outcome.error instanceof YggError) &&
            !target &&
            isRetryable({ method, reachedUpstream: reached, attempt, maxRetries: this.opts.maxRetries })
          ) {
            this.metrics.retries.inc({ reason: reached ? 'failed' : 'unreached' });
            this.opts.logger.debug(
              { instance: up.id, attempt, err: outcome.error.message },
              'retrying on another instance',
            );
            await sleep(retryDelay(attempt, this.random()));
            if (res.destroyed) return this.record(up.id, 499, started);
            exclude = up;
            continue;
          }
          return this.refuse(res, this.failureError(up, outcome), started, up.id);
        }
      }
    }
  }

  private failureError(
    up: Upstream,
    outcome: Extract<ForwardOutcome, { kind: 'unreached' | 'failed' }>,
  ): YggError {
    if (outcome.error instanceof YggError) return outcome.error;
    if (outcome.kind === 'failed' && outcome.timeout) {
      return new YggError(
        'YGG_ERR_TIMEOUT',
        `instance ${up.id} did not answer within REQUEST_TIMEOUT_MS=${this.opts.requestTimeoutMs}`,
      );
    }
    const what = outcome.kind === 'unreached' ? 'could not be reached' : 'failed before answering';
    this.opts.logger.warn({ instance: up.id, err: outcome.error.message }, `instance ${what}`);
    return new YggError('YGG_ERR_UPSTREAM', `instance ${up.id} ${what}: ${outcome.error.message}`);
  }

  /** A request for a named instance waits for nothing: it goes if the instance has room. */
  private takeTarget(up: Upstream): Slot {
    if (up.inflight >= this.limit) {
      throw new YggError('YGG_ERR_CAPACITY', `instance ${up.id} is at MAX_CONCURRENCY=${this.limit}`, {
        retryAfterSeconds: 1,
      });
    }
    up.inflight++;
    return { up, moved: false };
  }

  /**
   * A slot for a request: on its session's instance when that instance lives (waiting in its queue
   * when full), else on the least loaded instance, else in the FIFO queue until one frees up.
   */
  private async acquire(
    res: EventEmitter,
    sessionId: string | undefined,
    exclude: Upstream | undefined,
  ): Promise<Slot> {
    const now = this.now();
    let pinned: Upstream | undefined;
    let moved = exclude !== undefined;
    let known = false;
    let stored: { instanceId: string; incarnation: string } | undefined;
    if (sessionId !== undefined) {
      const found = this.sessions.get(sessionId, now);
      stored = (found instanceof Promise ? await found : found) ?? undefined;
      const b = stored ?? this.issuedBinding(sessionId);
      if (b) {
        known = true;
        const up = this.upstreams.get(b.instanceId);
        if (
          up &&
          up !== exclude &&
          up.incarnation === b.incarnation &&
          !up.draining &&
          up.breaker.available(now)
        ) {
          pinned = up;
        } else moved = true;
      }
    }
    if (pinned) {
      if (pinned.inflight < this.limit && this.enter(pinned, now)) {
        pinned.inflight++;
        this.bindSession(sessionId, pinned, 'hit', stored !== undefined);
        return { up: pinned, moved };
      }
      const up = await this.room.wait(res, pinned.id);
      this.bindSession(sessionId, up, up === pinned ? 'hit' : 'moved', stored !== undefined);
      return { up, moved: up !== pinned };
    }
    const picked = this.pick(now, exclude);
    if (picked) {
      picked.inflight++;
      this.bindSession(sessionId, picked, known ? 'moved' : 'new');
      return { up: picked, moved: moved && known };
    }
    const active = this.upstreams.active;
    if (active.length > 0 && active.every((u) => !u.breaker.available(now))) {
      throw new YggError(
        'YGG_ERR_CIRCUIT_OPEN',
        'every instance has its circuit breaker open after repeated failures',
        {
          retryAfterSeconds: Math.max(1, Math.ceil(this.nextBreakerRetry(now) / 1000)),
        },
      );
    }
    const up = await this.room.wait(res, null);
    this.bindSession(sessionId, up, known ? 'moved' : 'new');
    return { up, moved: moved && known };
  }

  /** Asks the breaker to let one request in, reporting the open → half-open change it may make. */
  private enter(up: Upstream, now: number): boolean {
    const ok = up.breaker.canRequest(now);
    const t = up.breaker.transition;
    if (t) this.onBreakerTransition(up, t);
    return ok;
  }

  /** Least in-flight by two choices among instances with room and a breaker that lets requests in. */
  private pick(now: number, exclude: Upstream | undefined): Upstream | undefined {
    const active = this.upstreams.active;
    const load = (u: Upstream) =>
      (u === exclude && active.length > 1) || !u.breaker.available(now) ? this.limit : u.inflight;
    const up = pickTwoChoices(active, load, this.limit, this.random);
    if (up && !this.enter(up, now)) return undefined;
    return up;
  }

  /**
   * Records where a session went. A session already in the table is touched; one named only by the
   * id the router issued it (its first return) or moved elsewhere is written to the table.
   */
  private bindSession(
    sessionId: string | undefined,
    up: Upstream,
    kind: 'hit' | 'new' | 'moved',
    stored = false,
  ): void {
    if (sessionId === undefined) return;
    const now = this.now();
    if (kind === 'hit' && stored) void this.sessions.touch(sessionId, now);
    else void this.sessions.set(sessionId, { instanceId: up.id, incarnation: up.incarnation }, now);
    this.metrics.affinity.inc({ result: kind });
  }

  /** The binding an id issued by this router implies (instance and run), before any table entry. */
  private issuedBinding(sessionId: string): { instanceId: string; incarnation: string } | undefined {
    const target = issuedTarget(sessionId);
    if (!target) return undefined;
    const up = this.upstreams.get(target.instanceId);
    const live = up?.incarnation.startsWith(target.incarnationPrefix);
    // A run that is gone keeps its prefix: the session then counts as moved.
    return { instanceId: target.instanceId, incarnation: live ? up!.incarnation : target.incarnationPrefix };
  }

  /** A session cookie for a request that had none, naming the instance that serves it. */
  private issueCookie(up: Upstream): string {
    this.metrics.affinity.inc({ result: 'new' });
    return sessionCookie(issueSessionId(up));
  }

  private nextBreakerRetry(now: number): number {
    let min = Number.POSITIVE_INFINITY;
    for (const u of this.upstreams.active) {
      const s = u.breaker.snapshot(now);
      if (s.openUntil !== undefined) min = Math.min(min, s.openUntil - now);
    }
    return Number.isFinite(min) ? min : 1000;
  }

  private release(slot: Slot, outcome: ForwardOutcome): void {
    const { up } = slot;
    up.inflight--;
    const now = this.now();
    let t: BreakerTransition | undefined;
    if (outcome.kind === 'aborted') {
      // A probe whose client went away decides nothing; let the next request probe instead.
      if (up.breaker.state(now) === 'half-open') up.breaker.releaseProbe();
    } else if (outcome.kind === 'response' && outcome.status < 500) {
      t = up.breaker.onSuccess(now);
    } else {
      t = up.breaker.onFailure(now);
    }
    if (t) this.onBreakerTransition(up, t);
    this.room.pump(up);
  }

  private onBreakerTransition(up: Upstream, t: BreakerTransition): void {
    this.metrics.breakerTransitions.inc({ instance: up.id, to: t.to });
    this.opts.logger.warn(
      { instance: up.id, from: t.from, to: t.to, ejectionMs: t.ejectionMs },
      'circuit breaker',
    );
    this.opts.onBreaker?.(up.id, t);
    // Its sessions' waiters move on rather than wait out the ejection.
    if (t.to === 'open') this.room.unpin(up.id);
    if (t.to === 'closed') this.room.pump(up);
  }

  private onPoolChange(c: UpstreamChange): void {
    for (const up of [...c.removed, ...c.draining]) this.room.unpin(up.id);
    for (const up of c.removed) {
      // Requests still counted on a removed incarnation finish on their own; nothing new goes there.
      up.draining = true;
    }
    this.room.pumpAll();
  }

  private refuse(res: ServerResponse, err: YggError, started: number, instance = 'none'): void {
    sendError(res, err, instance === 'none' ? {} : { [INSTANCE_HEADER]: instance });
    this.record(instance, err.status, started);
  }

  private record(instance: string, status: number, started: number): void {
    // Labelled children are cached: prom-client hashes the label set on every unlabelled call.
    const key = `${instance} ${status}`;
    let r = this.recorders.get(key);
    if (!r) {
      r = {
        count: this.metrics.requests.labels({ instance, code: String(status) }),
        time: this.metrics.duration.labels({ instance }),
      };
      this.recorders.set(key, r);
    }
    r.count.inc();
    r.time.observe((performance.now() - started) / 1000);
  }
}
