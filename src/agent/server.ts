// The reference agent: the HTTP server each instance runs, and what users replace with their own agent.
// Routes: GET /health, GET /metrics, POST /process, GET|POST /api/* (echo). Drains on shutdown().
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

type Route = 'process' | 'api' | 'health' | 'metrics' | 'other';

function routeOf(path: string): Route {
  if (path === '/process') return 'process';
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

  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const route = routeOf(path);
    const counted = route === 'process' || route === 'api';
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
