// One request and its answer on one upstream connection: the request written (head, then a buffered
// body in the same write, or a stream with backpressure), the answer parsed as it arrives and written
// into the sink its handler gives (backpressure the other way: a full sink pauses the socket), and
// exactly one onDone: undefined once the sink has finished, else the error that ended the exchange.
// The connection (h1/upstream-pool.ts) owns the socket; the exchange owns everything else of the request.
import { ServerResponse } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import { framingOf, requestHead } from './request-head.js';
import type { ResponseHead, ResponseHeaders } from './response-parser.js';

export interface UpstreamRequest {
  method: string;
  /** Origin-form target (path and query). */
  path: string;
  headers: Record<string, string | string[]>;
  /** A buffered body, a stream (read only once the connection is open), or nothing. */
  body: Readable | Buffer | null;
  /** Longest wait for the answer's head, counted from the request's end. */
  headersTimeoutMs: number;
  /** Longest silence between two parts of the answer's body. */
  bodyTimeoutMs: number;
}

export interface ExchangeHandler {
  /** The answer's head: returns where its body goes (it writes the head itself, or its sink does). */
  onHead(status: number, headers: ResponseHeaders, connectionNames: readonly string[]): Writable;
  /** The exchange ended: undefined when the answer was written whole and its sink finished. */
  onDone(err: UpstreamError | undefined): void;
}

export type UpstreamError = Error & { code?: string };

/** What the connection gives an exchange: the socket's writes, and the end of its turn. */
export interface ExchangeLink {
  write(data: string | Buffer, corkWith?: Buffer): boolean;
  onDrain(fn: () => void): void;
  pause(): void;
  resume(): void;
  /** The exchange is over; `reusable`: the connection may carry the next one. */
  release(reusable: boolean): void;
}

export function upstreamError(code: string, message: string): UpstreamError {
  const err: UpstreamError = new Error(message);
  err.code = code;
  return err;
}

const CRLF = '\r\n';
/** Bodies up to this size are sent as one string with their head (each way). */
const ONE_WRITE_BYTES = 16 * 1024;
const LAST_CHUNK = '0\r\n\r\n';

export class Exchange {
  /** When the current wait (connect, head, body silence) runs out (ms; Infinity: no wait). */
  deadline = Number.POSITIVE_INFINITY;
  /** Which wait the deadline is for (its error code). */
  private waiting = 'UPSTREAM_CONNECT_TIMEOUT';
  private link: ExchangeLink | undefined;
  private sink: Writable | undefined;
  private ended = false;
  private requestSent = false;
  private sinkPaused = false;
  /** The sink was ended with the body's last part. */
  private sinkEnded = false;
  private bodyStream: Readable | undefined;
  private bodyListeners: { data: (chunk: Buffer) => void; end: () => void } | undefined;
  private onSinkDrain: (() => void) | undefined;
  private onSinkFinish: (() => void) | undefined;
  private onSinkClose: (() => void) | undefined;
  private sent = 0;
  private declared = -1;
  private chunked = false;

  constructor(
    readonly req: UpstreamRequest,
    private readonly handler: ExchangeHandler,
    private readonly now: () => number,
    connectTimeoutMs: number,
  ) {
    this.deadline = now() + connectTimeoutMs;
  }

  /** The connection that carries this exchange (from before it is open: a timeout must close it). */
  attach(link: ExchangeLink): void {
    this.link = link;
  }

