// An incremental HTTP/1.1 response parser for the router's upstream connections (h1/upstream-pool.ts):
// the status line and headers, then the body framed by Content-Length, chunked coding or the end of
// the connection (RFC 9112 §6), with 1xx interim answers skipped and no body after HEAD, 204 or 304.
// Pure: it is fed bytes and calls its handler; it never touches a socket or a clock. What it refuses
// (a malformed head, conflicting lengths, a bad chunk) ends the exchange as the instance's failure.
// Hop-by-hop headers (headers.ts) are read here and left out of the answer's headers, which are then
// ready to forward with no copy.
import { HOP_BY_HOP } from '../headers.js';

/** Response headers: lowercase names, a repeated header as an array (as undici and Node give them). */
export type ResponseHeaders = Record<string, string | string[]>;

export interface ResponseHead {
  status: number;
  /** The end-to-end headers: every header but the hop-by-hop ones. */
  headers: ResponseHeaders;
  /** Other names the Connection header lists (hop-by-hop too: the forwarder drops them). */
  connectionNames: readonly string[];
  /** The connection may carry another request after this answer. */
  keepAlive: boolean;
  /** The instance's `Keep-Alive: timeout=N`, in ms, when it sent one. */
  keepAliveMs: number | undefined;
}

export interface ResponseHandler {
  onHead(head: ResponseHead): void;
  /** A part of the body; `last`: it ends a body of known length (nothing follows). */
  onBody(chunk: Buffer, last: boolean): void;
  onEnd(): void;
}

export class ResponseParseError extends Error {
  readonly code = 'UPSTREAM_BAD_RESPONSE';
}

/** The largest head accepted (status line and headers), like Node's and undici's default. */
export const MAX_HEAD_BYTES = 16 * 1024;
const MAX_CHUNK_LINE = 4096;

enum State {
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkEnd,
  Trailers,
  UntilClose,
  Done,
}

const CRLF2 = Buffer.from('\r\n\r\n');
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Header names as sent → lowercased and checked. An instance sends the same few names on every
 * answer: a lookup spares a lowercase copy, a regex and the interning of a new property key each.
 */
const NAMES = new Map<string, string>();
const MAX_NAMES = 512;

function headerName(raw: string): string {
  const known = NAMES.get(raw);
  if (known !== undefined) return known;
  if (!TOKEN.test(raw))
    throw new ResponseParseError(`malformed header name: ${JSON.stringify(raw.slice(0, 80))}`);
  // A property key is interned: later compares and stores with it are a pointer's.
  const name = Object.keys({ [raw.toLowerCase()]: 0 })[0]!;
  if (NAMES.size < MAX_NAMES) NAMES.set(raw, name);
  return name;
}

/** A space or a tab (optional whitespace around a header value). */
const isOws = (c: number) => c === 32 || c === 9;

export class ResponseParser {
  private state = State.Head;
  private pending: Buffer | undefined;
  /** Bytes left of a Content-Length body or of the current chunk. */
  private remaining = 0;
  /** A chunk-size or trailer line split across reads. */
  private line = '';
  private noBody = false;
  /** Bytes that came after the answer's end (then the connection is not reused). */
  trailing = false;
  /** The answer's head allowed the connection's reuse. */
  keepAlive = false;

  constructor(private readonly handler: ResponseHandler) {}

  /** Readies the parser for the answer to a new request (`noBody`: it was a HEAD). */
  reset(noBody: boolean): void {
    this.state = State.Head;
    this.pending = undefined;
    this.remaining = 0;
    this.line = '';
    this.noBody = noBody;
    this.trailing = false;
    this.keepAlive = false;
  }

