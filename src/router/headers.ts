// Header rewriting for proxying: drop hop-by-hop headers (RFC 9110 §7.6.1) both ways, add X-Forwarded-*.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

function connectionTokens(value: string | string[] | undefined): string[] {
  if (!value) return [];
  const text = Array.isArray(value) ? value.join(',') : value;
  if (text === 'keep-alive' || text === 'close') return [];
  return text.split(',').map((t) => t.trim().toLowerCase());
}

/** Headers to send upstream: the client's minus hop-by-hop ones, plus X-Forwarded-For/Proto/Host. */
export function upstreamHeaders(req: IncomingMessage): Record<string, string | string[]> {
  const src = req.headers;
  const extra = connectionTokens(src.connection);
  const out: Record<string, string | string[]> = {};
  for (const key in src) {
    if (HOP_BY_HOP.has(key) || (extra.length > 0 && extra.includes(key))) continue;
    const v = src[key];
    if (v !== undefined) out[key] = v;
  }
  const peer = req.socket.remoteAddress ?? '';
  const prior = src['x-forwarded-for'];
  out['x-forwarded-for'] = prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${peer}` : peer;
  out['x-forwarded-proto'] = (src['x-forwarded-proto'] as string | undefined) ?? 'http';
  out['x-forwarded-host'] = (src['x-forwarded-host'] as string | undefined) ?? src.host ?? '';
  return out;
}

/** Response headers to send back to the client: the instance's minus hop-by-hop ones. */
export function downstreamHeaders(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
) {
  const extra = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const key in headers) {
    if (HOP_BY_HOP.has(key) || (extra.length > 0 && extra.includes(key))) continue;
    const v = headers[key];
    if (v !== undefined) out[key] = v;
  }
  return out;
}