  /** The connection is open: send the request. */
  send(host: string): void {
    const link = this.link;
    if (this.ended || !link) return;
    const { req } = this;
    const body = req.body;
    const isBuffer = Buffer.isBuffer(body);
    const framing = framingOf(
      req.method,
      isBuffer ? body : body ? 'stream' : null,
      req.headers['content-length'],
    );
    let head: string;
    try {
      head = requestHead(req.method, req.path, req.headers, host, framing);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    if (isBuffer) {
      // A small body goes in the head's own write: one string, one send() (latin1 keeps every byte).
      if (body.length <= ONE_WRITE_BYTES) link.write(body.length ? head + body.toString('latin1') : head);
      else link.write(head, body);
      this.requestEnded();
      return;
    }
    link.write(head);
    if (!body) {
      this.requestEnded();
      return;
    }
    this.chunked = framing.kind === 'chunked';
    this.declared = framing.kind === 'length' ? framing.bytes : -1;
    this.bodyStream = body;
    this.waitFor('UPSTREAM_HEADERS_TIMEOUT', req.headersTimeoutMs);
    // Listeners are made only for what happens: most bodies are buffered, most sinks never fill.
    const listeners = {
      data: (chunk: Buffer) => this.onBodyData(chunk),
      end: () => this.onBodyEnd(),
    };
    this.bodyListeners = listeners;
    body.on('data', listeners.data);
    body.once('end', listeners.end);
    body.on('error', (err: Error) => this.fail(err));
  }

  private onBodyData(chunk: Buffer): void {
    const link = this.link!;
    this.sent += chunk.length;
    if (this.declared >= 0 && this.sent > this.declared) {
      this.fail(
        upstreamError(
          'UPSTREAM_CONTENT_LENGTH_MISMATCH',
          'the request body is longer than its Content-Length',
        ),
      );
      return;
    }
    // While the body flows, the wait for the answer starts again with each part sent.
    this.waitFor('UPSTREAM_HEADERS_TIMEOUT', this.req.headersTimeoutMs);
    let flowing: boolean;
    if (this.chunked) {
      const sized = link.write(`${chunk.length.toString(16)}${CRLF}`, chunk);
      flowing = link.write(CRLF) && sized;
    } else flowing = link.write(chunk);
    if (!flowing) {
      this.bodyStream!.pause();
      link.onDrain(() => this.bodyStream?.resume());
    }
  }

  private onBodyEnd(): void {
    if (this.ended) return;
    if (this.declared >= 0 && this.sent !== this.declared) {
      this.fail(
        upstreamError(
          'UPSTREAM_CONTENT_LENGTH_MISMATCH',
          'the request body is shorter than its Content-Length',
        ),
      );
      return;
    }
    if (this.chunked) this.link!.write(LAST_CHUNK);
    this.detachBody();
    this.requestEnded();
  }

  private detachBody(): void {
    const b = this.bodyStream;
    if (!b) return;
    this.bodyStream = undefined;
    const l = this.bodyListeners!;
    this.bodyListeners = undefined;
    b.off('data', l.data);
    b.off('end', l.end);
    // Its 'error' listener stays (a no-op once the exchange ended): a body that fails later, its client
    // gone or too slow, must not be an uncaught error.
    // Not all sent (an early answer, a failure): the rest is not read (the client's stream is let go).
    if (!b.readableEnded) b.destroy();
  }

  private requestEnded(): void {
    this.requestSent = true;
    if (!this.sink) this.waitFor('UPSTREAM_HEADERS_TIMEOUT', this.req.headersTimeoutMs);
  }

  private waitFor(code: string, ms: number): void {
    this.waiting = code;
    this.deadline = this.now() + ms;
  }

  // ---- the answer, from the connection's parser --------------------------------------------------

  onHead(head: ResponseHead): void {
    if (this.ended) return;
    let sink: Writable;
    try {
      sink = this.handler.onHead(head.status, head.headers, head.connectionNames);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    this.sink = sink;
    sink.on('error', this.onSinkError);
    // A client's response closing early is the caller's to see (it aborts); any other sink's is ours.
    if (!(sink instanceof ServerResponse)) {
      this.onSinkClose = () => {
        if (!sink.writableFinished) {
          this.fail(
            upstreamError('UPSTREAM_SINK_CLOSED', 'the answer was closed before it was written whole'),
          );
        }
      };
      sink.on('close', this.onSinkClose);
    }
    this.waitFor('UPSTREAM_BODY_TIMEOUT', this.req.bodyTimeoutMs);
  }

  onBody(chunk: Buffer, last: boolean): void {
    if (this.ended) return;
    this.deadline = this.now() + this.req.bodyTimeoutMs;
    const sink = this.sink!;
    if (last && sink instanceof ServerResponse && chunk.length <= ONE_WRITE_BYTES) {
      // The whole (or last) part to a client: as a string, Node sends it in one write with the head.
      this.sinkEnded = true;
      sink.end(chunk.toString('latin1'), 'latin1');
      return;
    }
    if (!sink.write(chunk) && !this.sinkPaused) {
      // The client is the slow one now: no wait runs against the instance until the sink drains.
      this.deadline = Number.POSITIVE_INFINITY;
      this.sinkPaused = true;
      this.link!.pause();
      this.onSinkDrain ??= () => {
        this.sinkPaused = false;
        if (this.link) this.deadline = this.now() + this.req.bodyTimeoutMs;
        this.link?.resume();
      };
      sink.once('drain', this.onSinkDrain);
    }
  }

  /** The answer is complete; `keepAlive`: its head and the parser allow the connection's reuse. */
  onEnd(keepAlive: boolean): void {
    if (this.ended) return;
    this.deadline = Number.POSITIVE_INFINITY;
    // An answer that came before the request's body was all sent: the rest is not sent.
    const whole = this.requestSent;
    this.detachBody();
    this.link!.release(keepAlive && whole);
    this.link = undefined;
    const sink = this.sink!;
    if (sink.writableFinished) this.finish(undefined);
    else {
      this.onSinkFinish = () => this.finish(undefined);
      sink.once('finish', this.onSinkFinish);
      if (!this.sinkEnded) sink.end();
    }
  }

  private readonly onSinkError = (err: Error): void => this.fail(err);

  // ---- endings -----------------------------------------------------------------------------------

  /** The wait ran out (the connection's sweep found the deadline passed). */
  timedOut(): void {
    const what =
      this.waiting === 'UPSTREAM_CONNECT_TIMEOUT'
        ? 'connecting'
        : this.waiting === 'UPSTREAM_HEADERS_TIMEOUT'
          ? 'waiting for the answer'
          : 'waiting for the rest of the answer';
    this.fail(upstreamError(this.waiting, `timed out ${what}`));
  }

  /** The caller gave up (its client left). */
  abort(): void {
    this.fail(upstreamError('UPSTREAM_ABORTED', 'the request was aborted'));
  }

  /**
   * Ends the exchange with `err`: the connection is not reused, and an answer already started is cut
   * (its sink destroyed), so a client never takes half an answer for a whole one.
   */
  fail(err: UpstreamError): void {
    if (this.ended) return;
    const link = this.link;
    this.link = undefined;
    this.detachBody();
    link?.release(false);
    const sink = this.sink;
    if (sink && !sink.writableFinished && !sink.destroyed) sink.destroy(err);
    this.finish(err);
  }

  private finish(err: UpstreamError | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.deadline = Number.POSITIVE_INFINITY;
    const sink = this.sink;
    if (sink) {
      // Its 'error' listener stays: a sink destroyed with an error still has someone to tell.
      if (this.onSinkClose) sink.off('close', this.onSinkClose);
      if (this.onSinkFinish) sink.off('finish', this.onSinkFinish);
      if (this.onSinkDrain) sink.off('drain', this.onSinkDrain);
    }
    this.handler.onDone(err);
  }
}
