// Runs that outlive the connection, on the load balancer port (issue 13). A request with
// `Prefer: respond-async` (RFC 7240) has its body read, is answered 202 with `Location: /runs/{id}`,
// and is then proxied as usual with its answer recorded in the run log (run-log.ts) instead of sent:
// the client may go, the run goes on (bounded by RUN_TIMEOUT_MS, not REQUEST_TIMEOUT_MS).
//   GET /runs/{id}          state, and the answer once there is one
//   GET /runs/{id}/stream   an event-stream answer as SSE: replayed after Last-Event-ID, then followed
//   DELETE /runs/{id}       cancels: the upstream request is aborted
// Run ids are random (122 bits): knowing one is what lets a client read or cancel its run. With a
// shared run log (Redis, the router role) every run is mirrored there, so any router serves it: read,
// streamed (followed through pub/sub), cancelled (the router that runs it is told).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { every } from '../core/background.js';
import { YggError } from '../core/errors.js';
import { readBody, sendError, sendJson } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import { RecordingResponse } from './recording-response.js';
import {
  isFinished,
  type RunChange,
  type RunEvent,
  RunLog,
  type RunRecord,
  type RunState,
} from './run-log.js';
import { formatEvent } from './sse-split.js';

export interface RunServiceOptions {
  /** RUN_TIMEOUT_MS. */
  runTimeoutMs: number;
  /** RUN_RETENTION_MS. */
  retentionMs: number;
  /** RUN_LOG_MAX_BYTES. */
  maxBytes: number;
  /** QUEUE_TIMEOUT_MS: how long a plain request of a session waits for its runs (enqueue). */
  queueTimeoutMs: number;
  /** MAX_BODY_BYTES: the request body is read whole before the 202. */
  maxBodyBytes: number;
  /** SESSION_MULTITASK: a request of a session while one of its runs is active. @default enqueue */
  multitask?: 'enqueue' | 'reject' | 'interrupt';
  logger: Logger;
  now?: () => number;
  /** Where other routers see this one's runs and this one theirs (Redis); none = this process only. */
  shared?: SharedRuns;
}

/** A run as any router shows it: from the local record, or from the shared log's copy. */
export type RunSummary = Pick<
  RunRecord,
  | 'id'
  | 'state'
  | 'createdAt'
  | 'startedAt'
  | 'finishedAt'
  | 'method'
  | 'path'
  | 'session'
  | 'status'
  | 'headers'
  | 'sse'
  | 'error'
> & {
  /** Events recorded so far (an event-stream answer). */
  events: number;
  /** The body so far (other answers), when asked for. */
  body: Buffer | null;
};

/** The runs of every router (declared here, implemented by src/shared/redis-run-log.ts). */
export interface SharedRuns {
  /** Mirrors a change of a run of this router (in order; never waits). */
  observe(change: RunChange): void;
  get(id: string, withBody: boolean): Promise<RunSummary | undefined>;
  /** Events after `after`, a page at a time; `end` once the run finished and every event was given. */
  eventsAfter(id: string, after: number): Promise<{ events: RunEvent[]; end?: RunState; more: boolean }>;
  /** Calls `onChange` whenever the run's record changes; returns the unsubscribe. */
  follow(id: string, onChange: () => void): () => void;
  /** Asks whichever router runs it to cancel it. */
  cancel(id: string): Promise<void>;
  /** Resolves once the changes observed so far reached the shared log (or failed to). */
  flushed(): Promise<void>;
  /** Called with the runs some router was asked to cancel. */
  onCancel(listener: (id: string) => void): void;
}

/** One run, from this router's log or the shared one: what GET, DELETE and the stream read. */
interface RunSource {
  id: string;
  get(withBody: boolean): Promise<RunSummary | undefined>;
  /** Cancels it (when not finished) and gives what it is now. */
  cancel(): Promise<RunSummary | undefined>;
  /** Replays after Last-Event-ID, then follows (an event-stream answer, checked by the caller). */
  stream(req: IncomingMessage, res: ServerResponse): void;
}

/** How long DELETE on a router that does not run the run waits to see it cancelled. */
const REMOTE_CANCEL_WAIT_MS = 2000;

/** Proxies a run's request with its body read already, its answer going to `sink`. */
export type RunProxy = (sink: RecordingResponse, body: Buffer | null, timeoutMs: number) => Promise<void>;

const PREFIX = '/runs/';
/** Only /runs/<uuid> and /runs/<uuid>/stream are the platform's: an agent's own /runs routes pass. */
const RUN_PATH = /^\/runs\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(\/stream)?$/;

