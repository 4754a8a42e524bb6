// What the router does to an answer on its way back (both off by default): COMPRESSION=on compresses
// it (compression.ts decides; zlib's brotli at quality 4, gzip at level 4: in one call for answers up
// to 1 MiB, on the event loop up to 64 KiB as nginx does, streaming above), and
// RESPONSE_CACHE_BYTES keeps the GET answers an agent marks cacheable (cache-policy.ts decides,
// response-cache.ts stores) and answers the same request from memory until they expire. A stored
// answer is kept as the client got it (compressed), so a hit costs no compression. Each router has
// its own cache.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline, Transform, type TransformCallback, Writable } from 'node:stream';
import {
  brotliCompress,
  brotliCompressSync,
  constants,
  createBrotliCompress,
  createGzip,
  gzip,
  gzipSync,
} from 'node:zlib';
import { type CacheUse, cacheUseOf, storableOf } from './cache-policy.js';
import { type Encoding, encodedHeaders, encodingFor, negotiateEncoding } from './compression.js';
import { INSTANCE_HEADER } from './forward.js';
import { ResponseCache } from './response-cache.js';

export const CACHE_HEADER = 'x-yggdrasil-cache';

export interface ShapingOptions {
  /** COMPRESSION_MIN_BYTES when COMPRESSION=on; undefined = off. */
  compressMinBytes?: number | undefined;
  /** RESPONSE_CACHE_BYTES (0 or undefined = off). */
  cacheBytes?: number | undefined;
  now: () => number;
  counters: {
    compressed: (encoding: Encoding) => { inc(): void };
    cache: (result: 'hit' | 'miss' | 'stored') => { inc(): void };
  };
}

/** Copies the bytes going through, up to a limit, and hands them over when they all went. */
class Keep extends Transform {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly limit: number,
    private readonly onWhole: (body: Buffer) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.size <= this.limit) {
      this.size += chunk.length;
      if (this.size <= this.limit) this.chunks.push(chunk);
      else this.chunks = [];
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.size <= this.limit) this.onWhole(Buffer.concat(this.chunks, this.size));
    cb();
  }
}

const ignore = () => {};

/** Answers up to this size are compressed in one call once whole; larger ones as they stream. */
const WHOLE_MAX_BYTES = 1024 * 1024;

const brotliOptions = (length: number) => ({
  params: { [constants.BROTLI_PARAM_QUALITY]: 4, [constants.BROTLI_PARAM_SIZE_HINT]: length },
});
/**
 * Level 4: on 16 KiB of prose, 58 % of level 6's CPU for 8 % more bytes, about brotli 4's cost and size
 * (measured here; nginx's default is level 1).
 */
const GZIP_OPTIONS = { level: 4 };

/**
 * Answers up to this size are compressed on the event loop (under half a millisecond for 16 KiB here),
 * as nginx does in its worker. Handing them to zlib's thread pool cost 1.5× the CPU per answer, measured
 * (the hand-over and its wake-ups, with no core to spare while the agents share the machine); larger ones
 * still go there, so no answer holds the loop for long.
 */
export const INLINE_MAX_BYTES = 64 * 1024;

/** Compresses `body` in one call: inline when small (see INLINE_MAX_BYTES), else on zlib's thread pool. */
function compressOnce(
  encoding: Encoding,
  body: Buffer,
  done: (err: Error | null, out: Buffer) => void,
): void {
  if (body.length <= INLINE_MAX_BYTES) {
    let out: Buffer;
    try {
      out =
        encoding === 'gzip'
          ? gzipSync(body, GZIP_OPTIONS)
          : brotliCompressSync(body, brotliOptions(body.length));
    } catch (err) {
      done(err as Error, Buffer.alloc(0));
      return;
    }
    done(null, out);
    return;
  }
  if (encoding === 'gzip') gzip(body, GZIP_OPTIONS, done);
  else brotliCompress(body, brotliOptions(body.length), done);
}

function compressor(encoding: Encoding, length: number): Transform {
  return encoding === 'gzip' ? createGzip(GZIP_OPTIONS) : createBrotliCompress(brotliOptions(length));
}

/**
 * Collects an answer of a known, moderate length, compresses it in one call (compressOnce),
 * then writes the head with the compressed length and the body in one write, and ends `tail`. (It
 * costs the same CPU as a zlib stream, measured; what it buys is the Content-Length and, before the
 * head, the router's own error answer when the agent's body fails.)
 */
class CompressWhole extends Writable {
  private chunks: Buffer[] = [];
  private size = 0;
  private headWritten = false;

  constructor(
    private readonly encoding: Encoding,
    private readonly tail: Writable,
    /** Writes the answer's head, now that its length is known. */
    private readonly head: (bytes: number) => void,
  ) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    const body = Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    const done = (err: Error | null, out: Buffer) => {
      if (err) return cb(err);
      // The client left (or the agent's body failed) while zlib worked: nothing to write to.
      if (this.destroyed) return cb();
      this.headWritten = true;
      this.head(out.length);
      this.tail.end(out);
      cb();
    };
    compressOnce(this.encoding, body, done);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // Before the head: nothing reached the client, which the router can still answer with an error.
    if (err && this.headWritten) this.tail.destroy(err);
    cb(err);
  }
}

