// Forwards one request to one instance on its upstream pool (h1/upstream-pool.ts), writing the answer
// straight into the client's response (no buffering either way), and reports how it ended (attribution.ts says who is to
// blame). A client that goes away aborts the upstream request. The caller holds the slot (a Lease) and
// releases it once this resolves; this module only reports the answer's start for the stall detector.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import { classify, type ForwardOutcome } from './attribution.js';
import { downstreamHeaders } from './headers.js';
import type { Lease } from './slot-pool.js';

export type { ForwardOutcome };

export const INSTANCE_HEADER = 'x-yggdrasil-instance';

export interface ForwardRequest {
  req: IncomingMessage;
  res: ServerResponse;
  /** Origin-form target (path and query) to send. */
  path: string;
  headers: Record<string, string | string[]>;
  /** Body to send: a buffered body, the client's stream (lazy), or nothing. */
  body: Readable | Buffer | null;
  /** Why a streamed body failed on the client's side, if it did. */
  bodyError?: (() => Error | undefined) | undefined;
  timeoutMs: number;
  /** Extra response headers (set before the instance's headers are written). */
  responseHeaders?: Record<string, string> | undefined;
  /** A session cookie the router issues with this answer, beside any the instance sets. */
  setCookie?: string | undefined;
  /** performance.now() when the request arrived (passed back to onHeaders). */
  started: number;
  /** Called when the instance's answer starts (its status and headers are written to the client). */
  onHeaders?: ((instance: string, status: number, started: number) => void) | undefined;
  /** Compression and the response cache (response-shaping.ts), when either is on for this request. */
  shape?: AnswerShaper | undefined;
}

/**
 * Where an answer's body goes instead of the response itself. When it returns another stream than
 * `res`, that stream writes the head (it may rewrite the headers, or wait for the body's length).
 */
export interface AnswerShaper {
  sink(res: ServerResponse, status: number, headers: Record<string, string | string[]>): Writable;
}

export function forward(lease: Lease, f: ForwardRequest): Promise<ForwardOutcome> {
  return new Promise((resolve) => {
    const { req, res } = f;
    const up = lease.up;
    let headersSent = false;
    let aborted = false;
    let settled = false;
    const onClose = () => {
      if (res.writableFinished) return;
      aborted = true;
      exchange.abort();
    };
    res.once('close', onClose);
    const exchange = up.pool.dispatch(
      {
        path: f.path,
        method: req.method ?? 'GET',
        headers: f.headers,
        body: f.body,
        headersTimeoutMs: f.timeoutMs,
        bodyTimeoutMs: f.timeoutMs,
      },
      {
        onHead(statusCode, headers, connectionNames) {
          headersSent = true;
          lease.responded();
          // The pool's headers are the answer's own already (no hop-by-hop ones): forwarded as they are.
          const out = connectionNames.length === 0 ? headers : downstreamHeaders(headers, connectionNames);
          out[INSTANCE_HEADER] = up.id;
          if (f.responseHeaders) Object.assign(out, f.responseHeaders);
          if (f.shape) {
            // The cache judges the instance's own headers: the router's cookie is not the answer's
            // (an answer that sets its own is not stored anyway).
            if (f.setCookie) {
              if (out['set-cookie'] === undefined) res.setHeader('set-cookie', f.setCookie);
              else out['set-cookie'] = withCookie(out['set-cookie'], f.setCookie);
            }
            const sink = f.shape.sink(res, statusCode, out);
            if (sink === res) res.writeHead(statusCode, out);
            f.onHeaders?.(up.id, statusCode, f.started);
            return sink;
          }
          // One object to writeHead and no setHeader before it: Node's fast path for the head.
          if (f.setCookie) out['set-cookie'] = withCookie(out['set-cookie'], f.setCookie);
          res.writeHead(statusCode, out);
          f.onHeaders?.(up.id, statusCode, f.started);
          return res;
        },
        onDone(err) {
          if (settled) return;
          settled = true;
          res.off('close', onClose);
          if (!err) return resolve({ kind: 'response', status: res.statusCode });
          if (aborted) return resolve({ kind: 'aborted' });
          resolve(classify(err, { headersSent, bodyError: f.bodyError?.() }));
        },
      },
    );
  });
}

/** The instance's Set-Cookie values with the router's own added. */
function withCookie(prior: string | string[] | undefined, cookie: string): string | string[] {
  if (prior === undefined) return cookie;
  return Array.isArray(prior) ? [...prior, cookie] : [prior, cookie];
}