  /** Feeds bytes; throws ResponseParseError on a malformed answer. */
  execute(data: Buffer): void {
    let buf = data;
    let at = 0;
    while (at < buf.length) {
      switch (this.state) {
        case State.Head: {
          if (this.pending) {
            buf = Buffer.concat([this.pending, at === 0 ? buf : buf.subarray(at)]);
            at = 0;
            this.pending = undefined;
          }
          const end = buf.indexOf(CRLF2, at);
          if (end === -1) {
            if (buf.length - at > MAX_HEAD_BYTES) throw new ResponseParseError('response head too large');
            this.pending = at === 0 ? buf : buf.subarray(at);
            return;
          }
          if (end - at > MAX_HEAD_BYTES) throw new ResponseParseError('response head too large');
          const text = buf.toString('latin1', at, end);
          at = end + 4;
          this.head(text);
          break;
        }
        case State.Length: {
          const n = Math.min(this.remaining, buf.length - at);
          const chunk = at === 0 && n === buf.length ? buf : buf.subarray(at, at + n);
          at += n;
          this.remaining -= n;
          this.handler.onBody(chunk, this.remaining === 0);
          if (this.remaining === 0) this.finish();
          break;
        }
        case State.UntilClose:
          this.handler.onBody(at === 0 ? buf : buf.subarray(at), false);
          return;
        case State.ChunkSize:
        case State.Trailers: {
          const nl = buf.indexOf(10, at);
          const part = buf.toString('latin1', at, nl === -1 ? buf.length : nl + 1);
          at = nl === -1 ? buf.length : nl + 1;
          this.line += part;
          if (this.line.length > MAX_CHUNK_LINE) throw new ResponseParseError('chunk line too long');
          if (nl !== -1) this.chunkLine();
          break;
        }
        case State.ChunkData: {
          const n = Math.min(this.remaining, buf.length - at);
          this.handler.onBody(buf.subarray(at, at + n), false);
          at += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            this.state = State.ChunkEnd;
            this.remaining = 2;
          }
          break;
        }
        case State.ChunkEnd: {
          // The CRLF after a chunk's data, perhaps split across reads.
          const expect = this.remaining === 2 ? 13 : 10;
          if (buf[at] !== expect) throw new ResponseParseError('chunk not followed by CRLF');
          at++;
          if (--this.remaining === 0) this.state = State.ChunkSize;
          break;
        }
        case State.Done:
          this.trailing = true;
          return;
      }
    }
  }

  /**
   * The connection ended. A body delimited by the connection's end is complete; anything else still
   * expected is an error (the instance closed mid-answer), and so is an answer that never started.
   */
  close(): void {
    if (this.state === State.UntilClose) {
      this.finish();
      return;
    }
    if (this.state !== State.Done) {
      const err = new ResponseParseError(
        this.state === State.Head
          ? 'the instance closed the connection before answering'
          : 'the instance closed the connection mid-answer',
      );
      (err as { code: string }).code = 'UPSTREAM_CLOSED';
      throw err;
    }
  }

  private finish(): void {
    this.state = State.Done;
    this.handler.onEnd();
  }

  private head(text: string): void {
    const eol = text.indexOf('\r\n');
    const statusLine = eol === -1 ? text : text.slice(0, eol);
    const status = statusOf(statusLine);
    const http10 = statusLine.charCodeAt(7) === 48; // HTTP/1.0
    const headers: ResponseHeaders = {};
    let length: number | undefined;
    let chunked = false;
    let hasTe = false;
    let close = http10;
    let keepAliveMs: number | undefined;
    let connectionNames: string[] = NO_NAMES;
    for (let at = eol; at !== -1; ) {
      const from = at + 2;
      const next = text.indexOf('\r\n', from);
      const to = next === -1 ? text.length : next;
      at = next;
      const colon = text.indexOf(':', from);
      if (colon <= from || colon >= to) {
        throw new ResponseParseError(
          `malformed header line: ${JSON.stringify(text.slice(from, Math.min(to, from + 80)))}`,
        );
      }
      const name = headerName(text.slice(from, colon));
      let start = colon + 1;
      let end = to;
      while (start < end && isOws(text.charCodeAt(start))) start++;
      while (end > start && isOws(text.charCodeAt(end - 1))) end--;
      const value = text.slice(start, end);
      if (!HOP_BY_HOP.has(name)) {
        const prior = headers[name];
        if (prior === undefined) headers[name] = value;
        else if (typeof prior === 'string') headers[name] = [prior, value];
        else prior.push(value);
      }
      switch (name) {
        case 'content-length': {
          // Repeated identical values are allowed (RFC 9110 §8.6); different ones are not.
          const n = contentLength(value);
          if (length !== undefined && n !== length)
            throw new ResponseParseError('conflicting Content-Length');
          length = n;
          break;
        }
        case 'transfer-encoding':
          hasTe = true;
          chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
          break;
        case 'connection': {
          const v = value.toLowerCase();
          if (v.includes('close')) close = true;
          else if (http10 && v.includes('keep-alive')) close = false;
          if (v !== 'keep-alive' && v !== 'close') connectionNames = [...connectionNames, ...namesIn(v)];
          break;
        }
        case 'keep-alive': {
          const m = /timeout\s*=\s*(\d+)/i.exec(value);
          if (m) keepAliveMs = Number(m[1]) * 1000;
          break;
        }
      }
    }
    if (status < 200) {
      // An interim answer (100 Continue, 103 Early Hints): the final one follows on the connection.
      if (status === 101)
        throw new ResponseParseError('101 Switching Protocols to a request that asked for no upgrade');
      return;
    }
    // A Transfer-Encoding beside a Content-Length: the coding wins, and the connection is not reused.
    if (hasTe && length !== undefined) close = true;
    this.keepAlive = !close;
    const noBody = this.noBody || status === 204 || status === 304;
    this.handler.onHead({ status, headers, connectionNames, keepAlive: !close, keepAliveMs });
    if (noBody) {
      this.finish();
      return;
    }
    if (hasTe) {
      if (chunked) this.state = State.ChunkSize;
      else {
        this.state = State.UntilClose;
        this.keepAlive = false;
      }
    } else if (length !== undefined) {
      if (length === 0) this.finish();
      else {
        this.state = State.Length;
        this.remaining = length;
      }
    } else {
      this.state = State.UntilClose;
      this.keepAlive = false;
    }
  }

  private chunkLine(): void {
    const line = this.line;
    this.line = '';
    if (!line.endsWith('\r\n')) throw new ResponseParseError('chunk line not ended by CRLF');
    if (this.state === State.Trailers) {
      if (line === '\r\n') this.finish();
      return;
    }
    const semi = line.indexOf(';');
    const hex = (semi === -1 ? line.slice(0, -2) : line.slice(0, semi)).trim();
    if (!/^[0-9a-fA-F]{1,12}$/.test(hex))
      throw new ResponseParseError(`bad chunk size: ${JSON.stringify(hex.slice(0, 20))}`);
    const size = Number.parseInt(hex, 16);
    if (size === 0) this.state = State.Trailers;
    else {
      this.state = State.ChunkData;
      this.remaining = size;
    }
  }
}

