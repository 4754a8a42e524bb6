// Forwards one request to one instance on undici's pool.stream(), writing the answer straight into the
// client's response (no buffering either way). Reports how it ended so the caller can count, retry or
// trip a breaker. A client that goes away aborts the upstream request.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { downstreamHeaders } from './headers.js';
import type { Upstream } from './upstreams.js';

export const INSTANCE_HEADER = 'x-yggdrasil-instance';

export type ForwardOutcome =
  /** The instance answered (any status); `status` is what the client got. */
  | { kind: 'response'; status: number }
  /** Nothing reached the instance (connection refused/reset before sending): safe to retry. */
  | { kind: 'unreached'; error: Error }
  /** The instance was reached but failed before a complete answer. */
  | { kind: 'failed'; error: Error; timeout: boolean; headersSent: boolean }
  /** The client went away first. */
  | { kind: 'aborted' };

export interface ForwardRequest {
  req: IncomingMessage;
  res: ServerResponse;
  path: string;
  headers: Record<string, string | string[]>;
  /** Body to send: the client's request stream, or nothing for GET/HEAD. */
  body: Readable | Buffer | null;
  timeoutMs: number;
  /** Extra response headers (set before the instance's headers are written). */
  responseHeaders?: Record<string, string>;
}

// Errors raised before any byte of the request left for the instance. A reset after connecting is
// not here: the instance may have read (and acted on) the request.
const UNREACHED_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

function classify(err: Error & { code?: string }, headersSent: boolean): ForwardOutcome {
  const code = err.code ?? '';
  if (!headersSent && UNREACHED_CODES.has(code)) return { kind: 'unreached', error: err };
  const timeout = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
  return { kind: 'failed', error: err, timeout, headersSent };
}

/**
 * The smallest abort signal undici accepts (an EventTarget-shaped object): one plain object per
 * request instead of an AbortController, its AbortSignal and their event machinery (measured: ~4 % of
 * the router's CPU per request).
 */
class RequestSignal {
  aborted = false;
  reason: unknown = undefined;
  private listener: (() => void) | undefined;

  addEventListener(_type: 'abort', listener: () => void): void {
    this.listener = listener;
  }

  removeEventListener(): void {
    this.listener = undefined;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.listener?.();
  }
}

export function forward(up: Upstream, f: ForwardRequest): Promise<ForwardOutcome> {
  return new Promise((resolve) => {
    const { req, res } = f;
    const ac = new RequestSignal();
    let headersSent = false;
    let settled = false;
    const onClose = () => {
      if (!res.writableFinished) ac.abort();
    };
    res.once('close', onClose);
    const done = (o: ForwardOutcome) => {
      if (settled) return;
      settled = true;
      res.off('close', onClose);
      resolve(o);
    };
    const opts: Dispatcher.RequestOptions = {
      path: f.path,
      method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
      headers: f.headers,
      body: f.body,
      signal: ac as unknown as AbortSignal,
      headersTimeout: f.timeoutMs,
      bodyTimeout: f.timeoutMs,
    };
    up.pool.stream(
      opts,
      ({ statusCode, headers }) => {
        headersSent = true;
        const out = downstreamHeaders(headers as Record<string, string | string[] | undefined>);
        out[INSTANCE_HEADER] = up.id;
        if (f.responseHeaders) Object.assign(out, f.responseHeaders);
        res.writeHead(statusCode, out);
        return res;
      },
      (err) => {
        if (!err) return done({ kind: 'response', status: res.statusCode });
        if (ac.aborted) return done({ kind: 'aborted' });
        done(classify(err as Error & { code?: string }, headersSent));
      },
    );
  });
}
