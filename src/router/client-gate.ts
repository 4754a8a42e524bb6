// Per-client admission on the data plane: who the client is (with CLIENT_AUTH=keys, the name of its
// client key: the tenant; else its address, the rightmost untrusted one behind TRUSTED_PROXIES), and
// whether it may send this request now: RATE_LIMIT_RPS/RATE_LIMIT_BURST (rate-limiter-flexible, in
// memory), MAX_INFLIGHT_PER_CLIENT and MAX_SESSIONS_PER_CLIENT. Refusals are 401 or 429 with the IETF
// RateLimit headers and Retry-After; the router only builds one of these when a limit is set.
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  BurstyRateLimiter,
  type RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterRes,
} from 'rate-limiter-flexible';
import type { Principal } from '../auth/keys.js';
import { bearerOf } from '../auth/policy.js';
import { type AddressList, unmapped } from '../core/address-list.js';
import { YggError } from '../core/errors.js';
import { ClientSessions } from './client-sessions.js';
import type { CounterChild } from './hot-metrics.js';

export interface ClientGateOptions {
  /** CLIENT_AUTH: `keys` requires a client (or admin) key on proxied traffic. */
  auth: 'none' | 'keys';
  keys: { verify(key: string): Promise<Principal | undefined> };
  rateRps: number;
  rateBurst: number;
  maxInflight: number;
  maxSessions: number;
  sessionTtlMs: number;
  trustedProxies: AddressList;
  /** A request's outcome by tenant ("anonymous" for address-identified clients): bounded labels. */
  count: (tenant: string, outcome: string) => CounterChild;
  now: () => number;
  /**
   * Where the rate limiter keeps its counts: in this process by default; a shared store (Redis) makes
   * RATE_LIMIT_RPS hold across every router together.
   */
  limiter?: LimiterFactory;
}

/** Makes a rate limiter of `points` per `duration` seconds under `keyPrefix`. */
export type LimiterFactory = (o: {
  keyPrefix: string;
  points: number;
  duration: number;
}) => RateLimiterAbstract;

const memoryLimiter: LimiterFactory = (o) => new RateLimiterMemory(o);

/** A request let in: who sent it, and the hold it has on the client's in-flight budget. */
export interface Admission {
  client: string;
  tenant: string | undefined;
  release(): void;
}

const NO_RELEASE = () => {};

export class ClientGate {
  private readonly limiter: RateLimiterAbstract | BurstyRateLimiter | undefined;
  private readonly inflight = new Map<string, number>();
  private readonly sessions: ClientSessions | undefined;
  private readonly policy: string | undefined;

  constructor(private readonly opts: ClientGateOptions) {
    if (opts.rateRps > 0) {
      const make = opts.limiter ?? memoryLimiter;
      const main = make({ keyPrefix: 'rate', points: opts.rateRps, duration: 1 });
      this.limiter =
        opts.rateBurst > 0
          ? new BurstyRateLimiter(
              main,
              make({
                keyPrefix: 'burst',
                points: opts.rateBurst,
                duration: Math.max(1, Math.ceil(opts.rateBurst / opts.rateRps)),
              }),
            )
          : main;
      this.policy = `"default";q=${opts.rateRps};w=1`;
    }
    if (opts.maxSessions > 0) this.sessions = new ClientSessions(opts.maxSessions, opts.sessionTtlMs);
  }

  /** Whether any per-client rule is on (else the router does not ask). */
  static needed(o: Pick<ClientGateOptions, 'auth' | 'rateRps' | 'maxInflight' | 'maxSessions'>): boolean {
    return o.auth === 'keys' || o.rateRps > 0 || o.maxInflight > 0 || o.maxSessions > 0;
  }

