// What COMPRESSION=on and RESPONSE_CACHE_BYTES cost and gain (issue 14), on `yggdrasil start` with the
// reference agent's GET /document (16 KiB of JSON text): requests per second, bytes on the wire per
// answer, and CPU per answer of the platform (router) and of the agent, with each option off and on,
// in one run; the same with DATAPLANE=haproxy (HAProxy's gzip and its cache). Run alone:
// npx tsx bench/index.ts --only shaping [--quick]
import {
  cpuSeconds,
  hasHaproxy,
  LOADGEN_CPU,
  type PlatformProcess,
  startHaproxyPlatform,
  startPlatformProcess,
} from './procs.js';
import type { BenchSection } from './section.js';
import { round } from './stats.js';
import { wrk } from './wrk.js';

const DOC = '/document?bytes=16384';

type Kind = 'off' | 'compression' | 'cache' | 'hap-off' | 'hap-compression' | 'hap-cache';

interface Case {
  name: string;
  platform: Kind;
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

/** The same with DATAPLANE=haproxy (when haproxy is installed): gzip only, its own cache. */
const HAPROXY_CASES: Case[] = [
  { name: 'haproxy: both off', platform: 'hap-off', path: DOC },
  { name: 'haproxy: COMPRESSION=on, gzip client', platform: 'hap-compression', path: DOC, accept: 'gzip' },
  { name: 'haproxy: cache hits', platform: 'hap-cache', path: `${DOC}&maxAge=60` },
  {
    name: 'haproxy: cache hits, gzip client',
    platform: 'hap-cache',
    path: `${DOC}&maxAge=60`,
    accept: 'gzip',
  },
];

const ENV: Record<Kind, Record<string, string>> = {
  off: {},
  compression: { COMPRESSION: 'on' },
  cache: { COMPRESSION: 'on', RESPONSE_CACHE_BYTES: '64M' },
  'hap-off': {},
  'hap-compression': { COMPRESSION: 'on' },
  'hap-cache': { COMPRESSION: 'on', RESPONSE_CACHE_BYTES: '64M' },
};

interface Started {
  p: PlatformProcess;
  /** The processes that proxy: the platform, and HAProxy in HAProxy mode. */
  proxyPids: number[];
}

export async function run(opts: { quick: boolean }): Promise<BenchSection> {
  const seconds = opts.quick ? 2 : 5;
  const connections = 32;
  const platforms = new Map<Kind, Started>();
  const rows: BenchSection['rows'] = [];
  const figures: Record<string, number> = {};
  const haproxy = hasHaproxy();
  const cases = [...CASES, ...(haproxy ? HAPROXY_CASES : [])];
  try {
    for (const kind of new Set(cases.map((c) => c.platform))) {
      const env = { MIN_INSTANCES: '1', MAX_INSTANCES: '1', SESSION_AFFINITY: 'false', ...ENV[kind] };
      if (kind.startsWith('hap-')) {
        const { p, haproxyPid } = await startHaproxyPlatform(env);
        platforms.set(kind, { p, proxyPids: [p.pid, haproxyPid] });
      } else {
        const p = await startPlatformProcess(env);
        platforms.set(kind, { p, proxyPids: [p.pid] });
      }
    }
    for (const [i, c] of cases.entries()) {
      const { p, proxyPids } = platforms.get(c.platform)!;
      const agentPid = p.agents[0]!.pid;
      const url = `${p.lbUrl}${c.path}`;
      const get: Record<string, string> = c.accept ? { 'Accept-Encoding': c.accept } : {};
      await wrk(url, { connections, seconds: 1, cpu: LOADGEN_CPU, get }); // warm-up (and the cache filled)
      const [r0, a0] = [await cpuSeconds(proxyPids), await cpuSeconds([agentPid])];
      const res = await wrk(url, { connections, seconds, cpu: LOADGEN_CPU, get });
      const [r1, a1] = [await cpuSeconds(proxyPids), await cpuSeconds([agentPid])];
      const perAnswer = (cpu: number) => Math.round((cpu * 1e6) / Math.max(1, res.requests));
      const row = {
        case: c.name,
        'req/s': Math.round(res.rps),
        'bytes/answer': Math.round(res.bytes / Math.max(1, res.requests)),
        'proxy CPU µs/answer': perAnswer(r1 - r0),
        'agent CPU µs/answer': perAnswer(a1 - a0),
        'p99 ms': round(res.p99Ms, 2),
        errors: res.errors + res.non2xx,
      };
      rows.push(row);
      figures[`case${i}Rps`] = row['req/s'];
      figures[`case${i}Bytes`] = row['bytes/answer'];
      figures[`case${i}RouterCpuUs`] = row['proxy CPU µs/answer'];
      figures[`case${i}AgentCpuUs`] = row['agent CPU µs/answer'];
      figures.errors = (figures.errors ?? 0) + row.errors;
    }
  } finally {
    for (const { p } of platforms.values()) await p.stop();
  }
  const r = (i: number) => rows[i]!;
  figures.brBytesRatio = round(Number(r(2)['bytes/answer']) / Number(r(0)['bytes/answer']), 3);
  figures.cacheVsOffRps = round(Number(r(4)['req/s']) / Number(r(0)['req/s']), 2);
  if (haproxy) {
    figures.haproxyGzipBytesRatio = round(Number(r(7)['bytes/answer']) / Number(r(6)['bytes/answer']), 3);
    figures.haproxyCacheVsOffRps = round(Number(r(8)['req/s']) / Number(r(6)['req/s']), 2);
  }
  return {
    title: 'Compression and the response cache',
    rows,
    notes: [
      `GET ${DOC} (16 KiB of JSON text from the reference agent), wrk -c${connections} for ${seconds} s after a 1 s warm-up, one instance; SESSION_AFFINITY=false so no answer carries a session cookie. Platform and agent pinned to core 0, wrk to core 1. "bytes/answer" counts what wrk read (heads and bodies); "proxy CPU" is the platform process (the Node router), with HAProxy's own in HAProxy mode.`,
      `Brotli (quality 4) sends ${Math.round(figures.brBytesRatio * 100)} % of the identity bytes; gzip is level 4. Compressing costs the router the CPU in its column: worth it where the link, not the core, is the limit.`,
      `Cache hits answer from the router's memory without the agent (its CPU column near 0): ${figures.cacheVsOffRps}× the requests per second of both off. A stored answer is kept compressed per coding, so a hit costs no compression.`,
      ...(haproxy
        ? [
            `HAProxy mode: COMPRESSION=on makes HAProxy gzip the same types (libslz, no brotli, no minimum size in 2.6): ${Math.round(figures.haproxyGzipBytesRatio! * 100)} % of the identity bytes. Its cache (RESPONSE_CACHE_BYTES) keeps an answer uncompressed and gzips it per hit: hits at ${figures.haproxyCacheVsOffRps}× the requests per second of its both-off row.`,
          ]
        : ['HAProxy mode not measured: no haproxy here (apt-get install haproxy).']),
    ],
    figures,
  };
}
