// The load balancer port (LB_PORT): the platform's own routes (/health, /status, /metrics), requests
// addressed to one instance (/agent/{id}/…), and everything else proxied to the pool. It is also the
// edge: a request the edge refuses (edge.ts), a parser error, CONNECT, all get a JSON 400 here and go
// no further; `Expect: 100-continue` is answered by the router when it is ready for the body; and a
// pipelined request waits until the answers before it are done, so it holds no slot while it cannot
// be answered (and a client that closes the connection leaves nothing behind).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { type AllowedHosts, hostRefused } from '../core/allowed-hosts.js';
import { YggError } from '../core/errors.js';
import { sendError, sendJson } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import { sessionIdOf } from '../core/session.js';
import { type RunService, wantsAsync } from '../runs/run-service.js';
import { checkRequest } from './edge.js';
import type { Router } from './router.js';
import { refuseSocket } from './upgrade.js';

export interface LbServerOptions {
  router: Router;
  logger: Logger;
  /** JSON for GET /status: the full status for a reader's key, a public summary for anyone else. */
  status: (req: IncomingMessage) => Promise<unknown>;
  /** Body and status for GET /health. */
  health: () => { ok: boolean; body: unknown };
  /** Answers GET /status with the live status page when the client asks for HTML; false = JSON. */
  statusPage?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Upgrades another listener on this server answers (the live feed's Socket.IO path). */
  skipUpgrade?: (req: IncomingMessage) => boolean;
  /** ALLOWED_HOSTS: the platform's own routes but /health answer only to these (proxied traffic is the agents'). */
  hosts?: AllowedHosts;
  /** Runs that outlive the connection (Prefer: respond-async, /runs/{id}). */
  runs?: RunService;
}

const AGENT_PREFIX = '/agent/';
const ALLOW = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';

export function createLbServer(opts: LbServerOptions): Server {
  const { router } = opts;
  const isLocal = (path: string) => path === '/health' || path === '/status' || path === '/metrics';
  /** The platform's own routes (isLocal paths). */
  const local = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, new YggError('YGG_ERR_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`));
      return;
    }
    if (path !== '/health' && opts.hosts && !opts.hosts.allows(req.headers.host)) {
      sendError(res, hostRefused(req.headers.host));
      return;
    }
    if (path === '/health') {
      const h = opts.health();
      sendJson(res, h.ok ? 200 : 503, h.body);
    } else if (path === '/status') {
      if (!opts.statusPage?.(req, res)) sendJson(res, 200, await opts.status(req));
    } else {
      const text = await router.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': router.metrics.registry.contentType });
      res.end(text);
    }
  };

