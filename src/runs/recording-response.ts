// Where a run's answer goes instead of a client's socket: the parts of a ServerResponse the router
// writes (writeHead, setHeader, write/end as a Writable, 'close' when it is cancelled), recorded in the
// run log. A full log refuses the write, which fails the stream and so aborts the upstream request.
import { Writable } from 'node:stream';
import type { RunLog } from './run-log.js';

export class RecordingResponse extends Writable {
  statusCode = 200;
  headersSent = false;
  /** The log had no room for the answer (RUN_LOG_MAX_BYTES). */
  full = false;
  private readonly pending: Record<string, string> = {};

  constructor(
    private readonly log: RunLog,
    readonly runId: string,
    private readonly now: () => number,
  ) {
    super();
  }

  setHeader(name: string, value: string | number | readonly string[]): this {
    this.pending[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
    return this;
  }

  getHeader(name: string): string | undefined {
    return this.pending[name.toLowerCase()];
  }

  writeHead(status: number, headers?: Record<string, string | number | readonly string[] | undefined>): this {
    this.statusCode = status;
    this.headersSent = true;
    const all: Record<string, string> = { ...this.pending };
    for (const [k, v] of Object.entries(headers ?? {})) {
      if (v === undefined) continue;
      all[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : String(v);
    }
    this.log.respond(this.runId, status, all);
    return this;
  }

  /** The router only tells a client that sent Expect: 100-continue; a run has none. */
  writeContinue(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.log.append(this.runId, chunk, this.now())) {
      cb();
      return;
    }
    this.full = true;
    cb(new Error('the run log is full (RUN_LOG_MAX_BYTES)'));
  }
}
