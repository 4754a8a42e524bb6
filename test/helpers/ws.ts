// A raw WebSocket client for tests (Node 20 has none built in): handshake, read frames, send masked ones.
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { decodeFrames } from '../../src/agent/websocket.js';

export interface WsClient {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  next(): Promise<string>;
  send(text: string): void;
  close(): void;
}

export function connectWs(url: string, headers: Record<string, string> = {}): Promise<WsClient> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'),
        ...headers,
      },
    });
    req.on('response', (res) => reject(new Error(`no upgrade: HTTP ${res.statusCode}`)));
    req.on('error', reject);
    req.on('upgrade', (res, socket: Socket, head) => {
      const inbox: string[] = [];
      const waiting: Array<(s: string) => void> = [];
      let buf = Buffer.from(head);
      const push = (chunk: Buffer) => {
        const d = decodeFrames(Buffer.concat([buf, chunk]));
        buf = Buffer.from(d.rest);
        for (const f of d.frames) {
          const text = f.payload.toString('utf8');
          const w = waiting.shift();
          if (w) w(text);
          else inbox.push(text);
        }
      };
      socket.on('data', push);
      if (head.length > 0) push(Buffer.alloc(0));
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        next: () => new Promise((r) => (inbox.length > 0 ? r(inbox.shift()!) : waiting.push(r))),
        send(text) {
          const payload = Buffer.from(text);
          const mask = randomBytes(4);
          const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
          socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
        },
        close: () => socket.destroy(),
      });
    });
    req.end();
  });
}
