// The reference agent: the HTTP server each instance runs, and what users replace with their own agent.
// Routes: GET /health, GET /metrics, POST /process, GET /stream (server-sent events), GET /document (a
// JSON document of a chosen size, cacheable on request), GET|POST /api/* (echo). Drains on shutdown().
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { isYggError, YggError } from '../core/errors.js';
import { parseJson, readBody, sendError, sendJson } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import { sessionIdOf } from '../core/session.js';
import { createAgentMetrics } from './metrics.js';
import { parseProcessRequest } from './process-request.js';
import { SessionCounter } from './session-counter.js';
import { handleUpgrade } from './websocket.js';

export interface AgentOptions {
  agentId: string;
  instanceId: string;
  maxBodyBytes: number;
  logger: Logger;
}

export interface Agent {
  server: Server;
  listen(port: number, host: string): Promise<number>;
  /** Stops accepting, lets in-flight requests finish, resolves when every connection is closed. */
  shutdown(): Promise<void>;
  readonly inflight: number;
}

type Route = 'process' | 'stream' | 'document' | 'api' | 'health' | 'metrics' | 'other';

/** Most events one GET /stream may ask for. */
const MAX_STREAM_EVENTS = 1_000_000;
const VOCABULARY = (
  'the a an agent model answer request tool call result context token stream session instance ' +
  'router pool queue plan step search read write file code test error retry wait think because ' +
  'then when while after before with without from into over under each every some many few ' +
  'first last next new old fast slow small large good bad open close start stop run done'
).split(' ');

/**
 * `length` characters of words drawn from a small vocabulary in a fixed pseudo-random order: text a
 * compressor shrinks about as much as it shrinks a model's prose (not a repeated phrase, which it
 * would shrink to almost nothing).
 */
function proseOf(length: number): string {
  let seed = 12345;
  let out = '';
  while (out.length < length) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const r = seed >>> 12; // the high bits: a power-of-two LCG's low bits repeat with short periods
    out += `${VOCABULARY[r % VOCABULARY.length]}${r % 11 === 0 ? '. ' : ' '}`;
  }
  return out.slice(0, length);
}

/** Largest GET /document. */
const MAX_DOCUMENT_BYTES = 10 * 1024 * 1024;

function routeOf(path: string): Route {
  if (path === '/process') return 'process';
  if (path === '/stream') return 'stream';
  if (path === '/document') return 'document';
  if (path === '/health') return 'health';
  if (path === '/metrics') return 'metrics';
  if (path === '/api' || path.startsWith('/api/')) return 'api';
  return 'other';
}

function busyCpu(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Spin: this is the simulated compute the caller asked for.
  }
}

