// The controller port (CONTROLLER_PORT). Read routes: GET /status, /metrics, /sd/agents and the page
// at / (its data comes over the live feed, which checks the key itself). Admin routes: PUT /scaling,
// POST /instances/{id}/drain and /restart; with SESSION_MODE=dedicated, GET /sessions (admin) and
// DELETE /sessions/{id} (admin). GET /health is always open. Who may call what is the auth
// policy's (src/auth/policy.ts); the key is read from the Authorization header only.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { AuthGate } from '../auth/gate.js';
import { refuseAccess } from '../auth/gate.js';
import type { Need } from '../auth/policy.js';
import { type AllowedHosts, hostRefused } from '../core/allowed-hosts.js';
import { YggError } from '../core/errors.js';
import { parseJson, readBody, sendError, sendJson } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import type { InstanceState } from './instance.js';
import type { ScalingLimits } from './scaling-limits.js';

/** What the admin routes do; the composition root wires them to the controller and the autoscaler. */
export interface AdminActions {
  /** New limits (and the desired count now), or the validation error to answer (400). `by` names the key's owner. */
  setScaling(body: unknown, by: string): (ScalingLimits & { desiredInstances: number }) | YggError;
  /** Drains (or restarts) a ready instance: 'accepted', 'unknown', or the state it is in. */
  drain(id: string, restart: boolean, by: string): 'accepted' | 'unknown' | 'owned' | InstanceState;
  /** SESSION_MODE=dedicated: the live sessions, and ending one (false: no such session). */
  sessions?: {
    list(): unknown[];
    end(id: string, reason: string): boolean;
  };
}

export interface ControllerApiOptions {
  logger: Logger;
  status: () => unknown;
  registry: Pick<Registry, 'metrics' | 'contentType'>;
  /** Prometheus HTTP service discovery: the agents to scrape now. */
  scrapeTargets: () => Array<{ targets: string[]; labels: Record<string, string> }>;
  /** Answers GET / with the live status page; without it / is not a route. */
  statusPage?: (req: IncomingMessage, res: ServerResponse) => boolean;
  auth: AuthGate;
  admin: AdminActions;
  /** ALLOWED_HOSTS: every route but /health answers only to these names. */
  hosts: AllowedHosts;
}

interface Route {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  need: Need;
  handle: (req: IncomingMessage, res: ServerResponse, params: string[], by: string) => Promise<void> | void;
}

const MAX_ADMIN_BODY = 16 * 1024;

export function createControllerServer(opts: ControllerApiOptions): Server {
  const drain =
    (restart: boolean) =>
    (_req: IncomingMessage, res: ServerResponse, [id = '']: string[], by: string) => {
      const r = opts.admin.drain(id, restart, by);
      if (r === 'unknown') throw new YggError('YGG_ERR_UNKNOWN_INSTANCE', `no instance ${id} in the pool`);
      if (r === 'owned') {
        throw new YggError(
          'YGG_ERR_INSTANCE_OWNED',
          `instance ${id} belongs to a session (SESSION_MODE=dedicated): end the session with DELETE /sessions/{id}`,
        );
      }
      if (r !== 'accepted') {
        throw new YggError(
          'YGG_ERR_INSTANCE_NOT_READY',
          `instance ${id} is ${r}: only a ready instance can be ${restart ? 'restarted' : 'drained'}`,
          {
            retryAfterSeconds: 1,
            details: { state: r },
          },
        );
      }
      sendJson(res, 202, { id, action: restart ? 'restart' : 'drain', state: 'draining' });
    };
  const routes: Array<[RegExp, Route]> = [
    [
      /^\/health$/,
      { method: 'GET', need: 'open', handle: (_q, res) => sendJson(res, 200, { status: 'ok' }) },
    ],
    [/^\/status$/, { method: 'GET', need: 'read', handle: (_q, res) => sendJson(res, 200, opts.status()) }],
    [
      /^\/sd\/agents$/,
      { method: 'GET', need: 'read', handle: (_q, res) => sendJson(res, 200, opts.scrapeTargets()) },
    ],
    [
      /^\/metrics$/,
      {
        method: 'GET',
        need: 'read',
        handle: async (_q, res) => {
          const text = await opts.registry.metrics();
          res.writeHead(200, { 'content-type': opts.registry.contentType });
          res.end(text);
        },
      },
    ],
    [
      /^\/scaling$/,
      {
        method: 'PUT',
        need: 'admin',
        handle: async (req, res, _p, by) => {
          const body = parseJson(await readBody(req, MAX_ADMIN_BODY));
          const r = opts.admin.setScaling(body, by);
          if (r instanceof YggError) throw r;
          sendJson(res, 200, r);
        },
      },
    ],
    [/^\/instances\/([^/]+)\/drain$/, { method: 'POST', need: 'admin', handle: drain(false) }],
    [/^\/instances\/([^/]+)\/restart$/, { method: 'POST', need: 'admin', handle: drain(true) }],
  ];
  const sessions = opts.admin.sessions;
  if (sessions) {
    routes.push(
      [
        /^\/sessions$/,
        {
          method: 'GET',
          // Session ids are what lets a client reach its instance: only an admin lists them.
          need: 'admin',
          handle: (_q, res) => sendJson(res, 200, { sessions: sessions.list() }),
        },
      ],
      [
        /^\/sessions\/([^/]+)$/,
        {
          method: 'DELETE',
          need: 'admin',
          handle: (_q, res, [id = ''], by) => {
            if (!sessions.end(id, `ended by ${by}`)) {
              throw new YggError('YGG_ERR_UNKNOWN_SESSION', `no live session ${id}`);
            }
            sendJson(res, 200, { session: id, state: 'ended' });
          },
        },
      ],
    );
  }

  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const run = async () => {
      if (path !== '/health' && !opts.hosts.allows(req.headers.host)) throw hostRefused(req.headers.host);
      if (path === '/' && (req.method === 'GET' || req.method === 'HEAD') && opts.statusPage?.(req, res))
        return;
      const matches = routes
        .map(([re, route]) => ({ m: re.exec(path), route }))
        .filter((x): x is { m: RegExpExecArray; route: Route } => x.m !== null);
      if (matches.length === 0) {
        throw new YggError('YGG_ERR_NOT_FOUND', `no route ${req.method} ${path} on the controller`);
      }
      const method = req.method === 'HEAD' ? 'GET' : req.method;
      const hit = matches.find((x) => x.route.method === method);
      if (!hit) {
        const allowed = [...new Set(matches.map((x) => x.route.method))].join(', ');
        throw new YggError(
          'YGG_ERR_METHOD_NOT_ALLOWED',
          `${req.method} is not allowed on ${path} (allowed: ${allowed})`,
        );
      }
      const verdict = await opts.auth.check(req.headers, hit.route.need);
      if (!verdict.ok) return refuseAccess(res, verdict.error);
      const params = hit.m.slice(1).map((p) => safeDecode(p));
      await hit.route.handle(req, res, params, verdict.principal?.name ?? 'anonymous');
    };
    run().catch((err: unknown) => {
      if (err instanceof YggError) return sendError(res, err);
      opts.logger.error({ err }, 'controller API request failed');
      sendError(res, new YggError('YGG_ERR_INTERNAL', 'unexpected error in the controller API'));
    });
  });
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
