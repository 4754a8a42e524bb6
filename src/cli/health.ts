// `yggdrasil health` (npm run health:check): a table of every instance and its own health answer,
// with exit code 1 when the pool is below its minimum or an instance is crash-looping.
import { request } from 'undici';
import type { ControllerStatus } from '../controller/controller.js';
import { callController } from './client.js';

async function getJson<T>(url: string): Promise<T> {
  const res = await request(url, { headersTimeout: 5000, bodyTimeout: 5000 });
  if (res.statusCode >= 400) throw new Error(`${url} answered HTTP ${res.statusCode}`);
  return (await res.body.json()) as T;
}

async function fetchStatus(base: string): Promise<ControllerStatus> {
  return (await callController<ControllerStatus>(base, '/status')).body;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ')).join('\n');
}

export async function healthCommand(opts: { url: string; json?: boolean }): Promise<void> {
  const status = await fetchStatus(opts.url);
  const rows = await Promise.all(
    status.instances.map(async (i) => {
      let health = '-';
      if (i.address && i.state === 'ready') {
        try {
          const h = await getJson<{ status: string; uptimeSeconds: number }>(`${i.address}/health`);
          health = `${h.status} (up ${h.uptimeSeconds}s)`;
        } catch (err) {
          health = `FAIL: ${(err as Error).message}`;
        }
      }
      return { ...i, health };
    }),
  );
  const crashLooping = rows.filter((r) => r.crashLoop).map((r) => r.id);
  const failed = rows.filter((r) => r.lastFailure && (r.state !== 'ready' || r.crashLoop));
  const failing = rows.filter((r) => r.health.startsWith('FAIL')).map((r) => r.id);
  const need = Math.max(status.minInstances, status.desiredInstances > 0 ? 1 : 0);
  const problems: string[] = [];
  if (status.readyInstances < need) problems.push(`${status.readyInstances} ready, at least ${need} needed`);
  if (crashLooping.length) problems.push(`crash-looping: ${crashLooping.join(', ')}`);
  if (failing.length) problems.push(`failing health: ${failing.join(', ')}`);
  const healthy = problems.length === 0;
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ healthy, problems, instances: rows }, null, 2)}\n`);
  } else {
    const lines = [['INSTANCE', 'STATE', 'ADDRESS', 'IN-FLIGHT', 'RESTARTS', 'HEALTH']];
    for (const r of rows)
      lines.push([r.id, r.state, r.address ?? '-', String(r.inflight), String(r.restarts), r.health]);
    process.stdout.write(`${table(lines)}\n\n`);
    // Why the ones that are down are down: the failure, when it restarts, what it last printed.
    for (const r of failed) {
      const f = r.lastFailure!;
      const notes = [
        r.crashLoop ? 'crash-looping' : undefined,
        `${r.restarts} restart(s)`,
        r.nextRestartAt ? `restarts in ${secondsUntil(r.nextRestartAt)}` : undefined,
      ].filter((n) => n !== undefined);
      process.stdout.write(`${r.id}: ${f.reason} (${notes.join(', ')})\n`);
      for (const line of f.output ?? []) process.stdout.write(`    ${line}\n`);
    }
    if (failed.length > 0) process.stdout.write('\n');
    process.stdout.write(
      healthy
        ? `healthy: ${status.readyInstances}/${status.desiredInstances} ready (min ${status.minInstances}, max ${status.maxInstances})\n`
        : `UNHEALTHY: ${problems.join('; ')}\n`,
    );
  }
  process.exitCode = healthy ? 0 : 1;
}

function secondsUntil(iso: string): string {
  const s = Math.max(0, Math.round((Date.parse(iso) - Date.now()) / 1000));
  return `${s} s`;
}

export async function statusCommand(opts: { url: string }): Promise<void> {
  process.stdout.write(`${JSON.stringify(await fetchStatus(opts.url), null, 2)}\n`);
}
