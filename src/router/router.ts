// The data plane. For each request: admission (size, shutdown), its body (small ones read first),
// session lookup, a slot (the SlotPool: least in-flight by two choices, never more than MAX_CONCURRENCY,
// else a bounded FIFO wait), forward, then the verdict for the breaker and a retry only when the request
// provably never reached an instance. Decisions come from pure modules (balancer, admission queue,
// breaker, stall detector, attribution, session store, backoff); this class wires them to sockets.
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AddressList, parseAddressList } from '../core/address-list.js';
import { type BackgroundErrorHandler, every } from '../core/background.js';
import { fullJitter } from '../core/backoff.js';
import { Deadlines } from '../core/deadlines.js';
import { YggError } from '../core/errors.js';
import { readBody, sendError } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import { SESSION_HEADER, sessionIdOf } from '../core/session.js';
import { errorFor, type ForwardOutcome, mayRetry, verdictOf } from './attribution.js';
import type { BreakerTransition } from './breaker.js';
import { ClientGate, type ClientGateOptions } from './client-gate.js';
import { forward, INSTANCE_HEADER } from './forward.js';
import { upstreamHeaders } from './headers.js';
import { lazyBody } from './lazy-body.js';
import { createRouterMetrics, type RouterMetrics } from './metrics.js';
import type { PoolSource } from './pool-source.js';
import { ResponseShaping } from './response-shaping.js';
import { issuedTarget, issueSessionId, SESSION_MOVED_HEADER, sessionCookie } from './session-id.js';
import { MemorySessionStore, type SessionStore } from './session-store.js';
import { type Lease, SlotPool } from './slot-pool.js';
import { proxyUpgrade, refuseSocket } from './upgrade.js';
import { type Upstream, UpstreamSet } from './upstreams.js';
import { CLIENT_GONE } from './waiting-room.js';

export interface RouterOptions {
  maxConcurrency: number;
  maxBodyBytes: number;
  requestTimeoutMs: number;
  /** CLIENT_BODY_TIMEOUT_MS. */
  clientBodyTimeoutMs?: number;
  queueMax: number;
  queueTimeoutMs: number;
  sessionAffinity: boolean;
  sessionTtlMs: number;
  maxRetries: number;
  breakerFailures: number;
  breakerResetMs: number;
  /** BREAKER_COUNT_5XX. */
  breakerCount5xx?: boolean;
  /** OUTLIER_STALL_MS (0 = off). */
  outlierStallMs?: number;
  /** TRUSTED_PROXIES. */
  trustedProxies?: string;
  logger: Logger;
  /** The pool's members and the control plane's answers (in-process or through Redis). */
  pool: PoolSource;
  /** Called on every breaker state change (events, live feed). */
  onBreaker?: (instance: string, t: BreakerTransition) => void;
  /** CLIENT_AUTH and the per-client limits (off when omitted or all zero). */
  clients?: Pick<
    ClientGateOptions,
    'auth' | 'keys' | 'rateRps' | 'rateBurst' | 'maxInflight' | 'maxSessions' | 'limiter'
  >;
  sessions?: SessionStore;
  /** SESSION_MODE=dedicated: each session's requests go to its own instance, and nowhere else. */
  dedicated?: SessionPlacer;
  /** COMPRESSION=on: COMPRESSION_MIN_BYTES (undefined = compression off). */
  compressMinBytes?: number | undefined;
  /** RESPONSE_CACHE_BYTES (0 or undefined = no cache). */
  responseCacheBytes?: number | undefined;
  random?: () => number;
  now?: () => number;
}

/** A run's admission (admitRun): the client it runs as, held until the run ends. */
export interface RunTicket {
  tenant: string | undefined;
  release(): void;
}

/** A session's own instance (SESSION_MODE=dedicated), declared here, implemented by DedicatedSessions. */
export interface SessionPlacer {
  /**
   * The session's instance, ready (claimed, started or resumed); throws the YggError to answer. With
   * CLIENT_AUTH=keys a session belongs to the tenant that started it: another tenant is refused.
   */
  acquire(sessionId: string, tenant: string | undefined): Promise<{ instance: string; release(): void }>;
  /** The session that owns an instance, if any. */
  ownerOf(instance: string): string | undefined;
}

