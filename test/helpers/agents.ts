// The counting agent (test/fixtures/counting-agent.mjs) as AGENT_COMMAND, and a platform of them in a
// fresh temp dir: the tests read its evidence files (COUNT_LOG, REQ_LOG) and steer it (FAIL_FILE,
// MODE_FILE) from there.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Platform } from '../../src/platform.js';
import { bootPlatform, waitFor } from './platform.js';

export const COUNTING_AGENT = fileURLToPath(new URL('../fixtures/counting-agent.mjs', import.meta.url));

export const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** AGENT_COMMAND for the counting agent. `env` rather than bare assignments: the driver prefixes `exec`. */
export function countingAgent(env: Record<string, string>): string {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${quote(v)}`);
  return ['env', ...vars, quote(process.execPath), quote(COUNTING_AGENT)].join(' ');
}

/** Boots a platform of counting agents in a fresh temp dir; stops it and removes the dir afterwards. */
export async function withCountingPlatform(
  env: Record<string, string>,
  agentEnv: (dir: string) => Record<string, string>,
  fn: (p: Platform, dir: string) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ygg-agents-'));
  let p: Platform | undefined;
  try {
    p = await bootPlatform({ ...env, AGENT_COMMAND: countingAgent(agentEnv(dir)) });
    await fn(p, dir);
  } finally {
    await p?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Lines of an evidence file split on spaces (COUNT_LOG: "id agent"; REQ_LOG: "url agent"). */
export function logLines(file: string): string[][] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split(' '));
}

/**
 * Waits until the router has released every slot (breaker bookkeeping of the last answer is done),
 * and HAProxy too when it carries the traffic.
 */
export const settled = (p: Platform, timeoutMs = 10_000) =>
  waitFor(
    'the data plane to release every slot',
    () =>
      p.router.upstreams.all().every((u) => u.inflight === 0 && p.inflight(u.id) === 0) &&
      p.router.queued() === 0,
    timeoutMs,
  );

/** One sample of a Prometheus text exposition, e.g. metric(text, 'x_total', 'reason="a"'). */
export function metric(text: string, name: string, labels = ''): number | undefined {
  const prefix = labels === '' ? `${name} ` : `${name}{${labels}} `;
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

export const routerMetrics = async (p: Platform) => (await fetch(`${p.lbUrl}/metrics`)).text();

/** Waits until `instance` has answered more than `n` requests 200 (a history for the stall detector). */
export const answered = (p: Platform, instance: string, n: number) =>
  waitFor(`${instance} to answer ${n} requests`, async () => {
    const text = await routerMetrics(p);
    return (metric(text, 'yggdrasil_router_requests_total', `instance="${instance}",code="200"`) ?? 0) > n;
  });
