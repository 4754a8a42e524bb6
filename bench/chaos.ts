// Chaos: `yggdrasil start` (a child process) with a pool of counting agents under a steady open-loop
// load (half POST /process with a unique id, half GET), while a random ready agent is SIGKILLed on a
// fixed schedule. Counts what a user cares about: requests that got no answer at all, POSTs that ran
// twice (from the agents' own log), errors, and time with no ready instance. The test suite runs a short
// version (test/conformance/chaos.test.ts); `npm run bench` the 60 s one. Run alone: npx tsx bench/chaos.ts
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, Pool, request } from 'undici';
import { countingAgent } from '../test/helpers/agents.js';
import { startPlatformProcess } from './procs.js';
import type { BenchSection } from './section.js';
import { median, round } from './stats.js';

export interface ChaosOptions {
  seconds: number;
  killEveryMs: number;
  /** Requests per second, on a fixed schedule. */
  rate: number;
  instances: number;
  maxConcurrency?: number;
}

export interface ChaosResult {
  sent: number;
  /** Answers by status; requests with no HTTP answer are in `lost`. */
  statuses: Record<string, number>;
  lost: number;
  errorPct: number;
  kills: number;
  /** POSTs whose id the agents logged more than once. */
  duplicatedPosts: number;
  /** POSTs answered 200 that the agents did not log exactly once. */
  inconsistentPosts: number;
  zeroReadyMs: number;
  minReady: number;
  /** Kill → the slot ready again with a new process, median. */
  refillMedianMs: number;
}

