// A minimal WebSocket endpoint for the reference agent (RFC 6455): GET /ws upgrades, greets with
// {agentId, instanceId, session} and echoes text and binary messages. Enough to prove that the router
// carries upgrades to the session's instance; real agents bring their own WebSocket library.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

/** Encodes one unmasked server frame (FIN set). */
export function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const head =
    len < 126 ? Buffer.from([0x80 | opcode, len]) : Buffer.from([0x80 | opcode, 126, len >> 8, len & 0xff]);
  if (len > 0xffff) throw new RangeError('frame too large for this minimal endpoint');
  return Buffer.concat([head, payload]);
}

/** Decodes the complete frames at the start of `buf`; returns them and the bytes left over. */
export function decodeFrames(buf: Buffer): {
  frames: Array<{ opcode: number; payload: Buffer }>;
  rest: Buffer;
} {
  const frames: Array<{ opcode: number; payload: Buffer }> = [];
  let at = 0;
  for (;;) {
    if (buf.length - at < 2) break;
    const opcode = buf[at]! & 0x0f;
    const masked = (buf[at + 1]! & 0x80) !== 0;
    let len = buf[at + 1]! & 0x7f;
    let off = at + 2;
    if (len === 126) {
      if (buf.length - off < 2) break;
      len = buf.readUInt16BE(off);
      off += 2;
    } else if (len === 127) {
      throw new RangeError('64-bit frame lengths are not supported by this minimal endpoint');
    }
    const maskLen = masked ? 4 : 0;
    if (buf.length - off < maskLen + len) break;
    const payload = Buffer.from(buf.subarray(off + maskLen, off + maskLen + len));
    if (masked) for (let i = 0; i < len; i++) payload[i]! ^= buf[off + (i % 4)]!;
    frames.push({ opcode, payload });
    at = off + maskLen + len;
  }
  return { frames, rest: buf.subarray(at) };
}

export function handleUpgrade(req: IncomingMessage, socket: Duplex, greeting: () => unknown): void {
  const key = req.headers['sec-websocket-key'];
  const path = (req.url ?? '/').split('?')[0];
  if (path !== '/ws' || req.headers.upgrade?.toLowerCase() !== 'websocket' || typeof key !== 'string') {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`,
  );
  socket.write(encodeFrame(0x1, Buffer.from(JSON.stringify(greeting()))));
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    let decoded: ReturnType<typeof decodeFrames>;
    try {
      decoded = decodeFrames(Buffer.concat([pending, chunk]));
    } catch {
      socket.destroy();
      return;
    }
    pending = Buffer.from(decoded.rest);
    for (const f of decoded.frames) {
      if (f.opcode === 0x8) {
        socket.end(encodeFrame(0x8, f.payload.subarray(0, 2)));
        return;
      }
      if (f.opcode === 0x9) socket.write(encodeFrame(0xa, f.payload));
      else if (f.opcode === 0x1 || f.opcode === 0x2) socket.write(encodeFrame(f.opcode, f.payload));
    }
  });
  socket.on('error', () => socket.destroy());
  socket.once('end', () => socket.destroy());
}
