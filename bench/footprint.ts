// Footprint: RSS and CPU of the router+controller process (they share one) at idle and under load,
// CPU per proxied request, and the memory of an idle agent. The platform runs as a child
// `yggdrasil start` pinned to the server core; wrk loads it from the other core.
import { median, round } from '../src/core/stats.js';
import { cpuSeconds, LOADGEN_CPU, rssBytes, startPlatformProcess } from './procs.js';
import type { BenchSection } from './section.js';
import { wrk } from './wrk.js';

const MB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Samples `fn` every `everyMs` until `until` settles. */
async function sampleWhile<T>(until: Promise<unknown>, everyMs: number, fn: () => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let done = false;
  void until.finally(() => {
    done = true;
  });
  while (!done) {
    out.push(await fn());
    await sleep(everyMs);
  }
  return out;
}

export async function run(opts: { quick: boolean }): Promise<BenchSection> {
  const agents = opts.quick ? 1 : 4;
  const idleMs = opts.quick ? 1500 : 5000;
  const loadSeconds = opts.quick ? 2 : 10;
  const connections = opts.quick ? 16 : 32;
  // A fixed pool: nothing scales during the load window.
  const platform = await startPlatformProcess({
    MIN_INSTANCES: String(agents),
    MAX_INSTANCES: String(agents),
  });
  const { pid } = platform;
  let section: BenchSection;
  try {
    await sleep(1000);
    const cpu0 = await cpuSeconds([pid]);
    const t0 = performance.now();
    const idleRss = await sampleWhile(sleep(idleMs), 500, () => rssBytes(pid));
    const idleCpu = ((await cpuSeconds([pid])) - cpu0) / ((performance.now() - t0) / 1000);
    const agentRss = await Promise.all(platform.agents.map((a) => rssBytes(a.pid)));

    const cpu1 = await cpuSeconds([pid]);
    const t1 = performance.now();
    const load = wrk(`${platform.lbUrl}/api/bench`, { connections, seconds: loadSeconds, cpu: LOADGEN_CPU });
    const loadRss = await sampleWhile(load, 250, () => rssBytes(pid));
    const result = await load;
    const wall = (performance.now() - t1) / 1000;
    const loadCpu = (await cpuSeconds([pid])) - cpu1;
    if (platform.child.exitCode !== null) throw new Error('the platform exited during the measurement');

    const figures = {
      agents,
      idleRssMB: round(median(idleRss) / MB, 1),
      idleCpuPercent: round(idleCpu * 100, 2),
      loadRssMB: round(Math.max(...loadRss) / MB, 1),
      loadCpuPercent: round((loadCpu / wall) * 100, 1),
      cpuPerRequestUs: round((loadCpu / result.requests) * 1e6, 1),
      requestsServed: result.requests,
      requestsPerSecond: round(result.rps, 0),
      agentIdleRssMB: round(agentRss.reduce((a, b) => a + b, 0) / agentRss.length / MB, 1),
    };
    section = {
      title: 'Footprint',
      rows: [
        { measurement: 'router+controller RSS, idle', value: `${figures.idleRssMB} MB` },
        { measurement: 'router+controller CPU, idle', value: `${figures.idleCpuPercent} % of a core` },
        { measurement: 'router+controller RSS, under load (peak)', value: `${figures.loadRssMB} MB` },
        { measurement: 'router+controller CPU, under load', value: `${figures.loadCpuPercent} % of a core` },
        { measurement: 'CPU per proxied request', value: `${figures.cpuPerRequestUs} µs` },
        { measurement: 'proxied throughput during the load', value: `${figures.requestsPerSecond} req/s` },
        { measurement: `agent RSS, idle (average of ${agents})`, value: `${figures.agentIdleRssMB} MB` },
      ],
      notes: [
        `\`yggdrasil start\` in a child process (MIN_INSTANCES=MAX_INSTANCES=${agents}, LOG_LEVEL=warn) with its agents on core 0; wrk -c${connections} for ${loadSeconds} s on core 1. Figures from /proc/<pid>/stat and /proc/<pid>/status of the platform process.`,
        'CPU per request counts the router+controller process only. wrk sends no cookie, so every request opens a session: that table is part of the RSS under load.',
        ...(result.errors + result.non2xx > 0
          ? [`wrk saw ${result.non2xx} non-2xx answers and ${result.errors} socket errors.`]
          : []),
      ],
      figures,
    };
  } finally {
    await platform.stop();
  }
  const survivors = platform.agents.filter((a) => alive(a.pid));
  if (survivors.length > 0)
    throw new Error(`agents outlived their platform: ${survivors.map((a) => a.id).join(', ')}`);
  return section;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await run({ quick: process.argv.includes('--quick') }), null, 2));
}
