// The request body handed to undici. It starts reading the client's stream only when undici first asks
// for data, i.e. once a connection to the instance is open: if connecting fails, the client's stream is
// untouched and the request can be retried elsewhere with its whole body. That first read is also when
// a client waiting on `Expect: 100-continue` is told to go on. The body is bounded in size (413 past
// MAX_BODY_BYTES, for bodies without Content-Length) and in time (408 when the client has not sent it
// all within CLIENT_BODY_TIMEOUT_MS of the first read), so a slow upload cannot hold a slot for long.
import { Readable } from 'node:stream';
import type { Deadline, Deadlines } from '../core/deadlines.js';
import { YggError } from '../core/errors.js';
import { clientTimeout } from '../core/http.js';

export interface LazyBodyOptions {
  maxBytes: number;
  /** Longest time from the first read to the end of the body. */
  timeoutMs: number;
  /** Where the deadline is kept (one timer for every body). */
  deadlines: Deadlines;
  /** Called once, at the first read (send 100 Continue). */
  onStart?: () => void;
}

export interface LazyBody {
  stream: Readable;
  /** True once any byte was pulled from the source: from then on the request has reached an instance. */
  started(): boolean;
  /** Why the body failed on the client's side (too large, too slow, cut off), if it did. */
  failure(): Error | undefined;
}

export function lazyBody(source: Readable, opts: LazyBodyOptions): LazyBody {
  let started = false;
  let seen = 0;
  let failure: Error | undefined;
  let timer: Deadline | undefined;
  const fail = (err: Error) => {
    failure ??= err;
    stream.destroy(err);
  };
  const onData = (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > opts.maxBytes) {
      fail(
        new YggError('YGG_ERR_BODY_TOO_LARGE', `request body exceeds MAX_BODY_BYTES=${opts.maxBytes}`, {
          details: { limitBytes: opts.maxBytes },
        }),
      );
      return;
    }
    if (!stream.push(chunk)) source.pause();
  };
  const onEnd = () => {
    timer?.cancel();
    stream.push(null);
  };
  const onError = (err: Error) => fail(err);
  const stream = new Readable({
    read() {
      if (!started) {
        started = true;
        opts.onStart?.();
        timer = opts.deadlines.after(opts.timeoutMs, () => fail(clientTimeout(opts.timeoutMs)));
        source.on('data', onData);
        source.once('end', onEnd);
        source.once('error', onError);
      }
      source.resume();
    },
    destroy(err, done) {
      timer?.cancel();
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
      if (started) source.pause();
      done(err);
    },
  });
  return { stream, started: () => started, failure: () => failure };
}
