// Footprint: memory and CPU of the router+controller process (`yggdrasil start`, one process) at idle and
// under proxied load, CPU per proxied request, and memory per idle agent. The platform runs as a child
// process so /proc shows its own figures; wrk (or an in-process closed loop) is the load.
// Run alone: npx tsx bench/footprint.ts [--quick]
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { freePort } from '../src/runtime/free-port.js';
import { parseProcStat } from '../src/runtime/proc-usage.js';
import { closedLoop } from './scaling.js';
import type { BenchSection } from './section.js';
import { median, round } from './stats.js';

const MB = 1024 * 1024;
const root = fileURLToPath(new URL('..', import.meta.url));

/** CPU seconds (user + system, all threads) of a process, or NaN when it is gone. */
function cpuSeconds(pid: number): number {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.cpuSeconds ?? Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** VmRSS of a process in bytes from /proc/<pid>/status, or NaN when it is gone. */
function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Newest modification time of the non-test .ts files under `dir`. */
function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
      newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function onPath(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Prefix that pins a command to one core with taskset, or nothing when taskset is missing. */
const pin = (core: number, hasTaskset: boolean) => (hasTaskset ? ['taskset', '-c', String(core)] : []);

interface Status {
  readyInstances: number;
  instances: Array<{ id: string; state: string; sessions: number; meta: Record<string, string | number> }>;
}

async function getStatus(controllerUrl: string): Promise<Status> {
  const res = await request(`${controllerUrl}/status`, { headersTimeout: 5000, bodyTimeout: 5000 });
  return (await res.body.json()) as Status;
}

/** Samples `fn` every `everyMs` until `until` resolves; returns the samples. */
async function sampleWhile<T>(until: Promise<unknown>, everyMs: number, fn: () => T): Promise<T[]> {
  const out: T[] = [fn()];
  let done = false;
  void until.finally(() => {
    done = true;
  });
  while (!done) {
    await Promise.race([sleep(everyMs), until.catch(() => {})]);
    out.push(fn());
  }
  return out;
}

/** wrk's duration strings (812.00us, 1.23ms, 2.01s) in ms. */
function wrkMs(v: string | undefined): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v ?? '');
  if (!m) return Number.NaN;
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60_000 }[m[2] as 'us' | 'ms' | 's' | 'm'];
  return Number(m[1]) * scale;
}

export interface WrkResult {
  requests: number;
  non2xx: number;
  socketErrors: number;
  p50Ms: number;
  p99Ms: number;
}

/** Parses `wrk --latency` output. */
export function parseWrk(out: string): WrkResult {
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? Number.NaN),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    socketErrors: errors ? errors.slice(1).reduce((n, x) => n + Number(x), 0) : 0,
    p50Ms: wrkMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1]),
    p99Ms: wrkMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1]),
  };
}

function runWrk(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(args[0]!, args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`wrk exited ${code}: ${out}`)),
    );
  });
}

/** SIGTERM (the CLI drains and stops its agents), then SIGKILL whatever is left after `graceMs`. */
async function stopPlatform(
  child: ChildProcess,
  exited: Promise<unknown>,
  agentPids: number[],
  graceMs: number,
) {
  const notes: string[] = [];
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const timedOut = await Promise.race([exited.then(() => false), sleep(graceMs, true, { ref: false })]);
    if (timedOut) {
      notes.push(`the platform did not exit within ${graceMs} ms of SIGTERM: killed`);
      child.kill('SIGKILL');
      await exited;
    }
  }
  // The CLI stops its agents before exiting; anything still here after a short wait is killed by pid.
  const deadline = Date.now() + 5000;
  while (agentPids.some(alive) && Date.now() < deadline) await sleep(50);
  for (const pid of agentPids.filter(alive)) {
    notes.push(`agent pid ${pid} outlived the platform: killed`);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  return notes;
}

