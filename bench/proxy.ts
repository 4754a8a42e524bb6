// Proxy benchmarks: the same agent measured directly (the ceiling), through the Yggdrasil router
// (concurrency limits and session affinity on) and through nginx (1 worker and auto, upstream
// keepalive), interleaved A B C D A B C D with medians; the latency the router adds at a fixed
// 1000 req/s (open loop); and an overload burst where nginx's max_conns refuses and the router queues.

import { spawn } from 'node:child_process';
import { median, round } from '../src/core/stats.js';
import { freePort } from '../src/runtime/free-port.js';
import { BEFORE_ISSUE_14, prepareBaseline } from './baseline.js';
import { startNginx } from './nginx.js';
import { type OpenLoopResult, openLoop } from './open-loop.js';
import {
  cpuSeconds,
  hasHaproxy,
  LOADGEN_CPU,
  pinned,
  SERVER_CPU,
  startHaproxyPlatform,
  startPlatformProcess,
} from './procs.js';
import type { BenchSection } from './section.js';
import { type WrkResult, wrk } from './wrk.js';

interface Target {
  name: string;
  url: string;
  pids: () => number[];
}

const PATH = '/api/bench';

/** bench/bare-proxy.mjs on a free port, pinned to the servers' core. */
async function startBareProxy(agentPort: number): Promise<{ url: string; pid: number; stop(): void }> {
  const port = await freePort();
  const script = new URL('./bare-proxy.mjs', import.meta.url).pathname;
  const [cmd, args] = pinned(process.execPath, [script, String(port), String(agentPort)], SERVER_CPU);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`bench/bare-proxy.mjs exited (${code})`)));
  });
  return { url: `http://127.0.0.1:${port}`, pid: child.pid!, stop: () => child.kill() };
}

