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
 * none (an HTTP/1.0 client may send none; HTTP/1.1 requires one).
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
    if (typeof v === 'string') text += `${name}: ${v}\r\n`;
    else for (const one of v) text += `${name}: ${one}\r\n`;
  }
  if (!sawHost) text += `host: ${host}\r\n`;
  if (framing.kind === 'length') text += `content-length: ${framing.bytes}\r\n`;
  else if (framing.kind === 'chunked') text += 'transfer-encoding: chunked\r\n';
  return `${text}\r\n`;
}