/** One client request on its way through the router. */
interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  /** Origin-form target to forward. */
  target: string;
  /** performance.now() when it arrived. */
  started: number;
  /** The client sent `Expect: 100-continue` and waits to be told to send its body. */
  expectsContinue: boolean;
  sessionId: string | undefined;
  /** The request named no session: issue one (a cookie) on the instance that serves it. */
  issueSession: boolean;
  /** The client key's name (CLIENT_AUTH=keys), for X-Yggdrasil-Tenant. */
  tenant?: string | undefined;
  /** /agent/{id}/…: only this instance. */
  named?: Upstream;
  /** A run (Prefer: respond-async): its body, read before the 202 (null: none). */
  preread?: Buffer | null;
  /** A run's own bound (RUN_TIMEOUT_MS) instead of REQUEST_TIMEOUT_MS. */
  timeoutMs?: number;
}

/** A slot for a request, and whether the session's instance changed for it. */
interface Placement {
  lease: Lease;
  moved: boolean;
  /** A dedicated session's hold on its instance, released with the lease. */
  hold?: { release(): void };
}

/** Bodies up to this size with a Content-Length are read before a slot is taken (Envoy buffers for retries the same way). */
const SMALL_BODY_BYTES = 64 * 1024;
/** What an attempt that threw before forward() settled counts as: nothing (a neutral verdict). */
const NO_OUTCOME: ForwardOutcome = { kind: 'aborted' };
const DONE: Promise<void> = Promise.resolve();
const MOVED = { [SESSION_MOVED_HEADER]: '1' };
const SHUTTING_DOWN = () =>
  new YggError('YGG_ERR_SHUTTING_DOWN', 'the router is stopping', { retryAfterSeconds: 1 });

export class Router {
  readonly upstreams: UpstreamSet;
  readonly metrics: RouterMetrics;
  readonly sessions: SessionStore;
  readonly slots: SlotPool;
  /** Per-client admission, when CLIENT_AUTH or a per-client limit is on. */
  private readonly clients: ClientGate | undefined;
  /** Compression and the response cache; undefined when both are off. */
  private readonly shaping: ResponseShaping | undefined;
  private readonly trusted: AddressList;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly clientBodyTimeoutMs: number;
  /** Deadlines of request bodies (CLIENT_BODY_TIMEOUT_MS), on one timer. */
  private readonly bodyDeadlines: Deadlines;
  private readonly bodyDeadline: { ms: number; clock: Deadlines };
  private sessionSweep: NodeJS.Timeout;
  private closing = false;
  private readonly affinitySeries = new Map<string, { inc(): void }>();
  private readonly recorders = new Map<
    string,
    { count: { inc(): void }; time: { observe(v: number): void }; ttfb: { observe(v: number): void } }
  >();

