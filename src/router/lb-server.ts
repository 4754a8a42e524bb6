// The load balancer port (LB_PORT): the platform's own routes (/health, /status, /metrics), requests
// addressed to one instance (/agent/{id}/…), and everything else proxied to the pool.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { YggError } from '../core/errors.js';
import { sendError, sendJson } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import type { Router } from './router.js';

export interface LbServerOptions {
  router: Router;
  logger: Logger;
  /** JSON for GET /status. */
  status: () => unknown;
  /** Body and status for GET /health. */
  health: () => { ok: boolean; body: unknown };
  /** Answers GET /status with the live status page when the client asks for HTML; false = JSON. */
  statusPage?: (req: IncomingMessage, res: ServerResponse) => boolean;
  /** Upgrades another listener on this server answers (the live feed's Socket.IO path). */
  skipUpgrade?: (req: IncomingMessage) => boolean;
}

const AGENT_PREFIX = '/agent/';

export function createLbServer(opts: LbServerOptions): Server {
  const { router } = opts;
  const local = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> => {
    if (path !== '/health' && path !== '/status' && path !== '/metrics') return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(res, new YggError('YGG_ERR_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`));
      return true;
    }
    if (path === '/health') {
      const h = opts.health();
      sendJson(res, h.ok ? 200 : 503, h.body);
    } else if (path === '/status') {
      if (!opts.statusPage?.(req, res)) sendJson(res, 200, opts.status());
    } else {
      const text = await router.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': router.metrics.registry.contentType });
      res.end(text);
    }
    return true;
  };

  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const handled = path.startsWith(AGENT_PREFIX)
      ? proxyToInstance(req, res, url)
      : local(req, res, path).then((done) => (done ? undefined : router.proxy(req, res, url)));
    Promise.resolve(handled).catch((err: unknown) => {
      opts.logger.error({ err }, 'load balancer request failed');
      sendError(res, new YggError('YGG_ERR_INTERNAL', 'unexpected error in the router'));
    });
  });
  server.keepAliveTimeout = 65_000;
  server.on('upgrade', (req, socket, head) => {
    if (opts.skipUpgrade?.(req)) return;
    router.upgrade(req, socket, head).catch((err: unknown) => {
      opts.logger.error({ err }, 'upgrade failed');
      socket.destroy();
    });
  });

  function proxyToInstance(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    // /agent/{id}/{rest} → {rest} on instance {id}; /agent/{id} alone → /.
    const rest = url.slice(AGENT_PREFIX.length);
    const slash = rest.search(/[/?]/);
    const id = safeDecode(slash === -1 ? rest : rest.slice(0, slash));
    let target = slash === -1 ? '/' : rest.slice(slash);
    if (target.startsWith('?')) target = `/${target}`;
    return router.proxyTo(id, req, res, target);
  }

  return server;
}

/** Percent-decoding that never throws: a malformed id is kept as sent (and then is no instance's). */
function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
