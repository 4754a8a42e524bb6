// A real Prometheus for tests: a generated config (router, controller, agents through /sd/agents), a temp
// TSDB, a random port on 127.0.0.1, and small clients for its HTTP API. Also the PromQL helpers the
// dashboard tests share (variable substitution, metric names named by an expression).
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../src/runtime/free-port.js';
import { waitFor } from '../helpers/platform.js';
import { run, type Spawned } from '../helpers/spawn.js';

export const ROOT = new URL('../..', import.meta.url).pathname;
export const ALERTS_FILE = join(ROOT, 'deploy/prometheus/alerts.yml');
export const exec = promisify(execFile);

const hostPort = (url: string) => new URL(url).host;

/**
 * The test Prometheus's configuration, as JSON (which is YAML): every second, the router and controller
 * with honor_labels (their `instance` label is the agent id), the agents discovered at /sd/agents.
 */
export function promConfig(opts: { lbUrl: string; controllerUrl: string; rulesFile?: string }): string {
  return JSON.stringify(
    {
      global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
      rule_files: opts.rulesFile ? [opts.rulesFile] : [],
      scrape_configs: [
        {
          job_name: 'yggdrasil-router',
          honor_labels: true,
          static_configs: [{ targets: [hostPort(opts.lbUrl)] }],
        },
        {
          job_name: 'yggdrasil-controller',
          honor_labels: true,
          static_configs: [{ targets: [hostPort(opts.controllerUrl)] }],
        },
        {
          job_name: 'agents',
          http_sd_configs: [{ url: `${opts.controllerUrl}/sd/agents`, refresh_interval: '1s' }],
        },
      ],
    },
    null,
    2,
  );
}

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface QueryAnswer {
  status: 'success' | 'error';
  errorType?: string;
  error?: string;
  data?: { resultType: string; result: unknown };
}

export interface PromServer {
  url: string;
  dir: string;
  configFile: string;
  /** Raw answer of /api/v1/query (errors included, for the dashboard tests). */
  queryRaw(expr: string): Promise<QueryAnswer>;
  /** An instant vector; throws on a query error. */
  query(expr: string): Promise<Sample[]>;
  /** The single value of an expression, or undefined when it has no series. */
  value(expr: string): Promise<number | undefined>;
  api<T>(path: string): Promise<T>;
  stop(): Promise<void>;
}

export async function writeConfig(config: string): Promise<{ dir: string; configFile: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'ygg-prom-'));
  const configFile = join(dir, 'prometheus.yml');
  await writeFile(configFile, config);
  return { dir, configFile };
}

export async function startPrometheus(config: string): Promise<PromServer> {
  const { dir, configFile } = await writeConfig(config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc: Spawned = run('prometheus', [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ]);
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`);
    return (await res.json()) as T;
  };
  const stop = async () => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) {
      proc.child.kill('SIGTERM');
      const killer = setTimeout(() => proc.child.kill('SIGKILL'), 5000);
      await proc.exited;
      clearTimeout(killer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      'prometheus to be ready',
      async () => {
        if (proc.child.exitCode !== null) throw new Error(`prometheus exited: ${proc.stderr().slice(-2000)}`);
        return (await fetch(`${url}/-/ready`).catch(() => undefined))?.status === 200;
      },
      20_000,
      100,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const queryRaw = async (expr: string) => {
    const res = await fetch(`${url}/api/v1/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ query: expr }),
    });
    return (await res.json()) as QueryAnswer;
  };
  const query = async (expr: string) => {
    const a = await queryRaw(expr);
    if (a.status !== 'success') throw new Error(`query ${expr} failed: ${a.errorType}: ${a.error}`);
    if (a.data?.resultType === 'scalar') {
      return [{ metric: {}, value: a.data.result as [number, string] }];
    }
    return a.data?.result as Sample[];
  };
  const value = async (expr: string) => {
    const r = await query(expr);
    if (r.length > 1) throw new Error(`${expr} has ${r.length} series, expected one`);
    return r[0] ? Number(r[0].value[1]) : undefined;
  };
  return { url, dir, configFile, queryRaw, query, value, api, stop };
}

/** Grafana's variables as the test resolves them (a 1 s scrape interval; every instance). */
const GRAFANA_VARS: Array<[RegExp, string]> = [
  [/\$__rate_interval\b/g, '5s'],
  [/\$__interval\b/g, '2s'],
  [/\$__range\b/g, '1m'],
  [/\$\{?instance\}?/g, '.*'],
];

export function resolveGrafanaVars(expr: string): string {
  let out = expr;
  for (const [re, v] of GRAFANA_VARS) out = out.replace(re, v);
  return out;
}

const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'offset',
  'bool',
  'inf',
  'nan',
  'atan2',
]);

/**
 * The metric names a PromQL expression selects: every identifier that is not a function or aggregation
 * (followed by "("), a keyword, a label (inside {} or a by/on/… list), a duration or a string.
 */
export function metricNames(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ')
    .replace(/\boffset\s+-?\w+/gi, ' ')
    .replace(/(?<![\w:])\d+(?:\.\d+)?(?:e[+-]?\d+)?/gi, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/[a-zA-Z_:][\w:]*/g)) {
    const rest = s.slice(m.index + m[0].length).trimStart();
    if (rest.startsWith('(') || KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Series Prometheus itself writes for every target or rule, not exported by the project. */
export const PROMETHEUS_SERIES = new Set([
  'up',
  'scrape_duration_seconds',
  'scrape_samples_scraped',
  'scrape_samples_post_metric_relabeling',
  'scrape_series_added',
  'ALERTS',
  'ALERTS_FOR_STATE',
]);

/**
 * Every metric name the scraped targets export: stored series plus the metadata (# TYPE) of metrics
 * that have no sample yet (a labelled counter never incremented), histograms expanded to their series.
 */
export async function exportedNames(prom: PromServer): Promise<Set<string>> {
  const names = new Set<string>(PROMETHEUS_SERIES);
  const stored = await prom.api<{ data: string[] }>('/api/v1/label/__name__/values');
  for (const n of stored.data) names.add(n);
  const meta = await prom.api<{ data: Record<string, Array<{ type: string }>> }>('/api/v1/metadata');
  for (const [name, entries] of Object.entries(meta.data)) {
    names.add(name);
    if (entries.some((e) => e.type === 'histogram' || e.type === 'summary')) {
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    }
  }
  return names;
}