export async function runThroughput(opts: { quick: boolean }): Promise<BenchSection[]> {
  const rounds = opts.quick ? 1 : 5;
  const seconds = opts.quick ? 2 : 5;
  const connections = 64;
  const platform = await startPlatformProcess({ MIN_INSTANCES: '1', MAX_INSTANCES: '1' });
  const agent = platform.agents[0]!;
  const nginx1 = await startNginx({ agentPorts: [agent.port], workers: 1 });
  const nginxAuto = await startNginx({ agentPorts: [agent.port], workers: 'auto' });
  // The router before issue 14, built beside this one, measured in the same rounds (its own agent).
  const baseline = opts.quick ? undefined : prepareBaseline(process.env.BENCH_BASELINE ?? BEFORE_ISSUE_14);
  const before = baseline
    ? await startPlatformProcess({ MIN_INSTANCES: '1', MAX_INSTANCES: '1' }, [], baseline.tree)
    : undefined;
  const beforeName = baseline ? `router before (${baseline.commit})` : '';
  // The same router with a per-client rate limit every request goes through (set high: nothing is
  // refused), for what the limiter costs.
  const limited = opts.quick
    ? undefined
    : await startPlatformProcess({
        MIN_INSTANCES: '1',
        MAX_INSTANCES: '1',
        RATE_LIMIT_RPS: '1000000',
        RATE_LIMIT_BURST: '0',
      });
  const limitedName = 'router + RATE_LIMIT_RPS';
  // DATAPLANE=haproxy: HAProxy programmed by the controller, with its own agent.
  const hap = hasHaproxy()
    ? await startHaproxyPlatform({ MIN_INSTANCES: '1', MAX_INSTANCES: '1' })
    : undefined;
  const hapName = 'yggdrasil haproxy';
  // Node's floor: a bare undici proxy to the same agent (bench/bare-proxy.mjs), run right after the router.
  const bare = await startBareProxy(agent.port);
  const bareName = 'bare undici proxy';
  try {
    const targets: Target[] = [
      { name: 'direct (ceiling)', url: `http://127.0.0.1:${agent.port}${PATH}`, pids: () => [] },
      { name: 'yggdrasil router', url: `${platform.lbUrl}${PATH}`, pids: () => [platform.pid] },
      { name: bareName, url: `${bare.url}${PATH}`, pids: () => [bare.pid] },
      ...(hap
        ? [{ name: hapName, url: `${hap.p.lbUrl}${PATH}`, pids: () => [hap.p.pid, hap.haproxyPid] }]
        : []),
      // Each comparison runs right after the router it is compared with, so drift hits both alike.
      ...(limited ? [{ name: limitedName, url: `${limited.lbUrl}${PATH}`, pids: () => [limited.pid] }] : []),
      ...(before ? [{ name: beforeName, url: `${before.lbUrl}${PATH}`, pids: () => [before.pid] }] : []),
      { name: 'nginx (1 worker)', url: `${nginx1.url}${PATH}`, pids: () => nginx1.pids() },
      { name: 'nginx (auto)', url: `${nginxAuto.url}${PATH}`, pids: () => nginxAuto.pids() },
    ];
    const results = new Map<string, Array<WrkResult & { cpuUsPerReq: number }>>();
    for (const t of targets) await wrk(t.url, { connections, seconds: 1, cpu: LOADGEN_CPU }); // warm-up
    for (let r = 0; r < rounds; r++) {
      for (const t of targets) {
        const before = await cpuSeconds(t.pids());
        const res = await wrk(t.url, { connections, seconds, cpu: LOADGEN_CPU });
        const cpu = (await cpuSeconds(t.pids())) - before;
        const list = results.get(t.name) ?? [];
        list.push({ ...res, cpuUsPerReq: res.requests > 0 && cpu > 0 ? (cpu * 1e6) / res.requests : 0 });
        results.set(t.name, list);
      }
    }
    const med = (name: string, key: keyof WrkResult | 'cpuUsPerReq') =>
      median(results.get(name)!.map((x) => x[key] as number));
    const rows = targets.map((t) => ({
      target: t.name,
      'req/s': round(med(t.name, 'rps'), 0),
      'p50 ms': round(med(t.name, 'p50Ms'), 2),
      'p95 ms': round(med(t.name, 'p95Ms'), 2),
      'p99 ms': round(med(t.name, 'p99Ms'), 2),
      'CPU µs/req (proxy)': t.pids().length ? round(med(t.name, 'cpuUsPerReq'), 1) : '-',
      errors: results.get(t.name)!.reduce((a, x) => a + x.errors + x.non2xx, 0),
    }));
    const rps = (n: string) => med(n, 'rps');
    const routerVsNginx = rps('yggdrasil router') / rps('nginx (1 worker)');
    const routerVsDirect = rps('yggdrasil router') / rps('direct (ceiling)');
    // Ratios between two targets are taken round by round (the two runs seconds apart), then the
    // median: this machine's noise moves whole rounds, and a ratio of medians would mix rounds.
    const paired = (a: string, b: string, key: 'rps' | 'cpuUsPerReq') => {
      const xs = results.get(a)!;
      const ys = results.get(b)!;
      const ratios = xs.map((x, i) => x[key] / ys[i]![key]).filter(Number.isFinite);
      return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) };
    };
    const spread = (r: { min: number; max: number }) => `${round(r.min, 2)}–${round(r.max, 2)}`;
    const cpuVsBare = paired('yggdrasil router', bareName, 'cpuUsPerReq');
    const vsBefore = before ? paired('yggdrasil router', beforeName, 'rps') : undefined;
    const cpuVsBeforeR = before ? paired('yggdrasil router', beforeName, 'cpuUsPerReq') : undefined;
    const routerVsBefore = vsBefore?.median;
    const cpuVsBefore = cpuVsBeforeR?.median;
    const limiter = limited ? paired(limitedName, 'yggdrasil router', 'rps') : undefined;
    const limiterCpu = limited ? paired(limitedName, 'yggdrasil router', 'cpuUsPerReq') : undefined;
    const limiterVsPlain = limiter?.median;
    const limiterExtraUs = limited
      ? median(
          results
            .get(limitedName)!
            .map((x, i) => x.cpuUsPerReq - results.get('yggdrasil router')![i]!.cpuUsPerReq),
        )
      : undefined;

    // Added latency at a fixed rate, open loop, in interleaved rounds: each proxy right after the
    // agent it proxies to, measured directly (HAProxy's platform has its own agent); what a proxy adds
    // is taken round by round against that run, then the median. One run's p99 is its 1 % worst
    // requests: a single pause moves it, so a difference of two single runs is mostly noise.
    const rate = 1000;
    const olSeconds = opts.quick ? 2 : 5;
    const olRounds = opts.quick ? 1 : 5;
    const hapAgent = hap?.p.agents[0];
    const paths = [
      { name: 'direct', url: `http://127.0.0.1:${agent.port}${PATH}` },
      { name: 'router', url: `${platform.lbUrl}${PATH}`, direct: 'direct' },
      { name: 'nginx (1 worker)', url: `${nginx1.url}${PATH}`, direct: 'direct' },
      ...(hap && hapAgent
        ? [
            { name: 'direct (haproxy’s agent)', url: `http://127.0.0.1:${hapAgent.port}${PATH}` },
            {
              name: 'haproxy (DATAPLANE=haproxy)',
              url: `${hap.p.lbUrl}${PATH}`,
              direct: 'direct (haproxy’s agent)',
            },
          ]
        : []),
    ];
    const loops = new Map<string, OpenLoopResult[]>();
    for (const path of paths) await openLoop(path.url, { rate, seconds: 1 }); // warm-up
    for (let r = 0; r < olRounds; r++) {
      for (const path of paths) {
        const list = loops.get(path.name) ?? [];
        list.push(await openLoop(path.url, { rate, seconds: olSeconds }));
        loops.set(path.name, list);
      }
    }
    const loopMed = (name: string, key: 'p50Ms' | 'p99Ms') => median(loops.get(name)!.map((x) => x[key]));
    const added = (name: string, base: string, key: 'p50Ms' | 'p99Ms') => {
      const xs = loops.get(name)!;
      const ys = loops.get(base)!;
      const d = xs.map((x, i) => x[key] - ys[i]![key]);
      return { median: median(d), min: Math.min(...d), max: Math.max(...d) };
    };
    const addedOf = Object.fromEntries(
      paths.flatMap((p) =>
        p.direct
          ? [[p.name, { p50: added(p.name, p.direct, 'p50Ms'), p99: added(p.name, p.direct, 'p99Ms') }]]
          : [],
      ),
    );
    const latencyRows = paths.flatMap((p) => {
      const xs = loops.get(p.name)!;
      const row = {
        path: p.name,
        sent: xs.reduce((a, x) => a + x.sent, 0),
        errors: xs.reduce((a, x) => a + x.errors, 0),
        'p50 ms': round(loopMed(p.name, 'p50Ms'), 3),
        'p99 ms': round(loopMed(p.name, 'p99Ms'), 3),
        'p99 ms, rounds': `${round(Math.min(...xs.map((x) => x.p99Ms)), 2)}–${round(Math.max(...xs.map((x) => x.p99Ms)), 2)}`,
      };
      const a = addedOf[p.name];
      if (!a) return [row];
      return [
        row,
        {
          path: `added by ${p.name.split(' ')[0]}`,
          sent: '',
          errors: '',
          'p50 ms': round(a.p50.median, 3),
          'p99 ms': round(a.p99.median, 3),
          'p99 ms, rounds': `${round(a.p99.min, 2)}–${round(a.p99.max, 2)}`,
        },
      ];
    });
    const routerAdded = addedOf.router!;
    const nginxAdded = addedOf['nginx (1 worker)']!;
    const hapAdded = addedOf['haproxy (DATAPLANE=haproxy)'];
    const openLoopErrors = latencyRows.reduce((a, r) => a + Number(r.errors || 0), 0);
    return [
      {
        title: 'Proxy throughput and latency',
        rows,
        notes: [
          `wrk -t1 -c${connections}, ${seconds} s per run, ${rounds} interleaved round(s), medians; POST of a ~100-byte JSON body to ${PATH} of one reference agent.`,
          'wrk pinned to core 1, the servers (agent, router, nginx) to core 0 with taskset when available; CPU µs/req is the proxy process(es) CPU time over requests served.',
          `router / nginx (1 worker) = ${round(routerVsNginx, 2)}; router / direct = ${round(routerVsDirect, 2)}.`,
          `${bareName}: the least a Node proxy does per request (an http server streaming each request to the agent with undici's pool.stream(), no limit, queue, session, breaker, header rewriting or metrics; bench/bare-proxy.mjs), run right after the router: the router takes ${round(cpuVsBare.median, 2)} × its CPU per request (rounds ${spread(cpuVsBare)}). What the router adds over Node's own HTTP and socket cost is the difference; what is left is Node's.`,
          ...(hap
            ? [
                `${hapName}: DATAPLANE=haproxy, HAProxy 2.6 (one thread) on LB_PORT programmed by the controller, maxconn = MAX_CONCURRENCY per server, its queue and the stick table on, its own agent; CPU counts HAProxy and the platform process. haproxy / nginx (1 worker) = ${round(rps(hapName) / rps('nginx (1 worker)'), 2)}.`,
              ]
            : ['DATAPLANE=haproxy not measured: no haproxy here (apt-get install haproxy).']),
          ...(routerVsBefore !== undefined && cpuVsBefore !== undefined
            ? [
                `${beforeName} is the router before issue 14's work (a git worktree built in this run, its own agent on the same core), interleaved with the others: router now / before = ${round(routerVsBefore, 3)} in req/s (rounds ${spread(vsBefore!)}), ${round(cpuVsBefore, 3)} in CPU per request (rounds ${spread(cpuVsBeforeR!)}).`,
              ]
            : []),
          ...(limiterVsPlain !== undefined
            ? [
                `${limitedName}: the same router with a per-client rate limit (rate-limiter-flexible, in memory) that every request passes through, and its RateLimit headers, run right after the plain router in each round: ${round(limiterVsPlain, 3)} × its req/s (rounds ${spread(limiter!)}), ${round(limiterExtraUs!, 1)} µs of CPU more per request (CPU ratio ${round(limiterCpu!.median, 3)}, rounds ${spread(limiterCpu!)}). Ratios are medians of per-round ratios.`,
              ]
            : []),
        ],
        figures: {
          routerRps: rps('yggdrasil router'),
          nginx1Rps: rps('nginx (1 worker)'),
          nginxAutoRps: rps('nginx (auto)'),
          directRps: rps('direct (ceiling)'),
          routerVsNginx,
          routerVsDirect,
          ...(routerVsBefore !== undefined && cpuVsBefore !== undefined
            ? { routerVsBefore, cpuVsBefore }
            : {}),
          ...(limiterVsPlain !== undefined
            ? {
                limiterVsPlain,
                limitedRps: rps(limitedName),
                limitedCpuUsPerReq: med(limitedName, 'cpuUsPerReq'),
                limiterExtraCpuUsPerReq: limiterExtraUs,
              }
            : {}),
          ...(hap
            ? {
                haproxyRps: rps(hapName),
                haproxyVsNginx: rps(hapName) / rps('nginx (1 worker)'),
                haproxyCpuUsPerReq: med(hapName, 'cpuUsPerReq'),
              }
            : {}),
          routerCpuUsPerReq: med('yggdrasil router', 'cpuUsPerReq'),
          bareCpuUsPerReq: med(bareName, 'cpuUsPerReq'),
          routerVsBareCpu: cpuVsBare.median,
          nginxCpuUsPerReq: med('nginx (1 worker)', 'cpuUsPerReq'),
          errors: rows.reduce((a, r) => a + Number(r.errors), 0),
        },
      },
      {
        title: `Added latency at ${rate} req/s (open loop)`,
        rows: latencyRows,
        notes: [
          `${rate} req/s for ${olSeconds} s per run on a fixed schedule (latency counted from the scheduled send time, so stalls are not hidden), the same body; ${olRounds} interleaved round(s), medians. The generator runs on core 1 (taskset), the servers on core 0.`,
          'Each proxy runs right after its agent measured directly (HAProxy’s platform has an agent of its own); "added by" is the difference to that run, taken per round, then the median ("rounds": the range over rounds).',
          ...(hapAdded
            ? [
                `added p99: haproxy ${round(hapAdded.p99.median, 3)} ms against nginx ${round(nginxAdded.p99.median, 3)} ms, ${round(hapAdded.p99.median - nginxAdded.p99.median, 3)} ms apart (goal: within 1 ms).`,
              ]
            : []),
        ],
        figures: {
          addedP50Ms: Math.max(0, routerAdded.p50.median),
          addedP99Ms: Math.max(0, routerAdded.p99.median),
          // Absolute p99s (their differences can be below 0, which no figure may be; the rows have them).
          directOpenLoopP99Ms: loopMed('direct', 'p99Ms'),
          nginxOpenLoopP99Ms: loopMed('nginx (1 worker)', 'p99Ms'),
          ...(hapAdded
            ? {
                haproxyOpenLoopP99Ms: loopMed('haproxy (DATAPLANE=haproxy)', 'p99Ms'),
                // The goal's figure: HAProxy's added p99 minus nginx's (may be below 0; then 0).
                haproxyOverNginxAddedP99Ms: Math.max(0, hapAdded.p99.median - nginxAdded.p99.median),
              }
            : {}),
          openLoopErrors,
        },
      },
    ];
  } finally {
    bare.stop();
    await nginx1.stop();
    await nginxAuto.stop();
    await platform.stop();
    await hap?.p.stop();
    await before?.stop();
    await limited?.stop();
    baseline?.remove();
  }
}