export async function run(opts: { quick: boolean }): Promise<BenchSection> {
  const agents = opts.quick ? 1 : 4;
  const idleMs = opts.quick ? 1500 : 5000;
  const loadSeconds = opts.quick ? 2 : 10;
  const connections = opts.quick ? 16 : 32;
  const hasTaskset = onPath('taskset');
  const hasWrk = onPath('wrk');
  const notes: string[] = [];

  const built = `${root}dist/cli/main.js`;
  const cli = existsSync(built)
    ? [process.execPath, built, 'start']
    : [process.execPath, '--import', 'tsx', `${root}src/cli/main.ts`, 'start'];
  if (!existsSync(built)) {
    notes.push('dist/ is missing: the platform ran from source under tsx (its RSS includes tsx).');
  } else if (newestSource(`${root}src`) > statSync(built).mtimeMs) {
    notes.push('dist/ is older than src/: these figures are of the last build (`npm run build`).');
  }

  const lbPort = await freePort();
  let controllerPort = await freePort();
  while (controllerPort === lbPort) controllerPort = await freePort();
  const controllerUrl = `http://127.0.0.1:${controllerPort}`;
  // Neither a config file nor the test runner's context may leak into the platform.
  const { YGG_CONFIG: _c, NODE_TEST_CONTEXT: _t, ...inherited } = process.env;
  const argv = [...pin(0, hasTaskset), ...cli];
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: root,
    env: {
      ...inherited,
      DRIVER: 'process',
      AGENT_COMMAND: '',
      LB_PORT: String(lbPort),
      CONTROLLER_PORT: String(controllerPort),
      LOG_LEVEL: 'warn',
      MIN_INSTANCES: String(agents),
      // A fixed pool: nothing scales during the load window.
      MAX_INSTANCES: String(agents),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stderr: string[] = [];
  child.stderr?.setEncoding('utf8').on('data', (c: string) => {
    stderr.push(c);
    if (stderr.length > 50) stderr.shift();
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const pid = child.pid!;
  let agentPids: number[] = [];
  // If this process dies first, take the platform and its agents with it.
  const killOnExit = () => {
    for (const p of [pid, ...agentPids]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {}
    }
  };
  process.on('exit', killOnExit);

  const rows: BenchSection['rows'] = [];
  const figures: Record<string, number> = {};
  try {
    // ---- start-up: wait for the pool ------------------------------------------------------------
    const deadline = Date.now() + 60_000;
    let status: Status | undefined;
    for (;;) {
      if (child.exitCode !== null)
        throw new Error(`the platform exited (${child.exitCode}): ${stderr.join('')}`);
      status = await getStatus(controllerUrl).catch(() => undefined);
      if (status && status.readyInstances >= agents) break;
      if (Date.now() > deadline) throw new Error(`the pool did not reach ${agents} ready in 60 s`);
      await sleep(100);
    }
    agentPids = status.instances.map((i) => Number(i.meta.pid)).filter((p) => Number.isInteger(p) && p > 0);
    await sleep(1000);

    // ---- idle: nothing talks to the platform ----------------------------------------------------
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    const idleRss = await sampleWhile(sleep(idleMs), 500, () => rssBytes(pid));
    const idleCpu = (cpuSeconds(pid) - cpu0) / ((performance.now() - t0) / 1000);
    const agentRss = agentPids.map(rssBytes).filter(Number.isFinite);

    // ---- load: proxied GETs to the agents' echo route -------------------------------------------
    const url = `http://127.0.0.1:${lbPort}/api/bench`;
    const cpu1 = cpuSeconds(pid);
    const t1 = performance.now();
    let served: number;
    let wrk: WrkResult | undefined;
    let loadRss: number[];
    if (hasWrk) {
      const done = runWrk([
        ...pin(1, hasTaskset),
        'wrk',
        '-t1',
        `-c${connections}`,
        `-d${loadSeconds}s`,
        '--latency',
        url,
      ]);
      loadRss = await sampleWhile(done, 250, () => rssBytes(pid));
      wrk = parseWrk(await done);
      served = wrk.requests;
    } else {
      const done = closedLoop({ url, workers: connections, deadline: Date.now() + loadSeconds * 1000 });
      loadRss = await sampleWhile(done, 250, () => rssBytes(pid));
      const outcome = await done;
      served = outcome.requests;
      wrk = undefined;
      notes.push(
        `wrk is not on PATH: the load was ${connections} closed-loop undici clients in the bench process; answers by status ${JSON.stringify(outcome.statuses)}.`,
      );
    }
    const loadWall = (performance.now() - t1) / 1000;
    const loadCpu = cpuSeconds(pid) - cpu1;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `the platform exited during the measurement (${child.exitCode ?? child.signalCode}): ${stderr.join('')}`,
      );
    }
    const after = await getStatus(controllerUrl).catch(() => undefined);
    const sessions = after?.instances.reduce((n, i) => n + i.sessions, 0) ?? Number.NaN;

    const idleRssMB = median(idleRss) / MB;
    const idleCpuPct = idleCpu * 100;
    const loadRssMB = Math.max(...loadRss.filter(Number.isFinite)) / MB;
    const loadCpuPct = (loadCpu / loadWall) * 100;
    const cpuPerRequestUs = (loadCpu / served) * 1e6;
    const rps = served / loadWall;
    const agentRssMB = agentRss.reduce((a, b) => a + b, 0) / agentRss.length / MB;

    const row = (what: string, value: string, how: string) => rows.push({ measurement: what, value, how });
    row(
      'router+controller RSS, idle',
      `${round(idleRssMB)} MB`,
      `median of samples over ${idleMs / 1000} s, ${agents} agent(s) ready`,
    );
    row(
      'router+controller CPU, idle',
      `${round(idleCpuPct, 2)} % of a core`,
      `/proc/<pid>/stat over ${idleMs / 1000} s`,
    );
    row('router+controller RSS, under load', `${round(loadRssMB)} MB`, `peak of samples every 250 ms`);
    row(
      'router+controller CPU, under load',
      `${round(loadCpuPct)} % of a core`,
      `over the ${round(loadWall, 1)} s load window`,
    );
    row(
      'CPU per proxied request',
      `${round(cpuPerRequestUs)} µs`,
      `platform CPU seconds / ${served} requests served`,
    );
    row('proxied throughput', `${Math.round(rps)} req/s`, `${connections} connections, GET /api/bench`);
    if (wrk)
      row(
        'latency p50 / p99 (wrk)',
        `${round(wrk.p50Ms, 2)} / ${round(wrk.p99Ms, 2)} ms`,
        'client side, through the router',
      );
    row(
      `agent RSS, idle (average of ${agentRss.length})`,
      `${round(agentRssMB)} MB`,
      'reference agent processes, pids from /status',
    );

    notes.push(
      `The platform is \`${cli.slice(1).join(' ').replace(root, '')}\` in a child process (LOG_LEVEL=warn, DRIVER=process, MIN_INSTANCES=MAX_INSTANCES=${agents}); figures are read from /proc/<pid>/stat and /proc/<pid>/status of that one process (the router and the controller share it).`,
      hasTaskset
        ? `Pinned with taskset: the platform and its agents on core 0, ${hasWrk ? 'wrk' : 'the load'} on core 1${hasWrk ? '' : ' (not pinned: in-process)'}.`
        : 'taskset is not on PATH: nothing was pinned.',
      `CPU per request counts only the router+controller process, not the agents. Load clients send no session cookie, so each request opens a session (${sessions} pinned at the end); their table is in the RSS under load.`,
    );
    if (wrk && (wrk.non2xx > 0 || wrk.socketErrors > 0)) {
      notes.push(`wrk saw ${wrk.non2xx} non-2xx answers and ${wrk.socketErrors} socket errors.`);
    }
    Object.assign(figures, {
      agents,
      idleRssMB: round(idleRssMB, 2),
      idleCpuPercent: round(idleCpuPct, 3),
      loadRssMB: round(loadRssMB, 2),
      loadCpuPercent: round(loadCpuPct, 2),
      cpuPerRequestUs: round(cpuPerRequestUs, 2),
      requestsServed: served,
      requestsPerSecond: round(rps, 1),
      agentIdleRssMB: round(agentRssMB, 2),
      ...(wrk && { latencyP50Ms: round(wrk.p50Ms, 3), latencyP99Ms: round(wrk.p99Ms, 3) }),
    });
  } finally {
    notes.push(...(await stopPlatform(child, exited, agentPids, 30_000)));
    process.off('exit', killOnExit);
  }
  return { title: 'Footprint', rows, notes, figures };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await run({ quick: process.argv.includes('--quick') }), null, 2));
}