  constructor(private readonly opts: RouterOptions) {
    this.upstreams = new UpstreamSet(opts.maxConcurrency, {
      failureThreshold: opts.breakerFailures,
      baseEjectionMs: opts.breakerResetMs,
      maxEjectionMs: Math.max(300_000, opts.breakerResetMs * 10),
    });
    this.sessions = opts.sessions ?? new MemorySessionStore({ ttlMs: opts.sessionTtlMs });
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
    this.trusted = parseAddressList(opts.trustedProxies ?? '');
    this.clientBodyTimeoutMs = opts.clientBodyTimeoutMs ?? 30_000;
    this.bodyDeadlines = new Deadlines(
      Math.max(10, Math.min(250, this.clientBodyTimeoutMs / 4)),
      Date.now,
      (err) => this.onBackgroundError('body deadlines', err),
    );
    this.bodyDeadline = { ms: this.clientBodyTimeoutMs, clock: this.bodyDeadlines };
    this.metrics = createRouterMetrics({
      upstreams: this.upstreams,
      queueLength: () => this.slots.queued,
      queueLimit: opts.queueMax,
      now: this.now,
      cacheBytes: () => this.shaping?.cache?.bytes ?? 0,
    });
    const { compressed, cache } = this.metrics;
    this.shaping = ResponseShaping.of({
      compressMinBytes: opts.compressMinBytes,
      cacheBytes: opts.responseCacheBytes,
      now: this.now,
      counters: {
        compressed: (encoding) => compressed.labels({ encoding }),
        cache: (result) => cache.labels({ result }),
      },
    });
    this.slots = new SlotPool({
      upstreams: this.upstreams,
      limit: opts.maxConcurrency,
      queueMax: opts.queueMax,
      queueTimeoutMs: opts.queueTimeoutMs,
      stall: { minStallMs: opts.outlierStallMs ?? 0 },
      metrics: this.metrics,
      logger: opts.logger,
      now: this.now,
      random: this.random,
      onDemand: () => opts.pool.demand(),
      outlook: () => opts.pool.outlook(),
      onBreaker: opts.onBreaker,
      onReplace: (id, reason) => opts.pool.replace(id, reason),
      probe: (id) => opts.pool.probe(id),
      onError: this.onBackgroundError,
    });
    const c = opts.clients;
    if (
      c &&
      ClientGate.needed({
        auth: c.auth,
        rateRps: c.rateRps,
        maxInflight: c.maxInflight,
        maxSessions: c.maxSessions,
      })
    ) {
      this.clients = new ClientGate({
        ...c,
        sessionTtlMs: opts.sessionTtlMs,
        trustedProxies: this.trusted,
        count: (tenant, outcome) => this.metrics.clientRequests.labels({ tenant, outcome }),
        now: this.now,
      });
    }
    this.sessionSweep = every(
      10_000,
      'session sweep',
      () => {
        this.clients?.sweep(this.now());
        return this.sessions.sweep(this.now());
      },
      this.onBackgroundError,
    );
    opts.pool.onMembers((members) => {
      if (!this.closing) this.upstreams.sync(members);
    });
  }