  /** Lets the request in (an Admission to release when it ends) or says why not. */
  async admit(req: IncomingMessage, res?: ServerResponse): Promise<Admission | YggError> {
    let tenant: string | undefined;
    if (this.opts.auth === 'keys') {
      const key = bearerOf(req.headers.authorization);
      const p = key === undefined ? undefined : await this.opts.keys.verify(key);
      if (!p || (p.role !== 'client' && p.role !== 'admin')) {
        this.opts.count('anonymous', 'unauthorized').inc();
        return new YggError(
          'YGG_ERR_UNAUTHORIZED',
          key === undefined
            ? 'this service needs a client key: send Authorization: Bearer <key>'
            : 'the key is not a valid client key here',
        );
      }
      tenant = p.name;
    }
    const client = tenant ?? clientAddress(req, this.opts.trustedProxies);
    const label = tenant ?? 'anonymous';
    if (this.limiter) {
      // consume() resolves when the client is under its limit and rejects (with the same kind of
      // answer) when it is over.
      let r: RateLimiterRes;
      let over = false;
      try {
        r = await this.limiter.consume(client);
      } catch (e) {
        if (!(e instanceof RateLimiterRes)) throw e;
        r = e;
        over = true;
      }
      if (res) this.setRateHeaders(res, r);
      if (over) {
        this.opts.count(label, 'rate_limited').inc();
        return new YggError(
          'YGG_ERR_RATE_LIMITED',
          `over RATE_LIMIT_RPS=${this.opts.rateRps} (burst ${this.opts.rateBurst}) for this client: retry after Retry-After`,
          { retryAfterSeconds: Math.max(1, Math.ceil(r.msBeforeNext / 1000)) },
        );
      }
    }
    let release = NO_RELEASE;
    if (this.opts.maxInflight > 0) {
      const n = this.inflight.get(client) ?? 0;
      if (n >= this.opts.maxInflight) {
        this.opts.count(label, 'inflight_limited').inc();
        return new YggError(
          'YGG_ERR_RATE_LIMITED',
          `this client already has MAX_INFLIGHT_PER_CLIENT=${this.opts.maxInflight} requests in flight`,
          { retryAfterSeconds: 1 },
        );
      }
      this.inflight.set(client, n + 1);
      let released = false;
      release = () => {
        if (released) return;
        released = true;
        const left = (this.inflight.get(client) ?? 1) - 1;
        if (left <= 0) this.inflight.delete(client);
        else this.inflight.set(client, left);
      };
    }
    this.opts.count(label, 'admitted').inc();
    return { client, tenant, release };
  }

  /** MAX_SESSIONS_PER_CLIENT: may this client use this session now? */
  session(a: Admission, sessionId: string): YggError | undefined {
    if (!this.sessions || this.sessions.admit(a.client, sessionId, this.opts.now())) return undefined;
    this.opts.count(a.tenant ?? 'anonymous', 'sessions_limited').inc();
    return new YggError(
      'YGG_ERR_RATE_LIMITED',
      `this client already holds MAX_SESSIONS_PER_CLIENT=${this.opts.maxSessions} sessions: reuse one, or wait until one has been idle for SESSION_TTL_MS`,
      { retryAfterSeconds: Math.max(1, Math.ceil(this.opts.sessionTtlMs / 1000)) },
    );
  }

  /** Forgets idle sessions (called with the router's session sweep). */
  sweep(now: number): void {
    this.sessions?.sweep(now);
  }

  /** `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers). */
  private setRateHeaders(res: ServerResponse, r: RateLimiterRes): void {
    if (res.headersSent) return;
    res.setHeader('ratelimit-policy', this.policy!);
    res.setHeader(
      'ratelimit',
      `"default";r=${Math.max(0, r.remainingPoints)};t=${Math.max(0, Math.ceil(r.msBeforeNext / 1000))}`,
    );
  }
}

/**
 * The client's address: the peer, or behind trusted proxies the rightmost X-Forwarded-For entry that
 * is not one of them (the nearest hop no trusted proxy vouches for).
 */
export function clientAddress(req: IncomingMessage, trusted: AddressList): string {
  const peer = unmapped(req.socket.remoteAddress ?? '');
  if (trusted.size === 0 || !trusted.has(peer)) return peer;
  const xff = req.headers['x-forwarded-for'];
  const hops = (Array.isArray(xff) ? xff.join(',') : (xff ?? ''))
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) if (!trusted.has(unmapped(hops[i]!))) return unmapped(hops[i]!);
  return peer;
}
