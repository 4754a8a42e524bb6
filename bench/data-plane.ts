// The data plane's promises (issue 9), measured on `yggdrasil start` in a child process, now and, where
// the baseline tree can be built, before (bench/baseline.ts): slots still held after 1000 clients
// pipelined behind an unfinished request and hung up; and the time from an agent going bad (healthy but
// hanging, or frozen) to its ejection, with the defaults. Run alone: npx tsx bench/data-plane.ts [--quick]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool, request } from 'undici';
import { countingAgent } from '../test/helpers/agents.js';
import { prepareBaseline } from './baseline.js';
import { type PlatformProcess, startPlatformProcess } from './procs.js';
import type { BenchSection } from './section.js';
import { median, round } from './stats.js';

interface Tree {
  name: string;
  tree?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function inflightSum(p: PlatformProcess): Promise<number> {
  const text = await (await request(`${p.lbUrl}/metrics`)).body.text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('yggdrasil_router_inflight_requests{'))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** A client that pipelines two GETs behind a slow POST, then hangs up before any answer. */
function abandon(port: number): Promise<void> {
  return new Promise((resolve) => {
    const body = JSON.stringify({ id: 'abandoned', workMs: 200 });
    const s = connect(port, '127.0.0.1', () => {
      s.write(
        `POST /process HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
          'GET /api/a HTTP/1.1\r\nHost: lb\r\n\r\nGET /api/b HTTP/1.1\r\nHost: lb\r\n\r\n',
      );
      setTimeout(() => s.destroy(), 30);
    });
    s.on('error', () => {});
    s.once('close', () => resolve());
  });
}

async function abandonedSlots(t: Tree, connections: number) {
  const p = await startPlatformProcess(
    { MIN_INSTANCES: '3', MAX_INSTANCES: '3', AGENT_COMMAND: countingAgent({}), QUEUE_TIMEOUT_MS: '2000' },
    [],
    t.tree,
  );
  try {
    const port = Number(new URL(p.lbUrl).port);
    for (let done = 0; done < connections; done += 100) {
      await Promise.all(Array.from({ length: Math.min(100, connections - done) }, () => abandon(port)));
    }
    // Give every honest request time to end (POST 200 ms, queue 2 s), then read what is still held.
    const deadline = Date.now() + 10_000;
    let held = await inflightSum(p);
    while (held > 0 && Date.now() < deadline) {
      await sleep(200);
      held = await inflightSum(p);
    }
    let served = 0;
    const tries = 30;
    await Promise.all(
      Array.from({ length: tries }, async () => {
        const res = await request(`${p.lbUrl}/api/after`, { headersTimeout: 15_000 }).catch(() => undefined);
        await res?.body.dump();
        if (res?.statusCode === 200) served++;
      }),
    );
    return { held, served, tries };
  } finally {
    reportSurvivors(t, await p.kill()); // its watchdogs end its agents (the baseline has none)
  }
}

/** Agents a SIGKILLed platform left behind (the bench ended them): expected of a tree without watchdogs. */
function reportSurvivors(t: Tree, left: number): void {
  if (left > 0)
    console.error(`# ${t.name}: ${left} agent(s) outlived the SIGKILLed platform; the bench ended them`);
}

interface StatusEvents {
  events: Array<{ at: number; type: string; instance?: string; data?: { to?: string } }>;
  instances: Array<{ id: string; meta: { pid?: number } }>;
}

/** Time from agent-2 going bad to its breaker opening, under 200 req/s; undefined if not within capMs. */
async function ejectTime(t: Tree, kind: 'hung' | 'frozen', capMs: number): Promise<number | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'ygg-eject-'));
  const mode = join(dir, 'mode');
  const p = await startPlatformProcess(
    {
      MIN_INSTANCES: '3',
      MAX_INSTANCES: '3',
      AGENT_COMMAND: countingAgent({ MODE_FILE: mode }),
      SESSION_AFFINITY: 'false',
    },
    [],
    t.tree,
  );
  const load = new Pool(p.lbUrl, { connections: 256 });
  let running = true;
  const traffic = (async () => {
    const pending: Array<Promise<unknown>> = [];
    while (running) {
      pending.push(
        load
          .request({ path: '/api/load', method: 'GET', headersTimeout: 600_000 })
          .then((r) => r.body.dump())
          .catch(() => {}),
      );
      await sleep(5);
    }
    return pending.length;
  })();
  try {
    await sleep(3000); // a history of answers
    const status = async () =>
      (await (await request(`${p.controllerUrl}/status`)).body.json()) as StatusEvents;
    const faultAt = Date.now();
    if (kind === 'hung') writeFileSync(mode, 'agent-2 hang\n');
    else {
      const pid = (await status()).instances.find((i) => i.id === 'agent-2')?.meta.pid;
      if (pid) process.kill(pid, 'SIGSTOP');
    }
    while (Date.now() - faultAt < capMs) {
      const opened = (await status()).events.find(
        (e) => e.type === 'breaker' && e.instance === 'agent-2' && e.data?.to === 'open' && e.at >= faultAt,
      );
      if (opened) return opened.at - faultAt;
      await sleep(50);
    }
    return undefined;
  } finally {
    running = false;
    await traffic;
    reportSurvivors(t, await p.kill()); // the watchdogs end its agents, the frozen one included
    await load.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(opts: { quick: boolean }): Promise<BenchSection[]> {
  const baseline = opts.quick ? undefined : prepareBaseline();
  const trees: Tree[] = [
    { name: 'now' },
    ...(baseline ? [{ name: `before (${baseline.commit})`, tree: baseline.tree }] : []),
  ];
  try {
    const connections = opts.quick ? 200 : 1000;
    const slots = [];
    for (const t of trees) slots.push({ tree: t.name, ...(await abandonedSlots(t, connections)) });
    const runs = opts.quick ? 1 : 3;
    const capMs = 15_000;
    const eject: Array<Record<string, string | number>> = [];
    const figures: Record<string, number> = {};
    for (const kind of ['hung', 'frozen'] as const) {
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const ms = await ejectTime(trees[0]!, kind, capMs);
        if (ms !== undefined) times.push(ms);
      }
      const before = baseline ? await ejectTime(trees[1]!, kind, capMs) : undefined;
      figures[`${kind}EjectMedianMs`] = times.length ? median(times) : capMs;
      figures[`${kind}EjectedRuns`] = times.length;
      eject.push({
        agent: kind === 'hung' ? 'healthy but hanging (MODE_FILE hang)' : 'frozen (SIGSTOP)',
        runs,
        'ejected (runs)': times.length,
        'median ms': times.length ? round(median(times), 0) : `> ${capMs}`,
        'max ms': times.length ? round(Math.max(...times), 0) : `> ${capMs}`,
        before: baseline
          ? before === undefined
            ? `not within ${capMs / 1000} s`
            : `${round(before, 0)} ms`
          : '–',
      });
    }
    const now = slots[0]!;
    return [
      {
        title: 'Slots after abandoned pipelined requests',
        rows: slots.map((s) => ({
          router: s.tree,
          connections,
          'slots held after': s.held,
          'served after': `${s.served}/${s.tries}`,
        })),
        notes: [
          `${connections} clients, 100 at a time, each sends POST /process (200 ms of work) with two GETs pipelined behind it and hangs up 30 ms later; then the slots still counted in yggdrasil_router_inflight_requests once every honest request had time to end (goal 0), and 30 requests that must be served.`,
          '3 counting agents, MAX_CONCURRENCY=80 (240 slots). Before the fix each abandoned pipelined request kept its slot for good.',
        ],
        figures: { abandonedConnections: connections, slotsHeld: now.held, servedAfter: now.served },
      },
      {
        title: 'Ejecting a bad agent (defaults)',
        rows: eject,
        notes: [
          '3 counting agents under 200 req/s of GET; then agent-2 goes bad; time until its breaker opens (the router stops sending it requests), from /status events. Defaults: OUTLIER_STALL_MS=2000, HEALTH_CHECK_INTERVAL=30000, REQUEST_TIMEOUT_MS=300000, BREAKER_RESET_MS=30000 (a bad agent is replaced when still stalled at the end of that ejection; the tests show it with shorter settings). Goal: at most 5 s.',
          'Both kinds pass TCP connects; the hung one also passes its health checks, so only the router’s evidence (requests waiting for headers while it answers none) takes it out.',
        ],
        figures,
      },
    ];
  } finally {
    baseline?.remove();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await run({ quick: process.argv.includes('--quick') }), null, 2));
}
