// What the load balancer refuses before anything else looks at a request: targets that are not a
// path on this server (asterisk form, absolute form naming another authority, CONNECT's authority
// form), HTTP/1.0 with a chunked body, and a missing or repeated Host. Pure: it reads the request
// line and raw headers and says what to do; nothing reaches an instance, no breaker hears of it.
import { YggError } from '../core/errors.js';

/** What of a request the edge reads (an IncomingMessage is one). */
export interface RequestHead {
  method?: string | undefined;
  /** The request target as sent (req.url). */
  url?: string | undefined;
  /** "1.1", "1.0". */
  httpVersion: string;
  /** Header names and values as sent, alternating (req.rawHeaders). */
  rawHeaders: readonly string[];
}

export type EdgeVerdict =
  /** Serve it; `target` is the origin-form path and query to route and forward. */
  | { kind: 'pass'; target: string }
  /** OPTIONS * : a question about the server itself, answered by the router. */
  | { kind: 'server-options' }
  | { kind: 'refuse'; error: YggError };

const refuse = (message: string): EdgeVerdict => ({
  kind: 'refuse',
  error: new YggError('YGG_ERR_BAD_REQUEST', message),
});

export function checkRequest(head: RequestHead): EdgeVerdict {
  const method = head.method ?? 'GET';
  const url = head.url ?? '/';
  let host: string | undefined;
  let hosts = 0;
  let chunked = false;
  for (let i = 0; i < head.rawHeaders.length; i += 2) {
    const name = head.rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') {
      hosts++;
      host = head.rawHeaders[i + 1];
    } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      chunked = chunked || /chunked/i.test(head.rawHeaders[i + 1] ?? '');
    }
  }
  if (method === 'CONNECT') return refuse('CONNECT is not supported: this is a reverse proxy, not a tunnel');
  if (hosts > 1) return refuse('the request has more than one Host header');
  if (hosts === 0 && head.httpVersion !== '1.0') return refuse('an HTTP/1.1 request needs a Host header');
  if (chunked && head.httpVersion === '1.0') {
    return refuse('HTTP/1.0 has no chunked transfer coding: send a Content-Length');
  }
  if (url.startsWith('/')) return { kind: 'pass', target: url };
  if (url === '*') {
    return method === 'OPTIONS'
      ? { kind: 'server-options' }
      : refuse(`the asterisk target is only for OPTIONS, not ${method}`);
  }
  const abs = /^https?:\/\/([^/?#]*)([^#]*)/i.exec(url);
  if (abs) {
    const authority = abs[1]!.toLowerCase();
    if (host === undefined || authority !== host.toLowerCase()) {
      return refuse(`the absolute target names ${abs[1]}, not this server (${host ?? 'no Host'})`);
    }
    const rest = abs[2]!;
    return { kind: 'pass', target: rest.startsWith('/') ? rest : `/${rest}` };
  }
  return refuse('the request target must be a path starting with /');
}