interface StatusView {
  instances: Array<{ id: string; state: string; meta: { pid?: number } }>;
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ygg-chaos-'));
  const countLog = join(dir, 'count.log');
  const platform = await startPlatformProcess({
    MIN_INSTANCES: String(o.instances),
    MAX_INSTANCES: String(o.instances),
    MAX_CONCURRENCY: String(o.maxConcurrency ?? 80),
    AGENT_COMMAND: countingAgent({ COUNT_LOG: countLog }),
    HEALTH_CHECK_INTERVAL: '1000',
  });
  const admin = new Agent({ connections: 2 });
  const load = new Pool(platform.lbUrl, { connections: 256 });
  const result: ChaosResult = {
    sent: 0,
    statuses: {},
    lost: 0,
    errorPct: 0,
    kills: 0,
    duplicatedPosts: 0,
    inconsistentPosts: 0,
    zeroReadyMs: 0,
    minReady: o.instances,
    refillMedianMs: 0,
  };
  const okPosts: string[] = [];
  const refills: number[] = [];
  const pendingKills = new Map<string, { at: number; pid: number }>();
  let last: StatusView = { instances: [] };
  let running = true;
  try {
    // Watcher: the pool as the controller sees it, every 20 ms.
    const watcher = (async () => {
      let prev = performance.now();
      while (running) {
        try {
          const res = await request(`${platform.controllerUrl}/status`, { dispatcher: admin });
          last = (await res.body.json()) as StatusView;
        } catch {
          // the platform is busy; keep the last view
        }
        const now = performance.now();
        const ready = last.instances.filter((i) => i.state === 'ready');
        result.minReady = Math.min(result.minReady, ready.length);
        if (ready.length === 0) result.zeroReadyMs += now - prev;
        prev = now;
        for (const [id, k] of pendingKills) {
          const inst = ready.find((i) => i.id === id);
          if (inst && inst.meta.pid !== k.pid) {
            refills.push(Date.now() - k.at);
            pendingKills.delete(id);
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    // Killer: a random ready agent, SIGKILL, on schedule.
    const killer = setInterval(() => {
      const ready = last.instances.filter(
        (i) => i.state === 'ready' && i.meta.pid && !pendingKills.has(i.id),
      );
      const victim = ready[Math.floor(Math.random() * ready.length)];
      if (!victim?.meta.pid) return;
      try {
        process.kill(victim.meta.pid, 'SIGKILL');
        result.kills++;
        pendingKills.set(victim.id, { at: Date.now(), pid: victim.meta.pid });
      } catch {}
    }, o.killEveryMs);
    // Load: open loop at o.rate.
    const total = Math.round(o.rate * o.seconds);
    const interval = 1000 / o.rate;
    const inflight: Array<Promise<void>> = [];
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      const tick = () => {
        const now = performance.now();
        while (result.sent < total && t0 + result.sent * interval <= now) {
          const n = result.sent++;
          const post = n % 2 === 0;
          const id = `c-${n}`;
          inflight.push(
            load
              .request(
                post
                  ? {
                      path: '/process',
                      method: 'POST',
                      body: JSON.stringify({ id, workMs: 20 }),
                      headers: { 'content-type': 'application/json' },
                      headersTimeout: 30_000,
                    }
                  : { path: `/api/chaos?n=${n}`, method: 'GET', headersTimeout: 30_000 },
              )
              .then(async (res) => {
                await res.body.dump();
                result.statuses[res.statusCode] = (result.statuses[res.statusCode] ?? 0) + 1;
                if (post && res.statusCode === 200) okPosts.push(id);
              })
              .catch(() => {
                result.lost++;
              }),
          );
        }
        if (result.sent < total) setTimeout(tick, Math.max(0, Math.min(5, interval)));
        else resolve();
      };
      tick();
    });
    clearInterval(killer);
    await Promise.all(inflight);
    running = false;
    await watcher;
  } finally {
    running = false;
    await load.close();
    await admin.close();
    await platform.stop();
  }
  const runs = new Map<string, number>();
  for (const line of readFileSync(countLog, 'utf8').split('\n')) {
    const id = line.split(' ')[0];
    if (id) runs.set(id, (runs.get(id) ?? 0) + 1);
  }
  rmSync(dir, { recursive: true, force: true });
  result.duplicatedPosts = [...runs.values()].filter((n) => n > 1).length;
  result.inconsistentPosts = okPosts.filter((id) => runs.get(id) !== 1).length;
  const failed =
    result.lost + Object.entries(result.statuses).reduce((a, [s, n]) => a + (Number(s) >= 400 ? n : 0), 0);
  result.errorPct = result.sent > 0 ? (100 * failed) / result.sent : 0;
  result.refillMedianMs = refills.length > 0 ? median(refills) : 0;
  return result;
}

export async function run(opts: { quick: boolean }): Promise<BenchSection> {
  const o: ChaosOptions = opts.quick
    ? { seconds: 6, killEveryMs: 500, rate: 300, instances: 3 }
    : { seconds: 60, killEveryMs: 2000, rate: 600, instances: 3 };
  const r = await runChaos(o);
  return {
    title: 'Chaos: an agent SIGKILLed on a schedule under load',
    rows: [
      {
        seconds: o.seconds,
        'kill every': `${o.killEveryMs} ms`,
        'req/s': o.rate,
        sent: r.sent,
        kills: r.kills,
        'no answer': r.lost,
        'errors %': round(r.errorPct, 3),
        'POSTs run twice': r.duplicatedPosts,
        's with 0 ready': round(r.zeroReadyMs / 1000, 2),
        'min ready': r.minReady,
        'kill → refilled (median ms)': round(r.refillMedianMs, 0),
      },
    ],
    notes: [
      `${o.instances} counting agents (test/fixtures/counting-agent.mjs, POST /process works 20 ms), MAX_CONCURRENCY=80, default restart policy; open-loop load, half POST /process with a unique id, half GET /api/chaos; a random ready agent gets SIGKILL every ${o.killEveryMs} ms.`,
      `Answers: ${Object.entries(r.statuses)
        .map(([s, n]) => `${n} × ${s}`)
        .join(
          ', ',
        )}. The errors are the requests in flight at a killed agent (502: they reached it, so they are not retried).`,
      '"POSTs run twice" counts ids the agents logged more than once (goal 0); "s with 0 ready" is the time /status showed no ready instance, sampled every 20 ms (goal 0).',
    ],
    figures: {
      sent: r.sent,
      kills: r.kills,
      lost: r.lost,
      errorPct: r.errorPct,
      duplicatedPosts: r.duplicatedPosts,
      inconsistentPosts: r.inconsistentPosts,
      zeroReadySeconds: r.zeroReadyMs / 1000,
      minReady: r.minReady,
      refillMedianMs: r.refillMedianMs,
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const section = await run({ quick: process.argv.includes('--quick') });
  console.log(JSON.stringify(section, null, 2));
}
