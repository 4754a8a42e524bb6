// The live status feed: a Socket.IO server on the LB and controller ports that pushes the controller's
// events as they happen and a stats snapshot every second (requests/s, p95, queue, pool), with five
// minutes of history for a client that connects late. The protocol is in protocol.ts and docs/live-feed.md.
import type { Server as HttpServer, IncomingMessage } from 'node:http';
import { Server as IoServer } from 'socket.io';
import type { EventLog } from '../core/events.js';
import type { Logger } from '../core/logger.js';
import { isSameHost } from './origin.js';
import {
  LIVE_EVENTS,
  LIVE_FEED_PATH,
  LIVE_FEED_VERSION,
  type LiveHello,
  type LiveInstance,
  type LivePoint,
  type LiveStats,
} from './protocol.js';
import { type RequestTotals, Ring, RollingTotals, type WindowStats } from './stats.js';

/** What the feed reads from the platform's status (a subset of GET /status). */
export interface FeedStatus {
  driver: string;
  desiredInstances: number;
  minInstances: number;
  maxInstances: number;
  readyInstances: number;
  instances: ReadonlyArray<
    Omit<LiveInstance, 'breaker' | 'lastFailure'> & {
      breaker: string | null;
      lastFailure: { at: string; reason: string; output?: string[] } | null;
    }
  >;
  queue: { depth: number };
  autoscaler: { lastDecision: { panic: boolean } | null };
}

/**
 * What a connecting client may see: `full` (instances, failures, events), `public` (the pool without
 * its failures' output, and no events: the load-balancer port's anonymous view), or nothing.
 */
export type FeedAccess = 'full' | 'public' | 'denied';

/** Decides a client's access from the key it sent (Socket.IO `auth: {token}` or a Bearer header). */
export type FeedAccessCheck = (key: string | undefined) => Promise<FeedAccess>;

const FULL = 'full';
const PUBLIC = 'public';

export interface LiveFeedOptions {
  status: () => FeedStatus;
  events: EventLog;
  /** The router's cumulative request totals now (see routerTotals). */
  totals: () => Promise<Omit<RequestTotals, 'at'>>;
  logger: Logger;
  /**
   * Time between two `stats` messages.
   * @default 1000
   */
  intervalMs?: number;
  /**
   * Window of requests/s, error ratio and p95.
   * @default 5000
   */
  windowMs?: number;
  /**
   * Points of history kept for the charts.
   * @default 300 (five minutes at one a second)
   */
  historySize?: number;
  /** ALLOWED_HOSTS: a connection whose Host is another name is refused (no DNS rebinding). */
  hosts?: { allows(host: string | undefined): boolean };
  /**
   * Open connections one address may hold; more are refused (a flood of handshakes stays bounded).
   * @default 64
   */
  maxPerAddress?: number;
}

const EMPTY_WINDOW: WindowStats = { requestsPerSecond: 0, errorRatio: null, p95LatencyMs: null };

export class LiveFeed {
  private readonly servers: IoServer[] = [];
  private readonly rolling: RollingTotals;
  private readonly history: Ring<LivePoint>;
  private readonly intervalMs: number;
  private window: WindowStats = EMPTY_WINDOW;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private sampling = false;
  private warned = false;
  private closed = false;

  constructor(private readonly opts: LiveFeedOptions) {
    this.intervalMs = opts.intervalMs ?? 1000;
    this.rolling = new RollingTotals(opts.windowMs ?? 5000);
    this.history = new Ring(opts.historySize ?? 300);
  }

  /**
   * Serves the feed (and the Socket.IO client script) on this HTTP server under LIVE_FEED_PATH;
   * `access` decides what each client sees (everything when omitted).
   */
  attach(server: HttpServer, access?: FeedAccessCheck): void {
    const perAddress = new Map<string, number>();
    const maxPerAddress = this.opts.maxPerAddress ?? 64;
    const io = new IoServer(server, {
      path: LIVE_FEED_PATH,
      serveClient: true,
      // Clients send nothing but their handshake: no large message is accepted from them.
      maxHttpBufferSize: 16 * 1024,
      // The LB port carries agents' WebSockets too: engine.io must not cut upgrades it does not own
      // (a queued WebSocket waits for a slot longer than engine.io's 1 s default).
      destroyUpgrade: false,
      allowRequest: (req: IncomingMessage, cb: (err: string | null | undefined, ok: boolean) => void) => {
        // Once stopping, refuse new connections so the ports can close.
        if (this.closed) return cb('the platform is stopping', false);
        if (this.opts.hosts && !this.opts.hosts.allows(req.headers.host)) {
          return cb('YGG_ERR_HOST_NOT_ALLOWED: Host is not in ALLOWED_HOSTS', false);
        }
        if (!isSameHost(req.headers.origin, req.headers.host))
          return cb('cross-site connection refused', false);
        const from = req.socket.remoteAddress ?? '';
        if ((perAddress.get(from) ?? 0) >= maxPerAddress) {
          return cb(`too many live-feed connections from this address (at most ${maxPerAddress})`, false);
        }
        cb(null, true);
      },
    });
    io.engine.on('connection', (raw: { request: IncomingMessage; once(e: 'close', f: () => void): void }) => {
      const from = raw.request.socket.remoteAddress ?? '';
      perAddress.set(from, (perAddress.get(from) ?? 0) + 1);
      raw.once('close', () => {
        const left = (perAddress.get(from) ?? 1) - 1;
        if (left <= 0) perAddress.delete(from);
        else perAddress.set(from, left);
      });
    });
    io.use((socket, next) => {
      const auth = socket.handshake.auth as { token?: unknown } | undefined;
      const header = /^Bearer\s+(\S+)$/i.exec(socket.handshake.headers.authorization ?? '')?.[1];
      const key = typeof auth?.token === 'string' && auth.token !== '' ? auth.token : header;
      (access ? access(key) : Promise.resolve<FeedAccess>('full')).then(
        (a) => {
          if (a === 'denied') {
            next(new Error('YGG_ERR_UNAUTHORIZED: the live feed needs a read key (Socket.IO auth: {token})'));
            return;
          }
          socket.data.access = a;
          next();
        },
        () => next(new Error('YGG_ERR_INTERNAL: the key could not be checked')),
      );
    });
    io.on('connection', (socket) => {
      const access = socket.data.access as Exclude<FeedAccess, 'denied'>;
      void socket.join(access === 'full' ? FULL : PUBLIC);
      socket.emit(LIVE_EVENTS.hello, access === 'full' ? this.hello() : redactHello(this.hello()));
    });
    this.servers.push(io);
  }

