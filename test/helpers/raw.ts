// Raw TCP for conformance tests: bytes exactly as a hostile or unusual client sends them, and the
// answers parsed just enough to assert on (status line, headers, body; several when pipelined).
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Opens a connection to 127.0.0.1:port and resolves once it is connected. */
export function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Sends `data`, then collects what comes back until the server closes the connection, `count`
 * complete responses have arrived, or `timeoutMs` passes. Resolves with the parsed responses.
 */
export async function exchange(
  port: number,
  data: string | Buffer,
  opts: { count?: number; timeoutMs?: number } = {},
): Promise<RawResponse[]> {
  const s = await open(port);
  const got = collect(s, opts);
  s.write(data);
  return got;
}

/** Collects responses on an open socket (see exchange); destroys the socket at the end. */
export function collect(
  s: Socket,
  opts: { count?: number; timeoutMs?: number } = {},
): Promise<RawResponse[]> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const finish = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(parseResponses(buf.toString('latin1')));
    };
    const timer = setTimeout(finish, opts.timeoutMs ?? 5000);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (opts.count !== undefined && parseResponses(buf.toString('latin1')).length >= opts.count) finish();
    });
    s.once('close', finish);
    s.once('error', () => {});
  });
}

/** Parses back-to-back HTTP/1.1 responses (Content-Length, chunked, or until the end); 1xx included. */
export function parseResponses(text: string): RawResponse[] {
  const out: RawResponse[] = [];
  let rest = text;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end === -1) break;
    const lines = rest.slice(0, end).split('\r\n');
    const status = Number(lines[0]!.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    rest = rest.slice(end + 4);
    let body = '';
    if (status < 200 || status === 204 || status === 304) {
      // no body
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (rest.length < n) break;
      body = rest.slice(0, n);
      rest = rest.slice(n);
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      let complete = false;
      for (;;) {
        const nl = rest.indexOf('\r\n');
        if (nl === -1) break;
        const size = Number.parseInt(rest.slice(0, nl), 16);
        if (size === 0) {
          rest = rest.slice(nl + 4);
          complete = true;
          break;
        }
        if (rest.length < nl + 2 + size + 2) break;
        body += rest.slice(nl + 2, nl + 2 + size);
        rest = rest.slice(nl + 2 + size + 2);
      }
      if (!complete) break;
    } else {
      body = rest;
      rest = '';
    }
    out.push({ status, headers, body });
  }
  return out;
}

export const portOf = (url: string) => Number(new URL(url).port);
