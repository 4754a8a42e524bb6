// The request body handed to undici. It starts reading the client's stream only when undici first asks
// for data, i.e. once a connection to the instance is open: if connecting fails, the client's stream is
// untouched and the request can be retried elsewhere with its whole body. It also counts the bytes as
// they stream and fails with YGG_ERR_BODY_TOO_LARGE past MAX_BODY_BYTES (bodies without Content-Length).
import { Readable } from 'node:stream';
import { YggError } from '../core/errors.js';

export interface LazyBody {
  stream: Readable;
  /** True once any byte was pulled from the source: from then on the request has reached an instance. */
  started(): boolean;
}

export function lazyBody(source: Readable, maxBytes: number): LazyBody {
  let started = false;
  let seen = 0;
  const onData = (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > maxBytes) {
      stream.destroy(
        new YggError('YGG_ERR_BODY_TOO_LARGE', `request body exceeds MAX_BODY_BYTES=${maxBytes}`, {
          details: { limitBytes: maxBytes },
        }),
      );
      return;
    }
    if (!stream.push(chunk)) source.pause();
  };
  const onEnd = () => stream.push(null);
  const onError = (err: Error) => stream.destroy(err);
  const stream = new Readable({
    read() {
      if (!started) {
        started = true;
        source.on('data', onData);
        source.once('end', onEnd);
        source.once('error', onError);
      }
      source.resume();
    },
    destroy(err, done) {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
      if (started) source.pause();
      done(err);
    },
  });
  return { stream, started: () => started };
}