  const handle = (req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void => {
    const edge = checkRequest(req);
    if (edge.kind === 'refuse') {
      sendError(res, edge.error, { connection: 'close' });
      return;
    }
    if (edge.kind === 'server-options') {
      res.writeHead(200, { allow: ALLOW, 'content-length': 0 });
      res.end();
      return;
    }
    const url = edge.target;
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const runs = opts.runs;
    const handled = path.startsWith(AGENT_PREFIX)
      ? proxyToInstance(req, res, url, expectsContinue)
      : runs?.route(req, res, path)
        ? undefined
        : runs && wantsAsync(req)
          ? startRun(runs, req, res, url)
          : isLocal(path)
            ? local(req, res, path)
            : // SESSION_MULTITASK: only while some run is active is a plain request's session looked at.
              runs?.busy
              ? afterSessionRuns(runs, req, res, url, expectsContinue)
              : router.proxy(req, res, url, expectsContinue);
    Promise.resolve(handled).catch((err: unknown) => {
      opts.logger.error({ err }, 'load balancer request failed');
      sendError(res, new YggError('YGG_ERR_INTERNAL', 'unexpected error in the router'));
    });
  };

  /** A run: the client gate first (refused: no 202, no run), then the run service, holding the ticket. */
  const startRun = async (runs: RunService, req: IncomingMessage, res: ServerResponse, url: string) => {
    const ticket = await router.admitRun(req, res);
    if (!ticket) return;
    try {
      await runs.accept(
        req,
        res,
        (sink, body, timeoutMs) => router.proxyRun(req, sink, url, body, timeoutMs, ticket),
        { session: sessionIdOf(req), ...(ticket.tenant !== undefined ? { tenant: ticket.tenant } : {}) },
      );
    } finally {
      ticket.release();
    }
  };

  /** A plain request of a session with an active run: SESSION_MULTITASK first (reject, interrupt, wait). */
  const afterSessionRuns = async (
    runs: RunService,
    req: IncomingMessage,
    res: ServerResponse,
    url: string,
    expectsContinue: boolean,
  ): Promise<void> => {
    const session = sessionIdOf(req);
    if (session === undefined) return router.proxy(req, res, url, expectsContinue);
    // enqueue: it waits for the session's runs, at most QUEUE_TIMEOUT_MS, and only while its client is there.
    const left = new AbortController();
    const onClose = () => left.abort();
    res.once('close', onClose);
    const refused = await runs.sessionTurn(session, left.signal);
    res.off('close', onClose);
    if (left.signal.aborted) return;
    if (refused) return sendError(res, refused);
    return router.proxy(req, res, url, expectsContinue);
  };

  /** Runs `handle` once the response is the connection's current one (see the module comment). */
  const whenCurrent = (req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void => {
    if (res.socket) {
      handle(req, res, expectsContinue);
      return;
    }
    const socket = req.socket;
    const onTurn = () => {
      socket.off('close', onGone);
      handle(req, res, expectsContinue);
    };
    const onGone = () => res.off('socket', onTurn);
    res.once('socket', onTurn);
    socket.once('close', onGone);
  };

  // Node's own Host check answers a bare 400; edge.ts answers it in JSON like everything else.
  const server = createServer({ requireHostHeader: false }, (req, res) => whenCurrent(req, res, false));
  server.on('checkContinue', (req, res) => whenCurrent(req, res, true));
  server.keepAliveTimeout = 65_000;
  server.on('upgrade', (req, socket, head) => {
    if (opts.skipUpgrade?.(req)) return;
    const edge = checkRequest(req);
    if (edge.kind !== 'pass') {
      const err =
        edge.kind === 'refuse' ? edge.error : new YggError('YGG_ERR_BAD_REQUEST', 'nothing to upgrade');
      return refuseSocket(socket, err);
    }
    router.upgrade(req, socket, head, edge.target).catch((err: unknown) => {
      opts.logger.error({ err }, 'upgrade failed');
      socket.destroy();
    });
  });
  server.on('connect', (_req, socket: Socket) => {
    socket.on('error', () => socket.destroy());
    refuseSocket(
      socket,
      new YggError('YGG_ERR_BAD_REQUEST', 'CONNECT is not supported: this is a reverse proxy, not a tunnel'),
    );
  });
  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    socket.on('error', () => socket.destroy());
    const current = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || current?.headersSent) {
      socket.destroy();
      return;
    }
    refuseSocket(socket, clientErrorOf(err));
  });

  function proxyToInstance(req: IncomingMessage, res: ServerResponse, url: string, expectsContinue: boolean) {
    // /agent/{id}/{rest} → {rest} on instance {id}; /agent/{id} alone → /.
    const rest = url.slice(AGENT_PREFIX.length);
    const slash = rest.search(/[/?]/);
    const id = safeDecode(slash === -1 ? rest : rest.slice(0, slash));
    let target = slash === -1 ? '/' : rest.slice(slash);
    if (target.startsWith('?')) target = `/${target}`;
    return router.proxyTo(id, req, res, target, expectsContinue);
  }

  return server;
}

/** The JSON answer to what Node's HTTP parser refused (its default answers are bare). */
function clientErrorOf(err: Error & { code?: string }): YggError {
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    return new YggError('YGG_ERR_HEADERS_TOO_LARGE', 'the request headers are too large');
  }
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new YggError('YGG_ERR_CLIENT_TIMEOUT', 'the request did not arrive in time');
  }
  return new YggError('YGG_ERR_BAD_REQUEST', `the request could not be parsed (${err.code ?? err.message})`);
}

/** Percent-decoding that never throws: a malformed id is kept as sent (and then is no instance's). */
function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