export async function runOverload(opts: { quick: boolean }): Promise<BenchSection> {
  const perInstance = 10;
  const instances = 2;
  const connections = 2 * perInstance * instances; // a burst of 2× the pool's total concurrency
  const seconds = opts.quick ? 2 : 5;
  const body = JSON.stringify({ workMs: 100 });
  const platform = await startPlatformProcess({
    MIN_INSTANCES: String(instances),
    MAX_INSTANCES: String(instances),
    MAX_CONCURRENCY: String(perInstance),
    QUEUE_TIMEOUT_MS: '10000',
  });
  const nginx = await startNginx({
    agentPorts: platform.agents.map((a) => a.port),
    workers: 1,
    maxConns: perInstance,
  });
  const hap = hasHaproxy()
    ? await startHaproxyPlatform({
        MIN_INSTANCES: String(instances),
        MAX_INSTANCES: String(instances),
        MAX_CONCURRENCY: String(perInstance),
        QUEUE_TIMEOUT_MS: '10000',
      })
    : undefined;
  try {
    const router = await wrk(`${platform.lbUrl}/process`, { connections, seconds, cpu: LOADGEN_CPU, body });
    const ng = await wrk(`${nginx.url}/process`, { connections, seconds, cpu: LOADGEN_CPU, body });
    const viaHap = hap
      ? await wrk(`${hap.p.lbUrl}/process`, { connections, seconds, cpu: LOADGEN_CPU, body })
      : undefined;
    const row = (name: string, r: WrkResult) => {
      const answered = r.requests;
      const ok = answered - r.non2xx;
      return {
        proxy: name,
        requests: answered,
        'success %': answered ? round((100 * ok) / answered, 2) : 0,
        'refused (5xx)': r.non2xx,
        'socket errors': r.errors,
        'req/s': round(r.rps, 0),
        'p99 ms': round(r.p99Ms, 1),
      };
    };
    const rows = [
      row('yggdrasil router (queue)', router),
      ...(viaHap ? [row('yggdrasil haproxy (maxconn + queue)', viaHap)] : []),
      row(`nginx (max_conns=${perInstance})`, ng),
    ];
    return {
      title: 'Overload: a burst of 2× the pool’s concurrency',
      rows,
      notes: [
        `${instances} agents answering in 100 ms (POST /process {"workMs":100}), ${perInstance} requests each at most (MAX_CONCURRENCY / max_conns), ${connections} connections for ${seconds} s.`,
        'nginx OSS refuses what max_conns cannot take (502); Yggdrasil queues it (FIFO, QUEUE_TIMEOUT_MS=10000) and serves it; so does HAProxy in DATAPLANE=haproxy (maxconn per server, the backend queue, timeout queue = QUEUE_TIMEOUT_MS).',
      ],
      figures: {
        routerSuccessPct: Number(rows[0]!['success %']),
        nginxSuccessPct: Number(rows.at(-1)!['success %']),
        routerP99Ms: router.p99Ms,
        nginxP99Ms: ng.p99Ms,
        ...(viaHap ? { haproxySuccessPct: Number(rows[1]!['success %']), haproxyP99Ms: viaHap.p99Ms } : {}),
      },
    };
  } finally {
    await nginx.stop();
    await platform.stop();
    await hap?.p.stop();
  }
}