const NO_NAMES: string[] = [];

/** The header names a Connection value lists, its own options (close, keep-alive) left out. */
function namesIn(value: string): string[] {
  return value
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '' && t !== 'close' && t !== 'keep-alive');
}

function statusOf(line: string): number {
  // HTTP-version SP status-code [SP reason-phrase]
  if (!line.startsWith('HTTP/1.') || line.length < 12 || line.charCodeAt(8) !== 32) {
    throw new ResponseParseError(`malformed status line: ${JSON.stringify(line.slice(0, 80))}`);
  }
  const code = line.slice(9, 12);
  if (!/^[1-5]\d\d$/.test(code) || (line.length > 12 && line.charCodeAt(12) !== 32)) {
    throw new ResponseParseError(`malformed status line: ${JSON.stringify(line.slice(0, 80))}`);
  }
  return Number(code);
}

const DIGITS = /^\d{1,15}$/;

function contentLength(value: string): number {
  if (DIGITS.test(value)) return Number(value);
  // "5, 5" is one length sent twice.
  const parts = value.split(',');
  let n: number | undefined;
  for (const p of parts) {
    const t = p.trim();
    if (!DIGITS.test(t))
      throw new ResponseParseError(`bad Content-Length: ${JSON.stringify(value.slice(0, 40))}`);
    const v = Number(t);
    if (n !== undefined && v !== n) throw new ResponseParseError('conflicting Content-Length');
    n = v;
  }
  return n!;
}