/** One request's part: what it may take from the cache, and the sink of its answer. */
export class ShapedRequest {
  constructor(
    private readonly shaping: ResponseShaping,
    private readonly req: IncomingMessage,
    private readonly url: string,
    private readonly use: CacheUse,
    /** The coding this client gets from the router, if compression is on and it takes one. */
    private readonly coding: Encoding | undefined,
  ) {}

  /** Answers from the cache when a fresh stored answer fits; true when it did. */
  answerFromCache(res: ServerResponse): boolean {
    const s = this.shaping;
    if (this.use !== 'use' || !s.cache) return false;
    const now = s.now();
    const a = s.cache.get(this.url, this.coding ?? 'identity', this.req.headers, now);
    s.counters.cache(a ? 'hit' : 'miss').inc();
    if (!a) return false;
    const headers: Record<string, string | string[]> = { ...a.headers };
    headers.age = String(Number(a.headers.age ?? 0) + Math.floor((now - a.storedAt) / 1000));
    headers[CACHE_HEADER] = 'hit';
    if (a.status !== 204) headers['content-length'] = String(a.body.length);
    res.writeHead(a.status, headers);
    res.end(a.body);
    return true;
  }

  /**
   * Where the agent's answer body goes: the client's response itself (its head is then the caller's
   * to write), or a compressor and a copy for the cache in front of it, which write the head
   * (rewritten to match) themselves.
   */
  sink(res: ServerResponse, status: number, headers: Record<string, string | string[]>): Writable {
    const s = this.shaping;
    const method = this.req.method ?? 'GET';
    const coding =
      this.coding &&
      encodingFor({
        method,
        status,
        accept: this.req.headers['accept-encoding'],
        headers,
        minBytes: s.minBytes!,
      });
    const store = this.use !== 'bypass' && s.cache ? storableOf(status, headers) : undefined;
    if (!coding && !store) return res; // the caller writes the head
    // Kept for any client only when no client would have got it compressed; else for this coding.
    const variant =
      coding ??
      (s.minBytes !== undefined &&
      encodingFor({ method, status, accept: 'br', headers, minBytes: s.minBytes })
        ? 'identity'
        : '*');
    const length = Number(headers['content-length'] ?? 0);
    if (coding) {
      encodedHeaders(headers, coding);
      s.counters.compressed(coding).inc();
    }
    let tail: Writable = res;
    if (store && s.cache) {
      const cache = s.cache;
      const stored = { ...headers };
      delete stored[INSTANCE_HEADER];
      headers[CACHE_HEADER] = 'miss';
      const storedAt = s.now();
      const keep = new Keep(cache.maxEntryBytes, (body) => {
        const answer = { status, headers: stored, body, storedAt, expiresAt: storedAt + store.ttlMs };
        if (cache.put(this.url, variant, store.vary, this.req.headers, answer, s.now())) {
          s.counters.cache('stored').inc();
        }
      });
      pipeline(keep, tail, ignore);
      tail = keep;
    }
    if (coding && length <= WHOLE_MAX_BYTES) {
      // The head waits for the compressed body: it goes out with its Content-Length, in one write.
      return new CompressWhole(coding, tail, (bytes) =>
        res.writeHead(status, { ...headers, 'content-length': bytes }),
      );
    }
    res.writeHead(status, headers);
    if (coding) {
      const z = compressor(coding, length);
      pipeline(z, tail, ignore);
      tail = z;
    }
    return tail;
  }
}

export class ResponseShaping {
  readonly cache: ResponseCache | undefined;
  readonly minBytes: number | undefined;
  readonly now: () => number;
  readonly counters: ShapingOptions['counters'];

  /** Undefined when both are off: the router's hot path then skips all of this. */
  static of(opts: ShapingOptions): ResponseShaping | undefined {
    if (opts.compressMinBytes === undefined && !opts.cacheBytes) return undefined;
    return new ResponseShaping(opts);
  }

  private constructor(opts: ShapingOptions) {
    this.minBytes = opts.compressMinBytes;
    this.cache = opts.cacheBytes ? new ResponseCache(opts.cacheBytes) : undefined;
    this.now = opts.now;
    this.counters = opts.counters;
  }

  /** A request's part (`cacheable`: false for a named instance's or a run's, which the cache never sees). */
  request(req: IncomingMessage, target: string, cacheable: boolean): ShapedRequest | undefined {
    const use = cacheable && this.cache ? cacheUseOf(req.method ?? 'GET', req.headers) : 'bypass';
    const coding =
      this.minBytes === undefined ? undefined : negotiateEncoding(req.headers['accept-encoding']);
    if (use === 'bypass' && coding === undefined) return undefined;
    return new ShapedRequest(this, req, `${req.headers.host ?? ''} ${target}`, use, coding);
  }
}
