// Header rewriting for proxying. Both ways: drop hop-by-hop headers (RFC 9110 §7.6.1) and those the
// Connection header names. Upstream: keep the client's Host (an agent that builds URLs from it points
// clients back at the load balancer), answer Expect ourselves, and set X-Forwarded-For/Proto/Host and
// RFC 7239 Forwarded. A client's own values of those are replaced, unless its address is a trusted
// proxy (TRUSTED_PROXIES), whose values are kept and extended.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { type AddressList, unmapped } from '../core/address-list.js';
import { SESSION_HEADER } from '../core/session.js';

/** Headers of the connection, not of the message (RFC 9110 §7.6.1): never passed on, either way. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Request headers the router answers or rewrites itself. */
const OWN_REQUEST = new Set([
  'expect',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'x-yggdrasil-tenant',
]);

function connectionTokens(value: string | string[] | undefined): string[] {
  if (!value) return [];
  const text = Array.isArray(value) ? value.join(',') : value;
  if (text === 'keep-alive' || text === 'close') return [];
  return text.split(',').map((t) => t.trim().toLowerCase());
}

const joined = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(', ') : v);

/** An RFC 7239 value: a token as is, anything else quoted. */
function forwardedValue(v: string): string {
  return /^[!#$%&'*+\-.^_`|~\w]+$/.test(v) ? v : `"${v.replace(/(["\\])/g, '\\$1')}"`;
}

/** The last value formatted: clients of one host and one peer repeat them (a regex a request saved). */
function lastOne(format: (v: string) => string): (v: string) => string {
  let key = '';
  let value = format('');
  return (v) => {
    if (v !== key) {
      key = v;
      value = format(v);
    }
    return value;
  };
}

const hostValue = lastOne(forwardedValue);
/** An RFC 7239 node: IPv6 bracketed (and so quoted). */
const forwardedNode = lastOne((addr) => (addr.includes(':') ? `"[${addr}]"` : forwardedValue(addr)));

export interface UpstreamHeaderOptions {
  trustedProxies: AddressList;
  /** The session the router placed the request in: passed as X-Session-Id (also when it issued it). */
  sessionId?: string | undefined;
  /** The client key's name (CLIENT_AUTH=keys): passed as X-Yggdrasil-Tenant, and the key is not. */
  tenant?: string | undefined;
}

/** Headers to send upstream (see the module comment). */
export function upstreamHeaders(
  req: IncomingMessage,
  opts: UpstreamHeaderOptions,
): Record<string, string | string[]> {
  const src = req.headers;
  const extra = connectionTokens(src.connection);
  const out: Record<string, string | string[]> = {};
  for (const key in src) {
    if (HOP_BY_HOP.has(key) || OWN_REQUEST.has(key) || (extra.length > 0 && extra.includes(key))) continue;
    const v = src[key];
    if (v !== undefined) out[key] = v;
  }
  const peer = unmapped(req.socket.remoteAddress ?? '');
  const trusted = opts.trustedProxies.size > 0 && opts.trustedProxies.has(peer);
  const host = src.host ?? '';
  const priorFor = trusted ? joined(src['x-forwarded-for']) : undefined;
  const proto = (trusted ? joined(src['x-forwarded-proto'])?.split(',')[0]?.trim() : undefined) || 'http';
  const publicHost = (trusted ? joined(src['x-forwarded-host']) : undefined) || host;
  out['x-forwarded-for'] = priorFor ? `${priorFor}, ${peer}` : peer;
  out['x-forwarded-proto'] = proto;
  out['x-forwarded-host'] = publicHost;
  const element = `for=${forwardedNode(peer)}${host ? `;host=${hostValue(host)}` : ''};proto=${proto}`;
  const priorForwarded = trusted ? joined(src.forwarded) : undefined;
  out.forwarded = priorForwarded ? `${priorForwarded}, ${element}` : element;
  if (opts.sessionId !== undefined) out[SESSION_HEADER] = opts.sessionId;
  if (opts.tenant !== undefined) {
    out['x-yggdrasil-tenant'] = opts.tenant;
    delete out.authorization;
  }
  return out;
}

/**
 * Response headers to send back to the client: the instance's minus hop-by-hop ones, and minus the
 * names its Connection header lists (or `connectionNames`, when that header was read already).
 */
export function downstreamHeaders(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
  connectionNames?: readonly string[],
) {
  const extra = connectionNames ?? connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const key in headers) {
    if (HOP_BY_HOP.has(key) || (extra.length > 0 && extra.includes(key))) continue;
    const v = headers[key];
    if (v !== undefined) out[key] = v;
  }
  return out;
}
