// The controller port (CONTROLLER_PORT): GET /health, GET /status (pool, instances, events), GET /metrics.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { YggError } from '../core/errors.js';
import { sendError, sendJson } from '../core/http.js';
import type { Logger } from '../core/logger.js';

export interface ControllerApiOptions {
  logger: Logger;
  status: () => unknown;
  registry: Registry;
  /** Prometheus HTTP service discovery: the agents to scrape now. */
  scrapeTargets: () => Array<{ targets: string[]; labels: Record<string, string> }>;
  /** Answers GET / with the live status page; without it / is not a route. */
  statusPage?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

const ROUTES = new Set(['/health', '/status', '/metrics', '/sd/agents']);

export function createControllerServer(opts: ControllerApiOptions): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const run = async () => {
      if (path === '/' && opts.statusPage?.(req, res)) return;
      if (!ROUTES.has(path ?? '')) {
        throw new YggError('YGG_ERR_NOT_FOUND', `no route ${req.method} ${path} on the controller`);
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        throw new YggError('YGG_ERR_METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`);
      }
      if (path === '/health') return sendJson(res, 200, { status: 'ok' });
      if (path === '/status') return sendJson(res, 200, opts.status());
      if (path === '/sd/agents') return sendJson(res, 200, opts.scrapeTargets());
      const text = await opts.registry.metrics();
      res.writeHead(200, { 'content-type': opts.registry.contentType });
      res.end(text);
    };
    run().catch((err: unknown) => {
      if (err instanceof YggError) return sendError(res, err);
      opts.logger.error({ err }, 'controller API request failed');
      sendError(res, new YggError('YGG_ERR_INTERNAL', 'unexpected error in the controller API'));
    });
  });
}