/** The request asks to be answered at once and run in the background. */
export function wantsAsync(req: IncomingMessage): boolean {
  const p = req.headers.prefer;
  if (p === undefined) return false;
  return /(^|[,;\s])respond-async($|[,;\s])/i.test(Array.isArray(p) ? p.join(',') : p);
}

export class RunService {
  readonly log: RunLog;
  private readonly now: () => number;
  private readonly sinks = new Map<string, RecordingResponse>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly opts: RunServiceOptions) {
    const shared = opts.shared;
    this.log = new RunLog({
      maxBytes: opts.maxBytes,
      retentionMs: opts.retentionMs,
      ...(shared ? { observer: (c: RunChange) => shared.observe(c) } : {}),
    });
    shared?.onCancel((id) => this.abort(id, 'cancelled', 'YGG_ERR_RUN_CANCELLED'));
    this.now = opts.now ?? Date.now;
    this.sweeper = every(
      Math.max(1000, Math.min(60_000, opts.retentionMs / 4)),
      'run log sweep',
      () => {
        this.log.sweep(this.now());
      },
      (loop, err) => opts.logger.error({ err, loop }, 'run log sweep failed'),
    );
  }

  /** Runs accepted and not yet finished (the LB looks at sessions only while there are some). */
  get busy(): boolean {
    return this.sinks.size > 0 || this.queued > 0;
  }

  private queued = 0;

  /**
   * SESSION_MULTITASK for a request of `session` (a run, or a plain request) while runs of the
   * session are active: an error to answer (reject), or nothing once it may go (interrupt: they are
   * cancelled; enqueue: a plain request waits until they are done, at most `wait.timeoutMs`
   * (QUEUE_TIMEOUT_MS) and only while its client is there (`left` not aborted); a run waits in `accept`).
   */
  async sessionTurn(session: string, left?: AbortSignal): Promise<YggError | undefined> {
    const active = this.log.activeOf(session);
    if (!active) return undefined;
    const policy = this.opts.multitask ?? 'enqueue';
    if (policy === 'reject') {
      return new YggError(
        'YGG_ERR_RUN_ACTIVE',
        `session ${session} has run ${active.id} in progress (SESSION_MULTITASK=reject): wait for it or DELETE /runs/${active.id}`,
        { retryAfterSeconds: 1, details: { run: active.id } },
      );
    }
    if (policy === 'interrupt') {
      for (const r of this.log.allActiveOf(session)) this.abort(r.id, 'cancelled', 'YGG_ERR_RUN_CANCELLED');
      return undefined;
    }
    if (!left) return undefined;
    const timeoutMs = this.opts.queueTimeoutMs;
    const deadline = this.now() + timeoutMs;
    for (let r = this.log.activeOf(session); r; r = this.log.activeOf(session)) {
      const ms = deadline - this.now();
      const outcome = ms > 0 ? await this.endedOrGiveUp(r.id, ms, left) : 'timeout';
      if (outcome === 'gone') return undefined; // nobody to answer: the caller sees its signal aborted
      if (outcome === 'timeout') {
        return new YggError(
          'YGG_ERR_RUN_ACTIVE',
          `session ${session} still has run ${r.id} in progress after QUEUE_TIMEOUT_MS=${timeoutMs} (SESSION_MULTITASK=enqueue): try again, or DELETE /runs/${r.id}`,
          { retryAfterSeconds: 1, details: { run: r.id } },
        );
      }
    }
    return undefined;
  }

  /** The run ended, or the wait ran out, or the client left first. */
  private async endedOrGiveUp(
    id: string,
    ms: number,
    signal: AbortSignal,
  ): Promise<'ended' | 'timeout' | 'gone'> {
    if (signal.aborted) return 'gone';
    const r = this.log.get(id);
    if (!r || isFinished(r.state)) return 'ended';
    return new Promise((resolve) => {
      const settle = (outcome: 'ended' | 'timeout' | 'gone') => {
        stop();
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const stop = this.log.subscribe(id, (u) => {
        if (u.kind === 'end') settle('ended');
      });
      const timer = setTimeout(() => settle('timeout'), ms);
      const onAbort = () => settle('gone');
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Resolves when the run is finished (at once when it is, or is gone). */
  private ended(id: string): Promise<void> {
    const r = this.log.get(id);
    if (!r || isFinished(r.state)) return Promise.resolve();
    return new Promise((resolve) => {
      const stop = this.log.subscribe(id, (u) => {
        if (u.kind === 'end') {
          stop();
          resolve();
        }
      });
    });
  }

  /** Starts a run: the body is read, the client answered 202, the request proxied in the background. */
  async accept(
    req: IncomingMessage,
    res: ServerResponse,
    proxy: RunProxy,
    meta: { session?: string | undefined; tenant?: string | undefined } = {},
  ): Promise<void> {
    const method = req.method ?? 'GET';
    let body: Buffer | null = null;
    if (method !== 'GET' && method !== 'HEAD') {
      try {
        body = await readBody(req, this.opts.maxBodyBytes);
      } catch (err) {
        if (err instanceof YggError) return sendError(res, err, { connection: 'close' });
        return; // the client went away before its body was in: there is nothing to run
      }
    }
    const session = meta.session;
    if (session) {
      const refused = await this.sessionTurn(session);
      if (refused) return sendError(res, refused);
    }
    const id = randomUUID();
    const run = this.log.create(id, { method, path: req.url ?? '/', ...meta }, this.now());
    // Once the client has its 202, every router knows the run.
    await this.opts.shared?.flushed();
    sendJson(
      res,
      202,
      { run: viewOf(summaryOf(run, false)) },
      { location: `${PREFIX}${id}`, 'preference-applied': 'respond-async' },
    );
    if (session) {
      // enqueue: after the session's earlier runs (it is `queued` meanwhile, and may be cancelled).
      this.queued++;
      try {
        for (let r = this.log.activeOf(session, id); r; r = this.log.activeOf(session, id))
          await this.ended(r.id);
      } finally {
        this.queued--;
      }
      if (isFinished(this.log.get(id)?.state ?? 'cancelled')) return;
    }
    const sink = new RecordingResponse(this.log, id, this.now);
    sink.on('error', () => {}); // a full log or a cancel: the run's state says which
    this.sinks.set(id, sink);
    const timer = setTimeout(() => this.abort(id, 'failed', 'YGG_ERR_RUN_TIMEOUT'), this.opts.runTimeoutMs);
    timer.unref?.();
    this.log.start(id, this.now());
    let threw = false;
    try {
      await proxy(sink, body, this.opts.runTimeoutMs);
    } catch (err) {
      threw = true;
      this.opts.logger.error({ err, run: id }, 'a run failed in the router');
    } finally {
      clearTimeout(timer);
      this.sinks.delete(id);
      // A cancel or a timeout finished it already (finish keeps the first end). An answer the router
      // never ended (the agent died in its middle: the sink destroyed after its head) is a failure.
      if (sink.full) this.log.finish(id, 'failed', this.now(), errorOf('YGG_ERR_RUN_LOG_FULL'));
      else if (threw) this.log.finish(id, 'failed', this.now(), errorOf('YGG_ERR_INTERNAL'));
      else if (!sink.writableEnded) this.log.finish(id, 'failed', this.now(), errorOf('YGG_ERR_UPSTREAM'));
      else this.log.finish(id, sink.statusCode < 500 ? 'done' : 'failed', this.now());
    }
  }

  /** GET/DELETE /runs/{id} and GET /runs/{id}/stream; false for any other path. */
  route(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    if (!path.startsWith(PREFIX)) return false;
    const m = RUN_PATH.exec(path);
    if (!m) return false;
    const id = m[1]!;
    const stream = m[2] !== undefined;
    const sent = req.headers['last-event-id'];
    const last = Array.isArray(sent) ? sent.join(', ') : sent;
    if (stream && last !== undefined && !/^\d{1,15}$/.test(last.trim())) {
      sendError(
        res,
        new YggError(
          'YGG_ERR_BAD_REQUEST',
          `Last-Event-ID must be the id of an event of this stream (digits); got ${JSON.stringify(last.slice(0, 40))}`,
        ),
      );
      return true;
    }
    const shared = this.opts.shared;
    const source = this.log.get(id) ? this.localRun(id) : shared ? this.sharedRun(shared, id) : undefined;
    if (!source) {
      sendError(res, new YggError('YGG_ERR_RUN_NOT_FOUND', `no run ${id}`));
      return true;
    }
    this.answer(req, res, path, stream, source).catch((err: unknown) => {
      this.opts.logger.warn({ err, run: id }, 'reading a run from the shared log failed');
      sendError(res, new YggError('YGG_ERR_INTERNAL', 'the shared run log could not be read'));
    });
    return true;
  }

  /** GET (HEAD), DELETE, or GET …/stream of one run, wherever it is kept. */
  private async answer(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    stream: boolean,
    source: RunSource,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    const allowed = stream ? method === 'GET' : method === 'GET' || method === 'HEAD' || method === 'DELETE';
    if (!allowed) return sendError(res, notAllowed(method, path));
    const run = method === 'DELETE' ? await source.cancel() : await source.get(!stream);
    if (!run) return sendError(res, new YggError('YGG_ERR_RUN_NOT_FOUND', `no run ${source.id}`));
    if (!stream) return sendJson(res, 200, { run: viewOf(run) });
    if (run.status !== null && !run.sse) return sendError(res, notAStream(run));
    source.stream(req, res);
  }

  /** A run this router holds. */
  private localRun(id: string): RunSource {
    const summary = (withBody: boolean) => {
      const r = this.log.get(id);
      return r ? summaryOf(r, withBody) : undefined;
    };
    return {
      id,
      get: async (withBody) => summary(withBody),
      cancel: async () => {
        this.abort(id, 'cancelled', 'YGG_ERR_RUN_CANCELLED');
        return summary(false);
      },
      stream: (req, res) => {
        const r = this.log.get(id);
        if (r) this.stream(req, res, r);
        else sendError(res, new YggError('YGG_ERR_RUN_NOT_FOUND', `no run ${id}`));
      },
    };
  }

  /** A run this router does not hold: from the shared log (another router runs or ran it). */
  private sharedRun(shared: SharedRuns, id: string): RunSource {
    return {
      id,
      get: (withBody) => shared.get(id, withBody),
      // Asked of the router that runs it; the answer shows the run once it says cancelled (2 s at most).
      cancel: async () => {
        let run = await shared.get(id, false);
        if (run && !isFinished(run.state)) {
          await shared.cancel(id);
          const deadline = this.now() + REMOTE_CANCEL_WAIT_MS;
          while (run && !isFinished(run.state) && this.now() < deadline) {
            await new Promise((r) => setTimeout(r, 25));
            run = (await shared.get(id, false)) ?? run;
          }
        }
        return run;
      },
      stream: (req, res) => this.streamShared(shared, req, res, id),
    };
  }

  /** Another router's event stream: replayed after Last-Event-ID, then followed through pub/sub. */
  private streamShared(shared: SharedRuns, req: IncomingMessage, res: ServerResponse, id: string): void {
    let sent = lastEventIdOf(req);
    res.writeHead(200, SSE_HEADERS);
    let done = false;
    let busy = false;
    let again = false;
    const close = () => {
      done = true;
      stop();
      clearInterval(safety);
      this.remoteStreams.delete(shut);
    };
    // The router stops: the client is let go (it may resume after its last id on another router).
    const shut = () => {
      close();
      res.end();
    };
    this.remoteStreams.add(shut);
    const pump = async (): Promise<void> => {
      if (done) return;
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        for (let more = true; more && !done; ) {
          again = false;
          const page = await shared.eventsAfter(id, sent);
          for (const e of page.events) {
            res.write(formatEvent(e.id, e.lines));
            sent = e.id;
          }
          // The end marker is `n-1` after the last event n: a client whose Last-Event-ID is past n (or
          // a run whose marker was lost) learns the end from the record instead.
          const end =
            page.end ??
            (page.events.length === 0 && !page.more ? await finishedState(shared, id) : undefined);
          if (end && !page.more) {
            close();
            res.end(runEnd(end));
            return;
          }
          more = page.more || again;
        }
      } catch (err) {
        this.opts.logger.warn({ err, run: id }, 'following a run in the shared log failed; retrying');
      } finally {
        busy = false;
      }
    };
    const stop = shared.follow(id, () => void pump());
    // Pub/sub can miss a message (a reconnect): look once a second anyway, and say something every
    // 15 s so proxies keep an idle stream open.
    let ticks = 0;
    const safety = setInterval(() => {
      if (++ticks % 15 === 0 && !done) res.write(': keep-alive\n\n');
      void pump();
    }, 1000);
    safety.unref();
    res.once('close', close);
    void pump();
  }

  /** Streams of other routers' runs being followed: each ends its response (close()). */
  private readonly remoteStreams = new Set<() => void>();

  /** Ends every active run and every stream followed from the shared log (the router stops). */
  close(): void {
    clearInterval(this.sweeper);
    for (const shut of [...this.remoteStreams]) shut();
    // Running ones (their upstream request aborted) and queued ones: none starts after the close.
    for (const r of this.log.allActive()) this.abort(r.id, 'cancelled', 'YGG_ERR_RUN_CANCELLED');
  }

  private abort(id: string, state: 'failed' | 'cancelled', code: keyof typeof CODES): void {
    const r = this.log.get(id);
    if (!r || isFinished(r.state)) return;
    this.log.finish(id, state, this.now(), errorOf(code));
    this.sinks.get(id)?.destroy(); // 'close': forward() aborts the upstream request
  }

  /** This router's event stream (answer() checked it is one): replayed, then followed. */
  private stream(req: IncomingMessage, res: ServerResponse, run: RunRecord): void {
    res.writeHead(200, SSE_HEADERS);
    const end = () => {
      res.end(runEnd(this.log.get(run.id)?.state ?? run.state));
    };
    // Replay and follow without a gap: subscribe first, replay, then pass on only what is newer.
    let sent = lastEventIdOf(req);
    const stop = isFinished(run.state)
      ? undefined
      : this.log.subscribe(run.id, (u) => {
          if (u.kind === 'event' && u.event.id > sent) {
            sent = u.event.id;
            res.write(formatEvent(u.event.id, u.event.lines));
          } else if (u.kind === 'end') {
            end();
          }
        });
    for (const e of this.log.eventsAfter(run.id, sent)) {
      res.write(formatEvent(e.id, e.lines));
      sent = e.id;
    }
    if (!stop) end();
    res.once('close', () => stop?.());
  }
}

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-store',
  'x-accel-buffering': 'no',
};

async function finishedState(shared: SharedRuns, id: string): Promise<RunState | undefined> {
  const r = await shared.get(id, false);
  return r && isFinished(r.state) ? r.state : undefined;
}

const runEnd = (state: RunState) => `event: run-end\ndata: ${JSON.stringify({ state })}\n\n`;

/** Last-Event-ID, checked by route() to be digits (0 when absent). */
function lastEventIdOf(req: IncomingMessage): number {
  return Number(req.headers['last-event-id'] ?? 0);
}

function notAStream(run: { id: string; headers: Record<string, string> | null }): YggError {
  return new YggError(
    'YGG_ERR_RUN_NOT_A_STREAM',
    `run ${run.id} answered ${run.headers?.['content-type'] ?? 'no content type'}`,
  );
}

function summaryOf(r: RunRecord, withBody: boolean): RunSummary {
  return {
    id: r.id,
    state: r.state,
    createdAt: r.createdAt,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    method: r.method,
    path: r.path,
    session: r.session,
    status: r.status,
    headers: r.headers,
    sse: r.sse,
    error: r.error,
    events: r.events.length,
    body: withBody ? Buffer.concat(r.body) : null,
  };
}

/** GET /runs/{id}'s JSON: the answer once there is one (its body when `body` was read). */
function viewOf(r: RunSummary): Record<string, unknown> {
  const answer =
    r.status !== null && (r.sse || r.body !== null)
      ? {
          status: r.status,
          headers: r.headers,
          ...(r.sse ? { events: r.events } : { body: r.body?.toString('utf8') ?? '' }),
        }
      : undefined;
  return {
    id: r.id,
    state: r.state,
    request: { method: r.method, path: r.path },
    createdAt: new Date(r.createdAt).toISOString(),
    startedAt: r.startedAt === null ? null : new Date(r.startedAt).toISOString(),
    finishedAt: r.finishedAt === null ? null : new Date(r.finishedAt).toISOString(),
    ...(r.session ? { session: r.session } : {}),
    ...(answer ? { answer } : {}),
    error: r.error,
    links: { self: `${PREFIX}${r.id}`, stream: `${PREFIX}${r.id}/stream` },
  };
}

const CODES = {
  YGG_ERR_RUN_TIMEOUT: 'the run took longer than RUN_TIMEOUT_MS; its request was aborted',
  YGG_ERR_RUN_CANCELLED: 'the run was cancelled (DELETE /runs/{id}); its request was aborted',
  YGG_ERR_RUN_LOG_FULL: 'the run log had no room for the answer (RUN_LOG_MAX_BYTES): the run was aborted',
  YGG_ERR_UPSTREAM: 'the instance failed before sending a complete answer: the run has only its start',
  YGG_ERR_INTERNAL: 'unexpected error in the router while it ran the request',
} as const;

function errorOf(code: keyof typeof CODES): { code: string; message: string } {
  return { code, message: CODES[code] };
}

function notAllowed(method: string, path: string): YggError {
  return new YggError('YGG_ERR_METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`);
}