  /** Background work that failed: logged and counted, never an unhandled rejection. */
  private readonly onBackgroundError: BackgroundErrorHandler = (loop, err) => {
    this.metrics.backgroundErrors.inc({ loop });
    this.opts.logger.error({ err, loop }, `router background task failed: ${loop}`);
  };

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
    return this.slots.queued;
  }

  /** In-flight plus queued requests across the pool: the autoscaler's concurrency signal. */
  concurrency(): number {
    return this.slots.queued + this.slots.inflight;
  }

  breakerStates(): Record<string, { state: string; consecutiveFailures: number; ejections: number }> {
    const now = this.now();
    const out: Record<string, { state: string; consecutiveFailures: number; ejections: number }> = {};
    for (const u of this.upstreams.all()) out[u.id] = u.breaker.snapshot(now);
    return out;
  }

  // ---- requests ---------------------------------------------------------------------------------

  /** Proxies a request to the pool (balanced, or to the instance of its session). */
  proxy(req: IncomingMessage, res: ServerResponse, target: string, expectsContinue = false): Promise<void> {
    const started = performance.now();
    const refused = this.admissionError(req);
    if (refused) {
      this.refuse(res, refused, started);
      return DONE;
    }
    const { sessionId } = this.sessionOf(req);
    const issueSession = this.opts.sessionAffinity && sessionId === undefined && !this.opts.dedicated;
    const go = (tenant: string | undefined) =>
      this.run({ req, res, target, started, expectsContinue, sessionId, issueSession, tenant });
    // Without per-client rules, straight to run (one promise fewer on the hot path).
    return this.clients ? this.admitted(req, res, started, sessionId, go) : go(undefined);
  }

  /** The request's session (with dedicated sessions, one it must name: see placeDedicated). */
  private sessionOf(req: IncomingMessage): { sessionId: string | undefined } {
    if (this.opts.dedicated) return { sessionId: sessionIdOf(req) };
    return { sessionId: this.opts.sessionAffinity ? sessionIdOf(req) : undefined };
  }

  /** Runs `go` for a client the client gate lets in (directly when no per-client rule is on). */
  private async admitted(
    req: IncomingMessage,
    res: ServerResponse,
    started: number,
    sessionId: string | undefined,
    go: (tenant: string | undefined) => Promise<void>,
  ): Promise<void> {
    if (!this.clients) return go(undefined);
    const a = await this.clients.admit(req, res);
    if (a instanceof YggError) return this.refuse(res, a, started);
    try {
      const refused = sessionId === undefined ? undefined : this.clients.session(a, sessionId);
      if (refused) return this.refuse(res, refused, started);
      await go(a.tenant);
    } finally {
      a.release();
    }
  }

  /**
   * What a run (Prefer: respond-async) must pass before its 202: shutdown, size and the client gate
   * (key, rate, in-flight and session limits). Refused: the error is answered and undefined returned.
   * Admitted: the ticket holds the client's in-flight budget until released (when the run ends).
   */
  async admitRun(req: IncomingMessage, res: ServerResponse): Promise<RunTicket | undefined> {
    const started = performance.now();
    const refused = this.admissionError(req);
    if (refused) {
      this.refuse(res, refused, started);
      return undefined;
    }
    if (!this.clients) return { tenant: undefined, release: () => {} };
    const a = await this.clients.admit(req, res);
    if (a instanceof YggError) {
      this.refuse(res, a, started);
      return undefined;
    }
    const session = sessionIdOf(req);
    const over = session === undefined ? undefined : this.clients.session(a, session);
    if (over) {
      a.release();
      this.refuse(res, over, started);
      return undefined;
    }
    return { tenant: a.tenant, release: () => a.release() };
  }

  /**
   * Proxies a run's request, admitted by admitRun: its body was read before the 202, its answer goes
   * to the run log's sink, and it is bounded by the run's timeout.
   */
  async proxyRun(
    req: IncomingMessage,
    sink: Writable,
    target: string,
    body: Buffer | null,
    timeoutMs: number,
    ticket: RunTicket,
  ): Promise<void> {
    const { sessionId } = this.sessionOf(req);
    await this.run({
      req,
      res: sink as unknown as ServerResponse,
      target,
      started: performance.now(),
      expectsContinue: false,
      preread: body,
      timeoutMs,
      sessionId,
      issueSession: false,
      tenant: ticket.tenant,
    });
  }

  /** The admission checks, then the exchange for the client the gate lets in (never a new session). */
  private async admitThenRun(
    req: IncomingMessage,
    res: ServerResponse,
    started: number,
    ex: Omit<Exchange, 'req' | 'res' | 'started' | 'sessionId' | 'tenant' | 'issueSession'>,
  ): Promise<void> {
    const refused = this.admissionError(req);
    if (refused) return this.refuse(res, refused, started);
    const { sessionId } = ex.named ? { sessionId: sessionIdOf(req) } : this.sessionOf(req);
    await this.admitted(req, res, started, sessionId, (tenant) =>
      this.run({ ...ex, req, res, started, sessionId, issueSession: false, tenant }),
    );
  }

  /** Proxies a request to one named instance (GET /agent/{id}/health and friends). */
  async proxyTo(
    id: string,
    req: IncomingMessage,
    res: ServerResponse,
    target: string,
    expectsContinue = false,
  ): Promise<void> {
    const started = performance.now();
    const dedicated = this.opts.dedicated;
    if (dedicated) {
      // Only the session that owns an instance may reach it, and then through its session (a paused
      // instance is resumed); to anyone else it is no instance at all.
      const session = sessionIdOf(req);
      if (session === undefined || dedicated.ownerOf(id) !== session) {
        return this.refuse(
          res,
          new YggError('YGG_ERR_UNKNOWN_INSTANCE', `no instance ${id} in the pool`),
          started,
        );
      }
      return this.admitThenRun(req, res, started, { target, expectsContinue });
    }
    const member = this.opts.pool.lookup(id);
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
    await this.admitThenRun(req, res, started, { target, expectsContinue, named: up });
  }

  /** Carries an Upgrade (WebSocket) to the session's instance; the connection holds a slot while open. */
  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, target: string): Promise<void> {
    socket.on('error', () => socket.destroy());
    if (this.closing) return refuseSocket(socket, SHUTTING_DOWN());
    const extra: Record<string, string> = {};
    const { sessionId } = this.sessionOf(req);
    // The client gate applies to WebSockets too; the connection holds its in-flight budget while open.
    const admission = this.clients ? await this.clients.admit(req) : undefined;
    if (admission instanceof YggError) return refuseSocket(socket, admission);
    try {
      const refused =
        admission && sessionId !== undefined ? this.clients?.session(admission, sessionId) : undefined;
      if (refused) return refuseSocket(socket, refused);
      await this.carryUpgrade(req, socket, head, target, sessionId, admission?.tenant, extra);
    } finally {
      admission?.release();
    }
  }

  private async carryUpgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    target: string,
    requested: string | undefined,
    tenant: string | undefined,
    extra: Record<string, string>,
  ): Promise<void> {
    let sessionId = requested;
    let placed: Placement;
    try {
      placed = await this.place(socket, sessionId, undefined, tenant);
    } catch (err) {
      if (err !== CLIENT_GONE) refuseSocket(socket, err as YggError);
      return;
    }
    const { lease } = placed;
    if (this.opts.sessionAffinity && sessionId === undefined && !this.opts.dedicated) {
      sessionId = this.issueSession(lease.up);
      extra['set-cookie'] = sessionCookie(sessionId);
    }
    if (placed.moved) extra[SESSION_MOVED_HEADER] = '1';
    let verdict: 'success' | 'failure' | 'neutral' = 'neutral';
    try {
      const headers = upstreamHeaders(req, { trustedProxies: this.trusted, sessionId, tenant });
      const outcome = await proxyUpgrade(lease, req, socket, head, target, headers, extra);
      if (outcome.kind === 'failed') {
        verdict = 'failure';
        refuseSocket(
          socket,
          new YggError(
            'YGG_ERR_UPSTREAM',
            `instance ${lease.up.id} failed the upgrade: ${outcome.error.message}`,
          ),
        );
      } else {
        verdict = verdictOf(
          { kind: 'response', status: outcome.kind === 'upgraded' ? 101 : outcome.status },
          this.opts.breakerCount5xx ?? false,
        );
      }
    } finally {
      lease.release(verdict);
      placed.hold?.release();
    }
  }

  close(): Promise<void> {
    this.closing = true;
    clearInterval(this.sessionSweep);
    this.slots.close(SHUTTING_DOWN());
    this.bodyDeadlines.close();
    return this.upstreams.close();
  }

  private admissionError(req: IncomingMessage): YggError | undefined {
    if (this.closing) return SHUTTING_DOWN();
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

  /** Reads the body if small, then places, forwards and retries where safe; exactly one answer. */
  private async run(ex: Exchange): Promise<void> {
    const { req, res } = ex;
    const method = req.method ?? 'GET';
    const bodyless = method === 'GET' || method === 'HEAD';
    // A named instance's request and a run's are the instance's to answer, never the cache's.
    const shape = this.shaping?.request(req, ex.target, ex.named === undefined && ex.preread === undefined);
    if (shape?.answerFromCache(res)) return this.record('cache', res.statusCode, ex.started);
    // Only a client that sent Expect: 100-continue needs telling (no closure on the common path).
    let continued = false;
    const goOn = ex.expectsContinue
      ? () => {
          if (!continued && !res.headersSent) {
            continued = true;
            res.writeContinue();
          }
        }
      : undefined;
    // A small body with a declared length is read first (before a slot is taken): one write upstream,
    // safe to send again on a retry, and a slow client holds no slot. Larger or chunked bodies stream.
    let buffered: Buffer | null = ex.preread ?? null;
    const declared = req.headers['content-length'];
    if (
      ex.preread === undefined &&
      !bodyless &&
      declared !== undefined &&
      Number(declared) <= SMALL_BODY_BYTES
    ) {
      goOn?.();
      try {
        buffered = await readBody(req, SMALL_BODY_BYTES, this.bodyDeadline);
      } catch (err) {
        if (err instanceof YggError) return this.refuse(res, err, ex.started, 'none', true);
        return this.record('none', 499, ex.started);
      }
    }
    const headers = upstreamHeaders(req, {
      trustedProxies: this.trusted,
      sessionId: ex.sessionId,
      tenant: ex.tenant,
    });
    // A run is answered by the router: the agent answers it as a plain request.
    if (ex.preread !== undefined) delete headers.prefer;
    let exclude: Upstream | undefined;
    let movedOnce = false;
    for (let attempt = 1; ; attempt++) {
      let placed: Placement;
      try {
        placed = ex.named
          ? { lease: this.slots.take(ex.named), moved: false }
          : (this.placeNow(ex.sessionId, exclude) ??
            (await this.place(res, ex.sessionId, exclude, ex.tenant)));
      } catch (err) {
        if (err === CLIENT_GONE) return this.record('none', 499, ex.started);
        return this.refuse(res, err as YggError, ex.started);
      }
      const { lease } = placed;
      const up = lease.up;
      if (placed.moved) movedOnce = true;
      let setCookie: string | undefined;
      if (ex.issueSession) {
        const id = this.issueSession(up);
        setCookie = sessionCookie(id);
        headers[SESSION_HEADER] = id;
      }
      // A fresh lazy wrapper per attempt: an attempt that never connected leaves the body unread.
      const body =
        bodyless || buffered || ex.preread !== undefined
          ? null
          : lazyBody(req, {
              maxBytes: this.opts.maxBodyBytes,
              timeoutMs: this.clientBodyTimeoutMs,
              deadlines: this.bodyDeadlines,
              onStart: goOn,
            });
      let outcome: ForwardOutcome = NO_OUTCOME;
      try {
        outcome = await forward(lease, {
          req,
          res,
          path: ex.target,
          headers,
          body: buffered ?? body?.stream ?? null,
          bodyError: body?.failure,
          timeoutMs: ex.timeoutMs ?? this.opts.requestTimeoutMs,
          responseHeaders: movedOnce ? MOVED : undefined,
          setCookie,
          started: ex.started,
          onHeaders: this.onHeaders,
          shape,
        });
      } finally {
        lease.release(verdictOf(outcome, this.opts.breakerCount5xx ?? false));
        placed.hold?.release();
      }
      switch (outcome.kind) {
        case 'response':
          return this.record(up.id, outcome.status, ex.started);
        case 'aborted':
          return this.record(up.id, 499, ex.started);
        case 'unreached':
        case 'failed': {
          const retry = mayRetry(outcome, {
            bodyStarted: body?.started() ?? false,
            attempt,
            maxRetries: this.opts.maxRetries,
            // A named instance, or a dedicated session's own: there is nowhere else to send it.
            named: ex.named !== undefined || placed.hold !== undefined,
          });
          if (retry) {
            this.metrics.retries.inc({ reason: 'unreached' });
            this.opts.logger.debug(
              { instance: up.id, attempt, err: outcome.error.message },
              'retrying on another instance',
            );
            await sleep(fullJitter(attempt, this.random(), 25, 250));
            if (res.destroyed) return this.record(up.id, 499, ex.started);
            exclude = up;
            continue;
          }
          const err = errorFor(outcome, up.id, this.opts.requestTimeoutMs);
          if (outcome.kind === 'unreached' || outcome.by === 'instance') {
            this.opts.logger.warn({ instance: up.id, err: outcome.error.message }, err.message);
          }
          // A body the client had not finished sending is not read on: close the connection after.
          const cut = outcome.kind === 'failed' && outcome.by === 'client';
          return this.refuse(res, err, ex.started, up.id, cut);
        }
      }
    }
  }

  /** place()'s answer when it needs no wait: a request of no session and a free slot (no promise). */
  private placeNow(sessionId: string | undefined, exclude: Upstream | undefined): Placement | undefined {
    if (sessionId !== undefined || this.opts.dedicated) return undefined;
    const picked = this.slots.tryPick(exclude);
    return picked ? { lease: picked, moved: false } : undefined;
  }

  /**
   * A slot for a request: on its session's instance when that instance lives (waiting in its queue
   * when full), else on the least loaded instance, else in the FIFO queue until one frees up.
   */
  private async place(
    gone: EventEmitter,
    sessionId: string | undefined,
    exclude: Upstream | undefined,
    tenant?: string | undefined,
  ): Promise<Placement> {
    if (this.opts.dedicated) {
      // An instance is made for every new session: never for an anonymous request (a probe, a curl,
      // a bot), which would hold one for SESSION_IDLE_DELETE_MS.
      if (sessionId === undefined) {
        throw new YggError(
          'YGG_ERR_SESSION_REQUIRED',
          'SESSION_MODE=dedicated: name the session with X-Session-Id or the ygg_session cookie',
        );
      }
      return this.placeDedicated(gone, sessionId, tenant);
    }
    const now = this.now();
    let pinned: Upstream | undefined;
    let moved = exclude !== undefined;
    let known = false;
    let stored: { instanceId: string; incarnation: string } | undefined;
    if (sessionId !== undefined) {
      const found = this.sessions.get(sessionId, now);
      stored = (found instanceof Promise ? await found : found) ?? undefined;
      let b = stored ?? this.issuedBinding(sessionId);
      if (b && !this.servable(b, exclude, now) && stored && this.sessions.fresh) {
        // Another router may have moved it already: follow the shared table, not the near cache.
        const latest = await this.sessions.fresh(sessionId, now);
        if (latest && (latest.instanceId !== b.instanceId || latest.incarnation !== b.incarnation)) {
          stored = latest;
          b = latest;
        }
      }
      if (b) {
        known = true;
        const up = this.servable(b, exclude, now);
        if (up) pinned = up;
        else moved = true;
      }
    }
    if (pinned) {
      const direct = this.slots.tryTake(pinned);
      if (direct) {
        this.bindSession(sessionId, pinned, 'hit', stored !== undefined);
        return { lease: direct, moved };
      }
      const lease = await this.slots.wait(gone, pinned.id);
      this.bindSession(sessionId, lease.up, lease.up === pinned ? 'hit' : 'moved', stored !== undefined);
      return { lease, moved: lease.up !== pinned };
    }
    const picked = this.slots.tryPick(exclude);
    if (picked) {
      this.bindSession(sessionId, picked.up, known ? 'moved' : 'new');
      return { lease: picked, moved: moved && known };
    }
    const ejectedForMs = this.slots.allEjected();
    if (ejectedForMs !== undefined) {
      throw new YggError(
        'YGG_ERR_CIRCUIT_OPEN',
        'every instance has its circuit breaker open after repeated failures',
        {
          retryAfterSeconds: Math.max(1, Math.ceil(ejectedForMs / 1000)),
        },
      );
    }
    const lease = await this.slots.wait(gone, null);
    this.bindSession(sessionId, lease.up, known ? 'moved' : 'new');
    return { lease, moved: moved && known };
  }

  /** A slot on the session's own instance (claimed, started or resumed for it), and nowhere else. */
  private async placeDedicated(
    gone: EventEmitter,
    sessionId: string,
    tenant: string | undefined,
  ): Promise<Placement> {
    const hold = await this.opts.dedicated!.acquire(sessionId, tenant);
    try {
      const up = this.upstreams.get(hold.instance);
      if (!up || up.draining) {
        throw new YggError(
          'YGG_ERR_INSTANCE_NOT_READY',
          `the instance of this session (${hold.instance}) is not ready`,
          {
            retryAfterSeconds: 1,
          },
        );
      }
      const lease = this.slots.tryTake(up) ?? (await this.slots.wait(gone, up.id));
      if (lease.up !== up) {
        // Its instance went while the request waited: it may not go to another session's.
        lease.release('neutral');
        throw new YggError(
          'YGG_ERR_INSTANCE_NOT_READY',
          `the instance of this session (${hold.instance}) went away`,
          {
            retryAfterSeconds: 1,
          },
        );
      }
      return { lease, moved: false, hold };
    } catch (err) {
      hold.release();
      throw err;
    }
  }

  /** The upstream of a binding when it can take the session's request now. */
  private servable(
    b: { instanceId: string; incarnation: string },
    exclude: Upstream | undefined,
    now: number,
  ): Upstream | undefined {
    const up = this.upstreams.get(b.instanceId);
    return up &&
      up !== exclude &&
      up.incarnation === b.incarnation &&
      !up.draining &&
      up.breaker.available(now)
      ? up
      : undefined;
  }

  /**
   * Records where a session went. A session already in the table is touched; one named only by the
   * id the router issued it (its first return) or moved elsewhere is written to the table. A remote
   * store's failure is logged, never left as an unhandled rejection.
   */
  private bindSession(
    sessionId: string | undefined,
    up: Upstream,
    kind: 'hit' | 'new' | 'moved',
    stored = false,
  ): void {
    if (sessionId === undefined) return;
    const now = this.now();
    const write =
      kind === 'hit' && stored
        ? this.sessions.touch(sessionId, now)
        : this.sessions.set(sessionId, { instanceId: up.id, incarnation: up.incarnation }, now);
    if (write instanceof Promise) {
      write.catch((err: unknown) => this.opts.logger.warn({ err }, 'session store write failed'));
    }
    this.affinityCount(kind).inc();
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

  /** A session id for a request that had none, naming the instance that serves it. */
  private issueSession(up: Upstream): string {
    this.affinityCount('new').inc();
    return issueSessionId(up);
  }

  private refuse(
    res: ServerResponse,
    err: YggError,
    started: number,
    instance = 'none',
    close = false,
  ): void {
    const headers: Record<string, string> = instance === 'none' ? {} : { [INSTANCE_HEADER]: instance };
    if (close) headers.connection = 'close';
    if (err.status === 401) headers['www-authenticate'] = 'Bearer realm="yggdrasil"';
    sendError(res, err, headers);
    this.recorder(instance, err.status).ttfb.observe((performance.now() - started) / 1000);
    this.record(instance, err.status, started);
  }

  /** The instance's answer started: time to first byte (one function, made once, for every request). */
  private readonly onHeaders = (instance: string, status: number, started: number): void => {
    this.recorder(instance, status).ttfb.observe((performance.now() - started) / 1000);
  };

  /** The affinity counter's series for `kind`, made on first use (cached like the recorders). */
  private affinityCount(kind: 'hit' | 'new' | 'moved'): { inc(): void } {
    let c = this.affinitySeries.get(kind);
    if (!c) {
      c = this.metrics.affinity.labels({ result: kind });
      this.affinitySeries.set(kind, c);
    }
    return c;
  }

  /** Labelled children are cached: prom-client hashes the label set on every unlabelled call. */
  private recorder(instance: string, status: number) {
    const key = `${instance} ${status}`;
    let r = this.recorders.get(key);
    if (!r) {
      r = {
        count: this.metrics.requests.labels({ instance, code: String(status) }),
        time: this.metrics.duration.labels({ instance }),
        ttfb: this.metrics.ttfb.labels({ instance }),
      };
      this.recorders.set(key, r);
    }
    return r;
  }

  private record(instance: string, status: number, started: number): void {
    const r = this.recorder(instance, status);
    r.count.inc();
    r.time.observe((performance.now() - started) / 1000);
  }
}
