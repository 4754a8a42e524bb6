// The head of a request the router sends to an instance: the request line, the headers as given
// (headers.ts has already dropped the hop-by-hop ones) and the body's framing, which is the router's to
// choose: a known length, chunked coding for a stream of unknown length, or none. Pure.

export type Framing =
  /** A body of this many bytes (a buffered body, or a stream with the client's Content-Length). */
  | { kind: 'length'; bytes: number }
  /** A stream of unknown length, sent in chunked coding. */
  | { kind: 'chunked' }
  /** No body and no framing header (GET, HEAD, DELETE without one). */
  | { kind: 'none' };

/** Methods whose empty body is still declared (`Content-Length: 0`), as undici and curl do. */
const DECLARES_EMPTY = new Set(['POST', 'PUT', 'PATCH']);

/** What may not be in a header value (RFC 9110 §5.5): it would end the line, or the head. */
const UNSAFE_VALUE = /[\r\n\0]/;

export class InvalidHeaderError extends Error {
  readonly code = 'UPSTREAM_INVALID_HEADER';
}

const NONE: Framing = { kind: 'none' };
const CHUNKED: Framing = { kind: 'chunked' };
const EMPTY: Framing = { kind: 'length', bytes: 0 };

/** The framing for a body: a buffer's length, a stream's declared length, else chunked. */
export function framingOf(
  method: string,
  body: Buffer | 'stream' | null,
  declared: string | string[] | undefined,
): Framing {
  if (body === null) return DECLARES_EMPTY.has(method) ? EMPTY : NONE;
  if (body !== 'stream') return { kind: 'length', bytes: body.length };
  const n = typeof declared === 'string' ? Number(declared) : Number.NaN;
  return Number.isSafeInteger(n) && n >= 0 ? { kind: 'length', bytes: n } : CHUNKED;
}

/**
 * The request line and headers, ending in the blank line. `host` is used only when the headers have
 * none (an HTTP/1.0 client may send none; HTTP/1.1 requires one). Node's parser keeps CR and LF out of
 * what a client sends, but not out of what the router derives from it (a session id decoded from its
 * cookie): a value holding one throws InvalidHeaderError rather than split the request.
 */
export function requestHead(
  method: string,
  path: string,
  headers: Record<string, string | string[]>,
  host: string,
  framing: Framing,
): string {
  let text = `${method} ${path} HTTP/1.1\r\n`;
  let sawHost = false;
  for (const name in headers) {
    if (name === 'content-length' || name === 'transfer-encoding') continue;
    if (name === 'host') sawHost = true;
    const v = headers[name]!;
    if (typeof v === 'string') text += `${name}: ${safe(name, v)}\r\n`;
    else for (const one of v) text += `${name}: ${safe(name, one)}\r\n`;
  }
  if (!sawHost) text += `host: ${host}\r\n`;
  if (framing.kind === 'length') text += `content-length: ${framing.bytes}\r\n`;
  else if (framing.kind === 'chunked') text += 'transfer-encoding: chunked\r\n';
  return `${text}\r\n`;
}

function safe(name: string, value: string): string {
  if (UNSAFE_VALUE.test(value)) throw new InvalidHeaderError(`the ${name} header holds a CR, LF or NUL`);
  return value;
}
