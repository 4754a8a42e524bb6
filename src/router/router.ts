// The data plane: takes a client request, chooses an instance and forwards it. Every proxied response
// carries X-Yggdrasil-Instance. Requests addressed to one instance (/agent/{id}/…) go to that instance.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { InstanceState } from '../controller/instance.js';
import { YggError } from '../core/errors.js';
import { sendError } from '../core/http.js';
import type { Logger } from '../core/logger.js';
import { pickTwoChoices } from './balancer.js';
import { forward } from './forward.js';
import { upstreamHeaders } from './headers.js';
import { createRouterMetrics, type RouterMetrics } from './metrics.js';
import { type Upstream, UpstreamSet } from './upstreams.js';

export interface RouterOptions {
  maxConcurrency: number;
  maxBodyBytes: number;
  requestTimeoutMs: number;
  logger: Logger;
  /** Looks an instance up by id whatever its state (for /agent/{id}/… routes). */
  lookup: (id: string) => { state: InstanceState } | undefined;
  random?: () => number;
}

const inflightOf = (u: Upstream) => u.inflight;

export class Router {
  readonly upstreams: UpstreamSet;
  readonly metrics: RouterMetrics;
  private readonly random: () => number;
  private closing = false;

  constructor(private readonly opts: RouterOptions) {
    this.upstreams = new UpstreamSet(opts.maxConcurrency);
    this.metrics = createRouterMetrics(this.upstreams);
    this.random = opts.random ?? Math.random;
  }

  /** Load as the controller needs it (drain waits for in-flight to reach 0). */
  inflight(id: string): number {
    return this.upstreams.get(id)?.inflight ?? 0;
  }

  /** Proxies a request to some instance of the pool. */
  async proxy(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const started = performance.now();
    const refused = this.admissionError(req);
    if (refused) return this.refuse(res, refused, started);
    const up = pickTwoChoices(this.upstreams.active, inflightOf, this.opts.maxConcurrency, this.random);
    if (!up) {
      const err =
        this.upstreams.active.length === 0
          ? new YggError('YGG_ERR_NO_INSTANCES', 'no instance is ready to take the request', {
              retryAfterSeconds: 1,
            })
          : new YggError('YGG_ERR_CAPACITY', 'every instance is at MAX_CONCURRENCY', {
              retryAfterSeconds: 1,
            });
      return this.refuse(res, err, started);
    }
    await this.send(up, req, res, path, started);
  }

  /** Proxies a request to one named instance (GET /agent/{id}/health and friends). */
  async proxyTo(id: string, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const started = performance.now();
    const member = this.opts.lookup(id);
    if (!member)
      return this.refuse(
        res,
        new YggError('YGG_ERR_UNKNOWN_INSTANCE', `no instance ${id} in the pool`),
        started,
      );
    const up = this.upstreams.get(id);
    if (member.state !== 'ready' || !up || up.draining) {
      return this.refuse(
        res,
        new YggError('YGG_ERR_INSTANCE_NOT_READY', `instance ${id} is ${member.state}, not ready`, {
          retryAfterSeconds: 1,
          details: { state: member.state },
        }),
        started,
      );
    }
    const refused = this.admissionError(req);
    if (refused) return this.refuse(res, refused, started);
    await this.send(up, req, res, path, started);
  }

  close(): Promise<void> {
    this.closing = true;
    return this.upstreams.close();
  }

  private admissionError(req: IncomingMessage): YggError | undefined {
    if (this.closing) return new YggError('YGG_ERR_SHUTTING_DOWN', 'the router is stopping');
    const declared = Number(req.headers['content-length']);
    if (declared > this.opts.maxBodyBytes) {
      return new YggError(
        'YGG_ERR_BODY_TOO_LARGE',
        `request body exceeds MAX_BODY_BYTES=${this.opts.maxBodyBytes}`,
      );
    }
    return undefined;
  }

  private async send(up: Upstream, req: IncomingMessage, res: ServerResponse, path: string, started: number) {
    const method = req.method ?? 'GET';
    up.inflight++;
    let outcome: Awaited<ReturnType<typeof forward>>;
    try {
      outcome = await forward(up, {
        req,
        res,
        path,
        headers: upstreamHeaders(req),
        body: method === 'GET' || method === 'HEAD' ? null : req,
        timeoutMs: this.opts.requestTimeoutMs,
      });
    } finally {
      up.inflight--;
    }
    switch (outcome.kind) {
      case 'response':
        return this.record(up.id, outcome.status, started);
      case 'aborted':
        return this.record(up.id, 499, started);
      case 'unreached':
        return this.refuse(
          res,
          new YggError(
            'YGG_ERR_UPSTREAM',
            `instance ${up.id} could not be reached: ${outcome.error.message}`,
          ),
          started,
          up.id,
        );
      case 'failed': {
        const err = outcome.timeout
          ? new YggError(
              'YGG_ERR_TIMEOUT',
              `instance ${up.id} did not answer within REQUEST_TIMEOUT_MS=${this.opts.requestTimeoutMs}`,
            )
          : new YggError('YGG_ERR_UPSTREAM', `instance ${up.id} failed: ${outcome.error.message}`);
        this.opts.logger.warn({ instance: up.id, err: outcome.error.message }, 'upstream request failed');
        return this.refuse(res, err, started, up.id);
      }
    }
  }

  private refuse(res: ServerResponse, err: YggError, started: number, instance = 'none'): void {
    sendError(res, err, instance === 'none' ? {} : { 'x-yggdrasil-instance': instance });
    this.record(instance, err.status, started);
  }

  private record(instance: string, status: number, started: number): void {
    this.metrics.requests.inc({ instance, code: String(status) });
    this.metrics.duration.observe((performance.now() - started) / 1000);
  }
}