export function createAgent(opts: AgentOptions): Agent {
  const metrics = createAgentMetrics(opts.agentId);
  const sessions = new SessionCounter();
  const startedAt = Date.now();
  let inflight = 0;
  let served = 0;
  let closing = false;
  let closed: Promise<void> | undefined;

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    route: Route,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    switch (route) {
      case 'health':
        if (method !== 'GET' && method !== 'HEAD') throw notAllowed(method, path);
        return sendJson(res, 200, {
          status: 'ok',
          agentId: opts.agentId,
          instanceId: opts.instanceId,
          inflight,
          uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
          pid: process.pid,
          uid: process.getuid?.() ?? null,
        });
      case 'metrics': {
        if (method !== 'GET') throw notAllowed(method, path);
        const text = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
        return;
      }
      case 'process': {
        if (method !== 'POST') throw notAllowed(method, path);
        const body = parseProcessRequest(parseJson(await readBody(req, opts.maxBodyBytes)));
        if (body.workMs > 0) await sleep(body.workMs);
        if (body.cpuMs > 0) busyCpu(body.cpuMs);
        if (body.fail)
          throw new YggError('YGG_ERR_AGENT_FAILURE', 'failure requested by the caller (fail: true)');
        const sessionId = sessionIdOf(req) ?? null;
        const requests = sessionId === null ? 0 : sessions.hit(sessionId);
        return sendJson(res, 200, {
          agentId: opts.agentId,
          instanceId: opts.instanceId,
          output: { echo: body.input ?? null, workMs: body.workMs, cpuMs: body.cpuMs },
          inflight,
          session: { id: sessionId, requests },
        });
      }
      case 'stream':
        if (method !== 'GET') throw notAllowed(method, path);
        return stream(req, res);
      case 'document':
        if (method !== 'GET' && method !== 'HEAD') throw notAllowed(method, path);
        return document(req, res);
      case 'api': {
        if (method !== 'GET' && method !== 'POST' && method !== 'HEAD') throw notAllowed(method, path);
        const bytes = method === 'POST' ? (await readBody(req, opts.maxBodyBytes)).length : 0;
        return sendJson(res, 200, {
          ok: true,
          agentId: opts.agentId,
          instanceId: opts.instanceId,
          method,
          path,
          bytes,
          headers: req.headers,
        });
      }
      default:
        throw new YggError('YGG_ERR_NOT_FOUND', `no route ${method} ${path} on the agent`);
    }
  }

  /**
   * GET /stream?n=N&ms=M: N server-sent events (`step`, ids 1..N), one every M ms, as a model streams
   * tokens. Each carries the session's request count on this instance (its state).
   */
  async function stream(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const q = new URL(req.url ?? '/', 'http://agent').searchParams;
    const n = Number(q.get('n') ?? 10);
    const ms = Number(q.get('ms') ?? 100);
    if (
      !Number.isInteger(n) ||
      n < 1 ||
      n > MAX_STREAM_EVENTS ||
      !Number.isFinite(ms) ||
      ms < 0 ||
      ms > 60_000
    ) {
      throw new YggError(
        'YGG_ERR_BAD_REQUEST',
        `GET /stream takes n (1..${MAX_STREAM_EVENTS}) and ms (0..60000); got n=${q.get('n')}, ms=${q.get('ms')}`,
      );
    }
    const sessionId = sessionIdOf(req) ?? null;
    const requests = sessionId === null ? 0 : sessions.hit(sessionId);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    let gone = false;
    res.on('close', () => {
      gone = true;
    });
    for (let i = 1; i <= n && !gone; i++) {
      const data = JSON.stringify({ i, agentId: opts.agentId, session: { id: sessionId, requests } });
      res.write(`id: ${i}\nevent: step\ndata: ${data}\n\n`);
      if (i < n && ms > 0) await sleep(ms);
    }
    res.end();
  }

  /**
   * GET /document?bytes=N&maxAge=S&vary=H: a JSON document of about N bytes (text a compressor can
   * shrink, as model output is), marked `Cache-Control: public, max-age=S` when S is given and
   * `Vary: H` when H is. `served` counts the documents this instance made: a cache that answered
   * instead shows the count of the answer it kept.
   */
  function document(req: IncomingMessage, res: ServerResponse): void {
    const q = new URL(req.url ?? '/', 'http://agent').searchParams;
    const bytes = Number(q.get('bytes') ?? 1024);
    const maxAge = q.get('maxAge');
    const vary = q.get('vary');
    if (
      !Number.isInteger(bytes) ||
      bytes < 1 ||
      bytes > MAX_DOCUMENT_BYTES ||
      (maxAge !== null && !/^\d{1,6}$/.test(maxAge)) ||
      (vary !== null && !/^[\w-]+(?:,\s*[\w-]+)*$/.test(vary))
    ) {
      throw new YggError(
        'YGG_ERR_BAD_REQUEST',
        `GET /document takes bytes (1..${MAX_DOCUMENT_BYTES}), maxAge (seconds) and vary (header names); got bytes=${q.get('bytes')}, maxAge=${maxAge}, vary=${vary}`,
      );
    }
    served++;
    const head = JSON.stringify({ agentId: opts.agentId, instanceId: opts.instanceId, served, text: '' });
    const text = proseOf(Math.max(0, bytes - Buffer.byteLength(head)));
    const body = `${head.slice(0, -2)}${JSON.stringify(text).slice(1, -1)}"}`;
    const headers: Record<string, string> = {
      'content-type': 'application/json; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': maxAge === null ? 'no-store' : `public, max-age=${maxAge}`,
    };
    if (vary !== null) headers.vary = vary;
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const route = routeOf(path);
    const counted = route === 'process' || route === 'api' || route === 'stream' || route === 'document';
    const start = performance.now();
    if (counted) {
      inflight++;
      metrics.inflight.inc();
    }
    if (closing) res.setHeader('connection', 'close');
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      if (counted) {
        inflight--;
        metrics.inflight.dec();
      }
      metrics.requests.inc({ route, code: String(res.statusCode) });
      metrics.duration.observe({ route }, (performance.now() - start) / 1000);
      if (closing) server.closeIdleConnections();
    };
    res.on('finish', finish);
    res.on('close', finish);
    handle(req, res, path, route).catch((err: unknown) => {
      if (isYggError(err)) {
        if (err.code === 'YGG_ERR_BODY_TOO_LARGE') res.setHeader('connection', 'close');
        return sendError(res, err);
      }
      opts.logger.error({ err }, 'agent request failed');
      sendError(res, new YggError('YGG_ERR_INTERNAL', 'unexpected error in the agent'));
    });
  });
  server.keepAliveTimeout = 65_000;
  server.on('upgrade', (req, socket) => {
    if (closing) {
      socket.destroy();
      return;
    }
    inflight++;
    socket.once('close', () => {
      inflight--;
    });
    handleUpgrade(req, socket, () => ({
      agentId: opts.agentId,
      instanceId: opts.instanceId,
      session: sessionIdOf(req) ?? null,
    }));
  });

  return {
    server,
    get inflight() {
      return inflight;
    },
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve((server.address() as AddressInfo).port);
        });
      });
    },
    shutdown() {
      if (closed) return closed;
      closing = true;
      closed = new Promise((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      return closed;
    },
  };
}

function notAllowed(method: string, path: string): YggError {
  return new YggError('YGG_ERR_METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`);
}
