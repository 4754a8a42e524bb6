// `npm run bench`: every benchmark in one run on this machine, written to BENCHMARKS.md (tables) and
// bench/results.json (figures). Options: --quick (a short version, for tests), --out DIR (where to
// write; default the repository), --only name,name (sections by name).
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { run as runChaos } from './chaos.js';
import { measureColdStart } from './cold-start.js';
import { run as runControlPlane } from './control-plane.js';
import { run as runDataPlane } from './data-plane.js';
import { run as runEngines } from './engines.js';
import { run as runFailover } from './failover.js';
import { run as runFlood } from './flood.js';
import { run as runFootprint } from './footprint.js';
import { canPin } from './procs.js';
import { run as runProfile } from './profile.js';
import { runOverload, runThroughput } from './proxy.js';
import { run as runRuns } from './runs.js';
import { run as runScaling } from './scaling.js';
import type { BenchSection } from './section.js';
import { run as runSessions } from './sessions.js';
import { run as runShaping } from './shaping.js';
import { run as runSharedState } from './shared-state.js';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const out = args.includes('--out') ? args[args.indexOf('--out') + 1]! : root;
mkdirSync(out, { recursive: true });
const only = args.includes('--only') ? args[args.indexOf('--only') + 1]!.split(',') : undefined;

const dockerWorks = () => {
  try {
    execFileSync('docker', ['image', 'inspect', 'yggdrasil/agent:latest'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

async function coldStart(opts: { quick: boolean }): Promise<BenchSection> {
  const count = opts.quick ? 3 : 20;
  const kinds: Array<'process' | 'docker'> = dockerWorks() ? ['process', 'docker'] : ['process'];
  const results = [];
  for (const k of kinds) results.push(await measureColdStart(k, count));
  return {
    title: 'Cold start (ask the runtime → first healthy answer)',
    rows: results.map((r) => ({
      runtime: r.driver,
      starts: r.count,
      'median ms': r.medianMs,
      'p95 ms': r.p95Ms,
      'max ms': r.maxMs,
    })),
    notes: [
      'Process: `node dist/agent/main.js` as a child process. Docker: a hardened container of yggdrasil/agent (create, start, publish, first /health).',
      ...(kinds.includes('docker') ? [] : ['Docker: not measured (no dockerd or no yggdrasil/agent image).']),
    ],
    figures: Object.fromEntries(
      results.flatMap((r) => [
        [`${r.driver}MedianMs`, r.medianMs],
        [`${r.driver}P95Ms`, r.p95Ms],
      ]),
    ),
  };
}

const SECTIONS: Array<{
  name: string;
  run: (o: { quick: boolean }) => Promise<BenchSection | BenchSection[]>;
}> = [
  { name: 'throughput', run: runThroughput },
  { name: 'overload', run: runOverload },
  { name: 'shaping', run: runShaping },
  { name: 'data-plane', run: runDataPlane },
  { name: 'chaos', run: runChaos },
  { name: 'flood', run: runFlood },
  { name: 'cold-start', run: coldStart },
  { name: 'scaling', run: runScaling },
  { name: 'failover', run: runFailover },
  { name: 'footprint', run: runFootprint },
  { name: 'control-plane', run: runControlPlane },
  { name: 'shared-state', run: runSharedState },
  { name: 'engines', run: runEngines },
  { name: 'runs', run: runRuns },
  { name: 'sessions', run: runSessions },
  { name: 'profile', run: runProfile },
];

function table(rows: BenchSection['rows']): string {
  if (rows.length === 0) return '(no rows)';
  const keys = Object.keys(rows[0]!);
  const line = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
  return [
    line(keys),
    line(keys.map(() => '---')),
    ...rows.map((r) => line(keys.map((k) => r[k] ?? ''))),
  ].join('\n');
}

const chosen = SECTIONS.filter((s) => !only || only.includes(s.name));
const sections: Array<BenchSection & { name: string; seconds: number }> = [];
const started = Date.now();
for (const [i, s] of chosen.entries()) {
  const t0 = Date.now();
  process.stderr.write(`[${i + 1}/${chosen.length}] ${s.name} … `);
  const result = await s.run({ quick });
  const seconds = Math.round((Date.now() - t0) / 1000);
  for (const r of Array.isArray(result) ? result : [result]) sections.push({ ...r, name: s.name, seconds });
  process.stderr.write(`done in ${seconds} s\n`);
}

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}${canPin() ? ', servers pinned to core 0 and load generators to core 1 (taskset)' : ', no CPU pinning'}`;
const md = [
  '# Benchmarks',
  '',
  `Written by \`npm run bench\`${quick ? ' --quick (short runs: indicative only)' : ''} on ${new Date().toISOString().slice(0, 10)} in ${Math.round((Date.now() - started) / 1000)} s. Machine: ${machine}.`,
  'Every figure below comes from this one run; rerun `npm run bench` to reproduce them.',
  '',
  ...sections.flatMap((s) => [`## ${s.title}`, '', table(s.rows), '', ...s.notes.map((n) => `- ${n}`), '']),
].join('\n');
writeFileSync(join(out, 'BENCHMARKS.md'), md);
const resultsPath = join(out, quick ? 'bench-results.quick.json' : 'bench/results.json');
mkdirSync(dirname(resultsPath), { recursive: true });
writeFileSync(
  resultsPath,
  `${JSON.stringify({ date: new Date().toISOString(), quick, machine, sections: sections.map(({ name, title, figures, rows }) => ({ name, title, figures, rows })) }, null, 2)}\n`,
);
process.stderr.write(`wrote ${join(out, 'BENCHMARKS.md')}\n`);
