// Carries an HTTP Upgrade (WebSocket) from a client socket to an instance and pipes both ways until
// either side closes. The caller holds the instance's concurrency slot for the connection's life.

import type { IncomingMessage } from 'node:http';
import { request } from 'node:http';
import type { Duplex } from 'node:stream';
import type { YggError } from '../core/errors.js';
import { INSTANCE_HEADER } from './forward.js';
import type { Lease } from './slot-pool.js';

export type UpgradeOutcome =
  | { kind: 'upgraded' }
  | { kind: 'response'; status: number }
  | { kind: 'failed'; error: Error };

/** Writes a JSON error as a raw HTTP/1.1 answer on a socket that was never upgraded, then closes it. */
export function refuseSocket(socket: Duplex, err: YggError, extra: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  const body = JSON.stringify(err.toBody());
  const headers = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    connection: 'close',
    ...(err.retryAfterSeconds !== undefined ? { 'retry-after': String(err.retryAfterSeconds) } : {}),
    ...extra,
  };
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
  socket.end(`HTTP/1.1 ${err.status} ${err.code}\r\n${lines.join('\r\n')}\r\n\r\n${body}`);
}

function head(status: number, message: string, rawHeaders: string[], extra: Record<string, string>): string {
  let text = `HTTP/1.1 ${status} ${message}\r\n`;
  for (let i = 0; i < rawHeaders.length; i += 2) text += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
  for (const [k, v] of Object.entries(extra)) text += `${k}: ${v}\r\n`;
  return `${text}\r\n`;
}

/**
 * Resolves once the upgraded connection has closed (or the instance refused or failed). `headers` are
 * the upstream request headers (headers.ts); the Upgrade pair is added here.
 */
export function proxyUpgrade(
  lease: Lease,
  req: IncomingMessage,
  socket: Duplex,
  clientHead: Buffer,
  target: string,
  upstreamHeaders: Record<string, string | string[]>,
  responseHeaders: Record<string, string>,
): Promise<UpgradeOutcome> {
  return new Promise((resolve) => {
    const up = lease.up;
    const url = new URL(up.origin);
    const headers = {
      ...upstreamHeaders,
      connection: 'Upgrade',
      upgrade: String(req.headers.upgrade ?? ''),
    };
    const extra = { [INSTANCE_HEADER]: up.id, ...responseHeaders };
    const out = request({ host: url.hostname, port: url.port, path: target, method: req.method, headers });
    let settled = false;
    const done = (o: UpgradeOutcome) => {
      if (!settled) {
        settled = true;
        resolve(o);
      }
    };
    socket.once('close', () => out.destroy());
    out.on('upgrade', (res, upstream, upstreamHead) => {
      lease.responded();
      socket.write(head(101, res.statusMessage ?? 'Switching Protocols', res.rawHeaders, extra));
      if (upstreamHead.length > 0) socket.write(upstreamHead);
      if (clientHead.length > 0) upstream.write(clientHead);
      upstream.pipe(socket);
      socket.pipe(upstream);
      const close = () => {
        upstream.destroy();
        socket.destroy();
        done({ kind: 'upgraded' });
      };
      // Upgraded sockets are half-open capable; a WebSocket has no use for half-close, so either end ends both.
      upstream.once('close', close);
      socket.once('close', close);
      upstream.once('end', close);
      socket.once('end', close);
      upstream.on('error', close);
      socket.on('error', close);
    });
    out.on('response', (res) => {
      lease.responded();
      // The instance declined the upgrade: pass its answer on as is.
      socket.write(head(res.statusCode ?? 502, res.statusMessage ?? '', res.rawHeaders, extra));
      res.pipe(socket);
      res.once('close', () => done({ kind: 'response', status: res.statusCode ?? 502 }));
    });
    out.on('error', (error) => done({ kind: 'failed', error }));
    out.end();
  });
}
