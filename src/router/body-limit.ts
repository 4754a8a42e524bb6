// Caps a streamed (chunked) request body at MAX_BODY_BYTES without buffering it: bytes pass through
// until the limit, then the stream fails with YGG_ERR_BODY_TOO_LARGE (the router answers 413).
import type { IncomingMessage } from 'node:http';
import { type Readable, Transform } from 'node:stream';
import { YggError } from '../core/errors.js';

export function limitBody(req: IncomingMessage, maxBytes: number): Readable {
  let seen = 0;
  const limiter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen > maxBytes) {
        done(
          new YggError('YGG_ERR_BODY_TOO_LARGE', `request body exceeds MAX_BODY_BYTES=${maxBytes}`, {
            details: { limitBytes: maxBytes },
          }),
        );
        return;
      }
      done(null, chunk);
    },
  });
  req.on('error', (err) => limiter.destroy(err));
  return req.pipe(limiter);
}