  start(): void {
    this.unsubscribe = this.opts.events.subscribe((e) => {
      for (const io of this.servers) io.to(FULL).emit(LIVE_EVENTS.event, e);
    });
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
    void this.tick();
  }

  /** Disconnects every client and stops the clock; the HTTP servers are closed by their owner. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe?.();
    for (const io of this.servers) {
      io.disconnectSockets(true);
      io.engine.close();
    }
  }

  hello(): LiveHello {
    const s = this.opts.status();
    return {
      version: LIVE_FEED_VERSION,
      driver: s.driver,
      intervalMs: this.intervalMs,
      windowMs: this.rolling.windowMs,
      stats: this.snapshot(Date.now(), s),
      history: this.history.toArray(),
      events: this.opts.events.recent(50),
    };
  }

  private snapshot(at: number, s: FeedStatus): LiveStats {
    return {
      at,
      ...this.window,
      queueDepth: s.queue.depth,
      readyInstances: s.readyInstances,
      desiredInstances: s.desiredInstances,
      minInstances: s.minInstances,
      maxInstances: s.maxInstances,
      panic: s.autoscaler.lastDecision?.panic ?? false,
      instances: s.instances.map((i) => ({
        id: i.id,
        state: i.state,
        inflight: i.inflight,
        sessions: i.sessions,
        cpu: i.cpu,
        memoryBytes: i.memoryBytes,
        breaker: i.breaker,
        restarts: i.restarts,
        crashLoop: i.crashLoop,
        readyAt: i.readyAt,
        lastFailure: i.lastFailure
          ? { at: i.lastFailure.at, reason: i.lastFailure.reason, output: i.lastFailure.output ?? [] }
          : null,
      })),
    };
  }

  private async tick(): Promise<void> {
    if (this.sampling || this.closed) return;
    this.sampling = true;
    try {
      const at = Date.now();
      this.window = this.rolling.push({ at, ...(await this.opts.totals()) });
      const stats = this.snapshot(at, this.opts.status());
      const { instances: _i, minInstances: _min, maxInstances: _max, panic: _p, ...point } = stats;
      this.history.push(point);
      // Volatile: a slow client skips a snapshot rather than queueing them.
      const redacted = redactStats(stats);
      for (const io of this.servers) {
        io.to(FULL).volatile.emit(LIVE_EVENTS.stats, stats);
        io.to(PUBLIC).volatile.emit(LIVE_EVENTS.stats, redacted);
      }
    } catch (err) {
      if (!this.warned) this.opts.logger.warn({ err }, 'live feed: cannot sample the router');
      this.warned = true;
    } finally {
      this.sampling = false;
    }
  }
}

/** The anonymous view of a snapshot: no instance's stderr output. */
function redactStats(s: LiveStats): LiveStats {
  return {
    ...s,
    instances: s.instances.map((i) =>
      i.lastFailure ? { ...i, lastFailure: { ...i.lastFailure, output: [] } } : i,
    ),
  };
}

/** The anonymous view of a greeting: redacted stats, no events, and no chart history (kept small). */
function redactHello(h: LiveHello): LiveHello {
  return { ...h, stats: redactStats(h.stats), history: [], events: [] };
}

/** A metric read as prom-client's `get()` answers (the router's counter and histogram). */
interface SampleSource {
  get(): Promise<{
    values: Array<{
      labels: Record<string, string | number | undefined>;
      value: number;
      metricName?: string;
    }>;
  }>;
}

/** A request for the live feed (Socket.IO), which the router must not proxy to an agent. */
export function isLiveFeedRequest(req: IncomingMessage): boolean {
  return (req.url ?? '').startsWith(`${LIVE_FEED_PATH}/`);
}

/**
 * Reads the router's request counter and time-to-first-byte histogram (the latency SLO: a stream's
 * length is not latency) into cumulative totals.
 */
export function routerTotals(metrics: {
  requests: SampleSource;
  ttfb: SampleSource;
}): () => Promise<Omit<RequestTotals, 'at'>> {
  return async () => {
    const [requests, duration] = await Promise.all([metrics.requests.get(), metrics.ttfb.get()]);
    let total = 0;
    let errors = 0;
    for (const v of requests.values) {
      total += v.value;
      if (String(v.labels.code ?? '').startsWith('5')) errors += v.value;
    }
    // Summed by `le`, so a histogram that later gains labels (e.g. instance) still reads as one.
    const byLe = new Map<number, number>();
    for (const v of duration.values) {
      if (!v.metricName?.endsWith('_bucket')) continue;
      const le = v.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(v.labels.le);
      byLe.set(le, (byLe.get(le) ?? 0) + v.value);
    }
    const buckets = [...byLe].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
    return { requests: total, errors, buckets };
  };
}
