// Forwards one request to one instance on undici's pool.stream(), writing the answer straight into the
// client's response (no buffering either way), and reports how it ended (attribution.ts says who is to
// blame). A client that goes away aborts the upstream request. The caller holds the slot (a Lease) and
// releases it once this resolves; this module only reports the answer's start for the stall detector.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
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

export function forward(lease: Lease, f: ForwardRequest): Promise<ForwardOutcome> {
  return new Promise((resolve) => {
    const { req, res } = f;
    const up = lease.up;
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
        lease.responded();
        const out = downstreamHeaders(headers as Record<string, string | string[] | undefined>);
        out[INSTANCE_HEADER] = up.id;
        if (f.responseHeaders) Object.assign(out, f.responseHeaders);
        const sink = f.shape ? f.shape.sink(res, statusCode, out) : res;
        if (sink === res) res.writeHead(statusCode, out);
        f.onHeaders?.(up.id, statusCode, f.started);
        return sink;
      },
      (err) => {
        if (!err) return done({ kind: 'response', status: res.statusCode });
        if (ac.aborted) return done({ kind: 'aborted' });
        done(classify(err as Error & { code?: string }, { headersSent, bodyError: f.bodyError?.() }));
      },
    );
  });
}
