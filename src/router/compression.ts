// COMPRESSION=on: which answers the router compresses, and how. Brotli or gzip, whichever the client
// ranks higher in Accept-Encoding (brotli on a tie), for an answer with a compressible type and a
// Content-Length of at least COMPRESSION_MIN_BYTES. Never for server-sent events (each event must reach
// the client when sent), an answer the agent encoded already, a HEAD, a 204/206/304, or one marked
// Cache-Control: no-transform. Pure: the router's adapter (response-shaping.ts) runs the zlib streams.

export type Encoding = 'br' | 'gzip';

type Headers = Record<string, string | string[]>;

const COMPRESSIBLE =
  /^(?:text\/(?!event-stream)[\w.+-]+|application\/(?:[\w.-]+\+)?(?:json|xml)|application\/(?:javascript|ecmascript|x-javascript|wasm)|image\/svg\+xml)\s*(?:;|$)/;

/** One coding and its weight from an Accept-Encoding list (absent: 0; `*` stands in for the rest). */
function weights(accept: string): { br: number; gzip: number } {
  let br: number | undefined;
  let gzip: number | undefined;
  let any: number | undefined;
  for (const part of accept.split(',')) {
    const [rawName, ...params] = part.split(';');
    const name = rawName!.trim().toLowerCase();
    if (name === '') continue;
    let q = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*$/i.exec(p);
      if (m) q = Number(m[1]);
    }
    if (name === 'br') br = q;
    else if (name === 'gzip' || name === 'x-gzip') gzip = Math.max(gzip ?? 0, q);
    else if (name === '*') any = q;
  }
  return { br: br ?? any ?? 0, gzip: gzip ?? any ?? 0 };
}

/** The coding to use for a client's Accept-Encoding, if it accepts one the router makes. */
export function negotiateEncoding(accept: string | undefined): Encoding | undefined {
  if (!accept) return undefined;
  const w = weights(accept);
  if (w.br <= 0 && w.gzip <= 0) return undefined;
  return w.br >= w.gzip ? 'br' : 'gzip';
}

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v.join(', ') : v);

/** Whether a type is worth compressing (text, JSON, XML, JavaScript, SVG, WebAssembly; not SSE). */
export function compressibleType(contentType: string | undefined): boolean {
  return contentType !== undefined && COMPRESSIBLE.test(contentType.toLowerCase().trimStart());
}

export interface CompressionAsk {
  method: string;
  status: number;
  /** The client's Accept-Encoding. */
  accept: string | undefined;
  /** The agent's answer headers (lower-case names). */
  headers: Headers;
  minBytes: number;
}

/** The coding this answer gets on its way to the client, or undefined to pass it through as it is. */
export function encodingFor(ask: CompressionAsk): Encoding | undefined {
  const { headers: h, status } = ask;
  if (ask.method === 'HEAD' || status < 200 || status === 204 || status === 206 || status === 304) {
    return undefined;
  }
  const encoded = one(h['content-encoding']);
  if (encoded !== undefined && encoded.trim().toLowerCase() !== 'identity') return undefined;
  const length = Number(one(h['content-length']) ?? Number.NaN);
  if (!(length >= ask.minBytes)) return undefined;
  if (!compressibleType(one(h['content-type']))) return undefined;
  if (/(?:^|,)\s*no-transform\s*(?:,|$)/i.test(one(h['cache-control']) ?? '')) return undefined;
  return negotiateEncoding(ask.accept);
}

/** Rewrites answer headers for a body sent in `encoding`: no length, the coding, Vary, a weak ETag. */
export function encodedHeaders(h: Headers, encoding: Encoding): Headers {
  delete h['content-length'];
  h['content-encoding'] = encoding;
  const vary = one(h.vary);
  if (vary === undefined || vary.trim() === '') h.vary = 'accept-encoding';
  else if (!/(?:^|,)\s*(?:accept-encoding|\*)\s*(?:,|$)/i.test(vary)) h.vary = `${vary}, accept-encoding`;
  // The bytes differ from the agent's: a strong validator of them would be a lie (nginx does the same).
  const etag = one(h.etag);
  if (etag !== undefined && !etag.startsWith('W/')) h.etag = `W/${etag}`;
  return h;
}
