// Small helpers shared by every HTTP adapter: JSON answers, the error body, and bounded body reading.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Deadlines } from './deadlines.js';
import { YggError } from './errors.js';

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export function sendError(res: ServerResponse, err: YggError, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  const extra = { ...headers };
  if (err.retryAfterSeconds !== undefined) extra['retry-after'] = String(err.retryAfterSeconds);
  sendJson(res, err.status, err.toBody(), extra);
}

/**
 * Reads a request body up to `limit` bytes. Refuses early on a Content-Length over the limit,
 * and stops reading (413) as soon as a chunked body passes it. With `deadline`, a body that has not
 * arrived whole within `deadline.ms` fails with YGG_ERR_CLIENT_TIMEOUT (408).
 */
export function readBody(
  req: IncomingMessage,
  limit: number,
  deadline?: { ms: number; clock: Deadlines },
): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(tooLarge(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    const fail = (err: Error) => {
      if (failed) return;
      failed = true;
      timer?.cancel();
      reject(err);
    };
    const timer = deadline?.clock.after(deadline.ms, () => fail(clientTimeout(deadline.ms)));
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        fail(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (failed) return;
      timer?.cancel();
      resolve(Buffer.concat(chunks, size));
    });
    req.on('error', fail);
  });
}

/** YGG_ERR_CLIENT_TIMEOUT (408): the body did not arrive within CLIENT_BODY_TIMEOUT_MS. */
export function clientTimeout(ms: number): YggError {
  return new YggError(
    'YGG_ERR_CLIENT_TIMEOUT',
    `the request body did not arrive within CLIENT_BODY_TIMEOUT_MS=${ms}`,
  );
}

function tooLarge(limit: number): YggError {
  return new YggError('YGG_ERR_BODY_TOO_LARGE', `request body exceeds the limit of ${limit} bytes`, {
    details: { limitBytes: limit },
  });
}

/** Parses a JSON body, mapping a syntax error to YGG_ERR_INVALID_JSON. An empty body is `{}`. */
export function parseJson(buf: Buffer): unknown {
  if (buf.length === 0) return {};
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new YggError('YGG_ERR_INVALID_JSON', `request body is not valid JSON: ${(err as Error).message}`);
  }
}

/** Reads one cookie from a Cookie header without a dependency (names are matched exactly). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    const value = part.slice(eq + 1).trim();
    try {
      return decodeURIComponent(value);
    } catch {
      return value; // not percent-encoded after all: take it as sent
    }
  }
  return undefined;
}
