// CPU and memory of a local process from Linux /proc (no dependency, no child process).
import { readFile } from 'node:fs/promises';
import type { ResourceUsage } from './driver.js';

// Linux reports CPU times in clock ticks; USER_HZ is 100 on every mainstream architecture.
const TICKS_PER_SECOND = 100;

/** Parses /proc/<pid>/stat: fields after the parenthesised command name, utime=14 and stime=15 (1-based). */
export function parseProcStat(stat: string): { cpuSeconds: number; rssPages: number } | undefined {
  const close = stat.lastIndexOf(')');
  if (close === -1) return undefined;
  const fields = stat.slice(close + 2).split(' ');
  // fields[0] is field 3 (state); utime is field 14 → index 11, stime 15 → 12, rss 24 → 21.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const rss = Number(fields[21]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime) || !Number.isFinite(rss)) return undefined;
  return { cpuSeconds: (utime + stime) / TICKS_PER_SECOND, rssPages: rss };
}

export async function processUsage(pid: number, now = Date.now()): Promise<ResourceUsage | undefined> {
  try {
    const parsed = parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
    if (!parsed) return undefined;
    return { cpuSeconds: parsed.cpuSeconds, memoryBytes: parsed.rssPages * 4096, at: now };
  } catch {
    return undefined;
  }
}
