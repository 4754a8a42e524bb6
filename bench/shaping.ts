// What COMPRESSION=on and RESPONSE_CACHE_BYTES cost and gain (issue 14), on `yggdrasil start` with the
// reference agent's GET /document (16 KiB of JSON text): requests per second, bytes on the wire per
// answer, and CPU per answer of the platform (router) and of the agent, with each option off and on,
// in one run. Run alone: npx tsx bench/index.ts --only shaping [--quick]
import { cpuSeconds, LOADGEN_CPU, type PlatformProcess, startPlatformProcess } from './procs.js';
import type { BenchSection } from './section.js';
import { round } from './stats.js';
import { wrk } from './wrk.js';

const DOC = '/document?bytes=16384';

interface Case {
  name: string;
  platform: 'off' | 'compression' | 'cache';
  path: string;
  accept?: string;
}

const CASES: Case[] = [
  { name: 'both off', platform: 'off', path: DOC },
  { name: 'COMPRESSION=on, gzip client', platform: 'compression', path: DOC, accept: 'gzip' },
  { name: 'COMPRESSION=on, br client', platform: 'compression', path: DOC, accept: 'gzip, deflate, br' },
  { name: 'COMPRESSION=on, client takes none', platform: 'compression', path: DOC },
  { name: 'cache hits (public, max-age=60)', platform: 'cache', path: `${DOC}&maxAge=60` },
  { name: 'cache hits, br client', platform: 'cache', path: `${DOC}&maxAge=60`, accept: 'br' },
];

const ENV: Record<Case['platform'], Record<string, string>> = {
  off: {},
  compression: { COMPRESSION: 'on' },
  cache: { COMPRESSION: 'on', RESPONSE_CACHE_BYTES: '64M' },
};

export async function run(opts: { quick: boolean }): Promise<BenchSection> {
  const seconds = opts.quick ? 2 : 5;
  const connections = 32;
  const platforms = new Map<Case['platform'], PlatformProcess>();
  const rows: BenchSection['rows'] = [];
  const figures: Record<string, number> = {};
  try {
    for (const kind of ['off', 'compression', 'cache'] as const) {
      platforms.set(
        kind,
        await startPlatformProcess({
          MIN_INSTANCES: '1',
          MAX_INSTANCES: '1',
          SESSION_AFFINITY: 'false',
          ...ENV[kind],
        }),
      );
    }
    for (const [i, c] of CASES.entries()) {
      const p = platforms.get(c.platform)!;
      const agentPid = p.agents[0]!.pid;
      const url = `${p.lbUrl}${c.path}`;
      const get: Record<string, string> = c.accept ? { 'Accept-Encoding': c.accept } : {};
      await wrk(url, { connections, seconds: 1, cpu: LOADGEN_CPU, get }); // warm-up (and the cache filled)
      const [r0, a0] = [await cpuSeconds([p.pid]), await cpuSeconds([agentPid])];
      const res = await wrk(url, { connections, seconds, cpu: LOADGEN_CPU, get });
      const [r1, a1] = [await cpuSeconds([p.pid]), await cpuSeconds([agentPid])];
      const perAnswer = (cpu: number) => Math.round((cpu * 1e6) / Math.max(1, res.requests));
      const row = {
        case: c.name,
        'req/s': Math.round(res.rps),
        'bytes/answer': Math.round(res.bytes / Math.max(1, res.requests)),
        'router CPU µs/answer': perAnswer(r1 - r0),
        'agent CPU µs/answer': perAnswer(a1 - a0),
        'p99 ms': round(res.p99Ms, 2),
        errors: res.errors + res.non2xx,
      };
      rows.push(row);
      figures[`case${i}Rps`] = row['req/s'];
      figures[`case${i}Bytes`] = row['bytes/answer'];
      figures[`case${i}RouterCpuUs`] = row['router CPU µs/answer'];
      figures[`case${i}AgentCpuUs`] = row['agent CPU µs/answer'];
      figures.errors = (figures.errors ?? 0) + row.errors;
    }
  } finally {
    for (const p of platforms.values()) await p.stop();
  }
  const r = (i: number) => rows[i]!;
  figures.brBytesRatio = round(Number(r(2)['bytes/answer']) / Number(r(0)['bytes/answer']), 3);
  figures.cacheVsOffRps = round(Number(r(4)['req/s']) / Number(r(0)['req/s']), 2);
  return {
    title: 'Compression and the response cache (Node router)',
    rows,
    notes: [
      `GET ${DOC} (16 KiB of JSON text from the reference agent), wrk -c${connections} for ${seconds} s after a 1 s warm-up, one instance; SESSION_AFFINITY=false so no answer carries a session cookie. Platform and agent pinned to core 0, wrk to core 1. "bytes/answer" counts what wrk read (heads and bodies).`,
      `Brotli (quality 4) sends ${Math.round(figures.brBytesRatio * 100)} % of the identity bytes; gzip is level 6. Compressing costs the router the CPU in its column: worth it where the link, not the core, is the limit.`,
      `Cache hits answer from the router's memory without the agent (its CPU column near 0): ${figures.cacheVsOffRps}× the requests per second of both off. A stored answer is kept compressed per coding, so a hit costs no compression.`,
      'HAProxy mode: COMPRESSION=on makes HAProxy gzip the same types (no brotli, no minimum size in 2.6); it has no response cache (README: Data planes).',
    ],
    figures,
  };
}
