// wrk (Debian's) as the closed-loop load generator: a POST with a JSON body (~100 bytes by default),
// or a GET with chosen headers; results read from a Lua `done` hook (requests, req/s, p50/p95/p99,
// errors, non-2xx, bytes read), pinned to its own core.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pinned } from './procs.js';

const exec = promisify(execFile);

export const BODY = JSON.stringify({ input: 'x'.repeat(86) }); // ~100 bytes on the wire

const script = (request: string) => `
${request}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    e.connect, e.read + e.write, e.timeout, e.status, summary.bytes))
end
`;

/** The Lua lines of one request: a POST of `body`, or a GET with `headers`. */
function requestLua(opts: { body?: string | undefined; get?: Record<string, string> | undefined }): string {
  if (opts.get) {
    return [
      'wrk.method = "GET"',
      ...Object.entries(opts.get).map(([k, v]) => `wrk.headers["${k}"] = "${v}"`),
    ].join('\n');
  }
  return `wrk.method = "POST"\nwrk.body = '${opts.body ?? BODY}'\nwrk.headers["Content-Type"] = "application/json"`;
}

export interface WrkResult {
  requests: number;
  rps: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Socket errors and timeouts. */
  errors: number;
  /** Answers with a status other than 2xx/3xx. */
  non2xx: number;
  /** Bytes read from the server (heads and bodies). */
  bytes: number;
}

const scripts = new Map<string, string>();

function scriptFor(request: string): string {
  let path = scripts.get(request);
  if (!path) {
    path = join(tmpdir(), `ygg-bench-${process.pid}-${scripts.size}.lua`);
    writeFileSync(path, script(request));
    scripts.set(request, path);
  }
  return path;
}

/** Runs wrk against `url`; `cpu` pins it to that core when taskset exists. */
export async function wrk(
  url: string,
  opts: {
    connections: number;
    seconds: number;
    cpu?: number;
    body?: string;
    /** A GET with these headers instead of the POST. */
    get?: Record<string, string>;
  },
): Promise<WrkResult> {
  const args = [
    '-t1',
    `-c${opts.connections}`,
    `-d${opts.seconds}s`,
    '--timeout',
    '10s',
    '-s',
    scriptFor(requestLua(opts)),
    url,
  ];
  const [cmd, argv] = pinned('wrk', args, opts.cpu);
  const { stdout } = await exec(cmd, argv);
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
  const [requests, durationUs, p50, p95, p99, max, connect, rw, timeout, status, bytes] = line
    .split(' ')
    .slice(1)
    .map(Number) as number[];
  return {
    requests: requests!,
    rps: requests! / (durationUs! / 1e6),
    p50Ms: p50! / 1000,
    p95Ms: p95! / 1000,
    p99Ms: p99! / 1000,
    maxMs: max! / 1000,
    errors: connect! + rw! + timeout!,
    non2xx: status!,
    bytes: bytes!,
  };
}
