// No agent outlives its platform. Each agent process carries YGGDRASIL_SUPERVISOR=<pid>:<start time>
// of the platform that started it (and so does everything it spawns). A platform that starts finds the
// processes whose supervisor is dead (killed together with its watchdogs, say) and ends their process
// groups. Linux /proc only; elsewhere there is nothing to reap.
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export const SUPERVISOR_ENV = 'YGGDRASIL_SUPERVISOR';

/** Fields of /proc/<pid>/stat after the command name: pgrp (5) and starttime (22), 1-based. */
export function parseStatIds(stat: string): { pgrp: number; startTime: string } | undefined {
  const close = stat.lastIndexOf(')');
  if (close === -1) return undefined;
  const fields = stat.slice(close + 2).split(' ');
  const pgrp = Number(fields[2]);
  const startTime = fields[19];
  if (!Number.isInteger(pgrp) || startTime === undefined) return undefined;
  return { pgrp, startTime };
}

/** The value of one variable in a /proc/<pid>/environ text (NUL-separated), or undefined. */
export function envValue(environ: string, name: string): string | undefined {
  const prefix = `${name}=`;
  for (const entry of environ.split('\0')) if (entry.startsWith(prefix)) return entry.slice(prefix.length);
  return undefined;
}

async function statOf(pid: number | string) {
  try {
    return parseStatIds(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** This process as a supervisor: "<pid>:<start time>", unique even when pids are reused. */
export async function supervisorMark(): Promise<string> {
  const self = await statOf(process.pid);
  return `${process.pid}:${self?.startTime ?? 'unknown'}`;
}

async function supervisorAlive(mark: string): Promise<boolean> {
  const [pid, startTime] = mark.split(':');
  if (!pid || !/^\d+$/.test(pid)) return false;
  const s = await statOf(pid);
  return s !== undefined && s.startTime === startTime;
}

export interface Orphan {
  pid: number;
  pgrp: number;
  supervisor: string;
}

/** Processes left by a supervisor that is gone. */
export async function findOrphans(): Promise<Orphan[]> {
  let names: string[];
  try {
    names = await readdir('/proc');
  } catch {
    return [];
  }
  const alive = new Map<string, boolean>();
  const out: Orphan[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let environ: string;
    try {
      environ = await readFile(`/proc/${name}/environ`, 'latin1');
    } catch {
      continue; // gone, or not ours to read
    }
    const supervisor = envValue(environ, SUPERVISOR_ENV);
    if (supervisor === undefined) continue;
    if (!alive.has(supervisor)) alive.set(supervisor, await supervisorAlive(supervisor));
    if (alive.get(supervisor)) continue;
    const s = await statOf(name);
    if (s) out.push({ pid: Number(name), pgrp: s.pgrp, supervisor });
  }
  return out;
}

const signalGroup = (pgrp: number, signal: NodeJS.Signals) => {
  try {
    process.kill(-pgrp, signal);
    return true;
  } catch {
    return false;
  }
};

/** Ends the process groups of every orphan: SIGTERM, up to `graceMs`, then SIGKILL. Returns them. */
export async function reapOrphans(graceMs = 2000): Promise<Orphan[]> {
  const orphans = await findOrphans();
  const groups = new Set(orphans.map((o) => o.pgrp).filter((g) => g > 1));
  for (const g of groups) signalGroup(g, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while ([...groups].some((g) => signalGroup(g, 0 as unknown as NodeJS.Signals)) && Date.now() < deadline) {
    await sleep(50);
  }
  for (const g of groups) signalGroup(g, 'SIGKILL');
  return orphans;
}
