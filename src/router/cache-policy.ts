// RESPONSE_CACHE_BYTES: which GET answers the router may keep and serve again, as a shared cache
// (RFC 9111) that only stores what an agent marks `Cache-Control: public` with `s-maxage` or `max-age`.
// Never a request with Authorization, a session (X-Session-Id or the ygg_session cookie) or
// `Cache-Control: no-store`; never an answer with Set-Cookie, `private`, `no-store`, `no-cache` or
// `Vary: *`. `Vary` names the request headers a stored answer must match. Pure.
import { SESSION_COOKIE, SESSION_HEADER } from '../core/session.js';

type Headers = Record<string, string | string[] | undefined>;

export interface CacheControl {
  public: boolean;
  private: boolean;
  noStore: boolean;
  noCache: boolean;
  /** Seconds. */
  maxAge?: number;
  sMaxAge?: number;
}

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v.join(', ') : v);

/** The directives of a Cache-Control value (unknown ones ignored; a bad number counts as absent). */
export function parseCacheControl(value: string | undefined): CacheControl {
  const cc: CacheControl = { public: false, private: false, noStore: false, noCache: false };
  if (!value) return cc;
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    const arg =
      eq === -1
        ? undefined
        : part
            .slice(eq + 1)
            .trim()
            .replace(/^"(.*)"$/, '$1');
    const secs = arg !== undefined && /^\d{1,10}$/.test(arg) ? Number(arg) : undefined;
    if (name === 'public') cc.public = true;
    else if (name === 'private') cc.private = true;
    else if (name === 'no-store') cc.noStore = true;
    else if (name === 'no-cache') cc.noCache = true;
    else if (name === 'max-age' && secs !== undefined) cc.maxAge = secs;
    else if (name === 's-maxage' && secs !== undefined) cc.sMaxAge = secs;
  }
  return cc;
}

/**
 * What the cache may do for a request: `use` (answer from it, or store the answer), `refresh` (the
 * client asked for a fresh answer: fetch and store it), or `bypass` (neither).
 */
export type CacheUse = 'use' | 'refresh' | 'bypass';

export function cacheUseOf(method: string, h: Headers): CacheUse {
  if (method !== 'GET') return 'bypass';
  if (h.authorization !== undefined || h[SESSION_HEADER] !== undefined) return 'bypass';
  const cookie = one(h.cookie);
  if (cookie !== undefined && new RegExp(`(?:^|;)\\s*${SESSION_COOKIE}=`).test(cookie)) return 'bypass';
  const cc = parseCacheControl(one(h['cache-control']));
  if (cc.noStore) return 'bypass';
  if (cc.noCache || cc.maxAge === 0 || /no-cache/i.test(one(h.pragma) ?? '')) return 'refresh';
  return 'use';
}

/** Statuses a shared cache may store when the answer says how long (RFC 9110 §15.1). */
const CACHEABLE_STATUS = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]);

export interface Storable {
  /** How long from now it may be served (ms). */
  ttlMs: number;
  /** Request headers the answer varies on (lower-case; empty when none). */
  vary: string[];
}

/** Whether an agent's answer may be stored, for how long and varying on what; undefined: it may not. */
export function storableOf(status: number, h: Headers): Storable | undefined {
  if (!CACHEABLE_STATUS.has(status) || h['set-cookie'] !== undefined) return undefined;
  const cc = parseCacheControl(one(h['cache-control']));
  if (!cc.public || cc.private || cc.noStore || cc.noCache) return undefined;
  const lifetime = cc.sMaxAge ?? cc.maxAge;
  if (lifetime === undefined) return undefined;
  const age = Number(one(h.age) ?? 0);
  const ttlMs = (lifetime - (Number.isFinite(age) && age > 0 ? age : 0)) * 1000;
  if (ttlMs <= 0) return undefined;
  const vary = (one(h.vary) ?? '')
    .split(',')
    .map((v) => v.trim().toLowerCase())
    .filter((v) => v !== '');
  if (vary.includes('*')) return undefined;
  return { ttlMs, vary };
}

/** The values of the named request headers, as one string to compare a stored variant against. */
export function varyKey(names: readonly string[], h: Headers): string {
  let key = '';
  for (const name of names) key += `${name}:${one(h[name]) ?? ''}\n`;
  return key;
}
