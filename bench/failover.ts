// What a HAProxy crash costs with DATAPLANE=haproxy (issue 14): an open-loop load of POST /process at a
// fixed rate through LB_PORT, HAProxy SIGKILLed in the middle; the Node router takes the port, HAProxy is
// started again and takes it back. Counted: requests answered and failed, how long the Node router
// served, and whether any agent was restarted (none may be). Run alone: npx tsx bench/index.ts --only failover
import { request } from 'undici';
import { openLoop } from './open-loop.js';
import { startPlatformProcess } from './procs.js';
import type { BenchSection } from './section.js';

interface DataplaneStatus {
  pid: number;
  serving: 'haproxy' | 'node';
  servers: number;
}

async function statusOf(controllerUrl: string) {
  return (await (await request(`${controllerUrl}/status`)).body.json()) as {
    dataplane: DataplaneStatus;
    instances: Array<{ id: string; meta: { pid?: number } }>;
  };
}

const agentsOf = (s: Awaited<ReturnType<typeof statusOf>>) =>
  s.instances
    .map((i) => `${i.id}:${i.meta.pid}`)
    .sort()
    .join(',');

export async function run(opts: { quick: boolean }): Promise<BenchSection> {
  const rate = 500;
  const seconds = opts.quick ? 4 : 8;
  const killAtMs = 1500;
  const p = await startPlatformProcess({ DATAPLANE: 'haproxy', MIN_INSTANCES: '2', MAX_INSTANCES: '2' });
  try {
    for (;;) {
      const s = await statusOf(p.controllerUrl);
      if (s.dataplane.servers >= 2) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const before = await statusOf(p.controllerUrl);
    const timeline: { killedAt?: number; nodeAt?: number; backAt?: number } = {};
    const watch = (async () => {
      await new Promise((r) => setTimeout(r, killAtMs));
      process.kill(before.dataplane.pid, 'SIGKILL');
      timeline.killedAt = performance.now();
      for (let i = 0; i < 400 && timeline.backAt === undefined; i++) {
        const d = (await statusOf(p.controllerUrl).catch(() => undefined))?.dataplane;
        if (d?.serving === 'node') timeline.nodeAt ??= performance.now();
        if (d?.serving === 'haproxy' && d.pid !== before.dataplane.pid && d.servers >= 2) {
          timeline.backAt = performance.now();
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const load = await openLoop(`${p.lbUrl}/process`, { rate, seconds });
    await watch;
    const after = await statusOf(p.controllerUrl);
    const restarted = agentsOf(after) === agentsOf(before) ? 0 : 1;
    const ms = (a?: number, b?: number) => (a !== undefined && b !== undefined ? Math.round(b - a) : -1);
    const nodeServedMs = ms(timeline.nodeAt, timeline.backAt);
    // Which moment each failure belongs to (by when it was due): held by HAProxy when it died (due in
    // the second before the kill), sent while nothing listened (kill → the Node router serving), or
    // later (the Node router serving, and its handover back to HAProxy).
    const phase = (from: number | undefined, to: number | undefined) =>
      load.failedAt.filter((t) => (from === undefined || t >= from) && (to === undefined || t < to)).length;
    const beforeKill = phase(undefined, timeline.killedAt);
    const noListener = phase(timeline.killedAt, timeline.nodeAt);
    const afterNode = phase(timeline.nodeAt, undefined);
    const row = {
      load: `${rate} req/s for ${seconds} s, HAProxy SIGKILLed at ${killAtMs} ms`,
      sent: load.sent,
      answered: load.ok,
      failed: load.errors,
      'failed %': Math.round((load.errors / Math.max(1, load.sent)) * 10000) / 100,
      'kill → Node router serving (ms)': ms(timeline.killedAt, timeline.nodeAt),
      'Node router served (ms)': nodeServedMs,
      'failed: held at the kill / no listener / Node router and handover': `${beforeKill} / ${noListener} / ${afterNode}`,
      'agents restarted': restarted,
    };
    return {
      title: 'HAProxy failover (DATAPLANE=haproxy)',
      rows: [row],
      notes: [
        "Open loop (bench/open-loop.ts: each request on its schedule, whatever the answers do), POST /process to LB_PORT of `yggdrasil start` with DATAPLANE=haproxy and two reference agents. After the kill the Node router listens on the port until HAProxy is started again (200 ms later), on the router's own listening socket (bind fd@3): the router stops accepting only once HAProxy answers, so the handover back refuses nothing.",
        "What fails, by when it was due: requests HAProxy held when it was killed (their connections reset; due before the kill), those sent while nothing listened (between the kill and the Node router serving: the port is HAProxy's until it dies), and any later (the Node router serving, then the handover; goal 0). None was retried by the client here.",
      ],
      figures: {
        sent: load.sent,
        failed: load.errors,
        killToNodeMs: Math.max(0, ms(timeline.killedAt, timeline.nodeAt)),
        nodeServedMs: Math.max(0, nodeServedMs),
        failedAfterNode: afterNode,
        agentsRestarted: restarted,
      },
    };
  } finally {
    await p.stop();
  }
}
