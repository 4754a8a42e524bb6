// An open-loop load generator: requests are sent on a fixed schedule (rate per second) whatever the
// answers do, and latency is measured from the scheduled time, so a stall shows in the tail instead of
// slowing the load down (no coordinated omission).
import { execFileSync } from 'node:child_process';
import { Pool } from 'undici';
import { percentile } from '../src/core/stats.js';
import { canPin, LOADGEN_CPU } from './procs.js';
import { BODY } from './wrk.js';

/**
 * Runs `fn` with this process (every thread) on the load generators' core, as wrk is: the schedule
 * loop keeps a core busy, and on the servers' core it would be the servers' tail latency it adds.
 */
async function onLoadgenCore<T>(fn: () => Promise<T>): Promise<T> {
  if (!canPin()) return fn();
  const pid = String(process.pid);
  const mask = /mask: ([0-9a-f]+)/.exec(execFileSync('taskset', ['-p', pid], { encoding: 'utf8' }))?.[1];
  execFileSync('taskset', ['-a', '-p', '-c', String(LOADGEN_CPU), pid], { stdio: 'ignore' });
  try {
    return await fn();
  } finally {
    if (mask) execFileSync('taskset', ['-a', '-p', mask, pid], { stdio: 'ignore' });
  }
}

export interface OpenLoopResult {
  sent: number;
  ok: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  /** When each failed request was due (performance.now() of this process). */
  failedAt: number[];
}

export interface OpenLoopOptions {
  rate: number;
  seconds: number;
  /** Extra headers of the n-th request (a session id, say). */
  headers?: (n: number) => Record<string, string>;
}

export function openLoop(url: string, opts: OpenLoopOptions): Promise<OpenLoopResult> {
  return onLoadgenCore(() => schedule(url, opts));
}

async function schedule(url: string, opts: OpenLoopOptions): Promise<OpenLoopResult> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: 256, pipelining: 1 });
  const total = Math.round(opts.rate * opts.seconds);
  const interval = 1000 / opts.rate;
  const latencies: number[] = [];
  let ok = 0;
  let errors = 0;
  let sent = 0;
  const failedAt: number[] = [];
  const inflight: Array<Promise<void>> = [];
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (sent < total && t0 + sent * interval <= now) {
        const scheduled = t0 + sent * interval;
        const extra = opts.headers?.(sent);
        sent++;
        inflight.push(
          pool
            .request({
              path: u.pathname,
              method: 'POST',
              body: BODY,
              headers: extra
                ? { 'content-type': 'application/json', ...extra }
                : { 'content-type': 'application/json' },
            })
            .then(async (res) => {
              await res.body.dump();
              latencies.push(performance.now() - scheduled);
              if (res.statusCode < 400) ok++;
              else {
                errors++;
                failedAt.push(scheduled);
              }
            })
            .catch(() => {
              errors++;
              failedAt.push(scheduled);
            }),
        );
      }
      if (sent < total) setImmediate(tick);
      else resolve();
    };
    tick();
  });
  await Promise.all(inflight);
  await pool.close();
  return { sent, ok, errors, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), failedAt };
}
