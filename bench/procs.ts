// Processes for the benchmarks: CPU pinning (servers on core 0, load generators on core 1, where the
// machine has taskset and two cores), the platform as a child process, CPU time of a process.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { freePort } from '../src/runtime/free-port.js';
import { processUsage } from '../src/runtime/proc-usage.js';

export const SERVER_CPU = 0;
export const LOADGEN_CPU = 1;

let taskset: boolean | undefined;
export function canPin(): boolean {
  if (taskset === undefined) {
    try {
      execFileSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
      taskset = availableParallelism() >= 2;
    } catch {
      taskset = false;
    }
  }
  return taskset;
}

/** The command line that runs `cmd` pinned to `cpu` (unchanged when pinning is not possible). */
export function pinned(cmd: string, args: string[], cpu: number | undefined): [string, string[]] {
  if (cpu === undefined || !canPin()) return [cmd, args];
  return ['taskset', ['-c', String(cpu), cmd, ...args]];
}

export async function cpuSeconds(pids: number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) total += (await processUsage(pid))?.cpuSeconds ?? 0;
  return total;
}

export async function rssBytes(pid: number): Promise<number> {
  return (await processUsage(pid))?.memoryBytes ?? 0;
}

export interface PlatformProcess {
  child: ChildProcess;
  pid: number;
  lbUrl: string;
  controllerUrl: string;
  agents: Array<{ id: string; port: number; pid: number }>;
  stop(): Promise<void>;
  /**
   * SIGKILL of the platform, then the agents it had: its watchdogs end them; any still alive after
   * the grace time (a tree from before the watchdog, a frozen watchdog) are killed here. Resolves to
   * how many had to be.
   */
  kill(): Promise<number>;
}

/** Running, not a zombie (an orphan's exit is reaped by init, whenever init gets to it). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The agents' pids as the platform's /status gives them now (empty when it does not answer). */
async function agentPids(controllerUrl: string): Promise<number[]> {
  try {
    const s = (await (
      await fetch(`${controllerUrl}/status`, { signal: AbortSignal.timeout(2000) })
    ).json()) as {
      instances: Array<{ meta?: { pid?: number } }>;
    };
    return s.instances.map((i) => i.meta?.pid).filter((p): p is number => typeof p === 'number' && p > 0);
  } catch {
    return [];
  }
}

const root = new URL('..', import.meta.url).pathname;

/**
 * Starts `yggdrasil start` (from dist/ of `tree`, this repository by default) pinned to the server
 * core and waits for its pool.
 */
export async function startPlatformProcess(
  env: Record<string, string>,
  nodeArgs: string[] = [],
  tree: string = root,
): Promise<PlatformProcess> {
  const lbPort = await freePort();
  const controllerPort = await freePort();
  const [cmd, args] = pinned(process.execPath, [...nodeArgs, 'dist/cli/main.js', 'start'], SERVER_CPU);
  const child = spawn(cmd, args, {
    cwd: tree,
    env: {
      ...process.env,
      LOG_LEVEL: 'warn',
      ...env,
      LB_PORT: String(lbPort),
      CONTROLLER_PORT: String(controllerPort),
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const lbUrl = `http://127.0.0.1:${lbPort}`;
  const controllerUrl = `http://127.0.0.1:${controllerPort}`;
  const want = Number(env.MIN_INSTANCES ?? 1);
  const deadline = Date.now() + 60_000;
  let agents: PlatformProcess['agents'] = [];
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the platform exited: ${err}`);
    try {
      const s = (await (await fetch(`${controllerUrl}/status`)).json()) as {
        instances: Array<{ id: string; state: string; meta: { pid: number; port: number } }>;
      };
      const ready = s.instances.filter((i) => i.state === 'ready');
      if (ready.length >= want) {
        agents = ready.map((i) => ({ id: i.id, port: i.meta.port, pid: i.meta.pid }));
        break;
      }
    } catch {}
    if (Date.now() > deadline) throw new Error(`the platform did not reach ${want} ready instances: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // With taskset the node process is taskset's child after exec: same pid.
  return {
    child,
    pid: child.pid!,
    lbUrl,
    controllerUrl,
    agents,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
    async kill() {
      const pids = [...new Set([...agents.map((a) => a.pid), ...(await agentPids(controllerUrl))])];
      child.kill('SIGKILL');
      await exited;
      // The watchdog's grace is 2 s between SIGTERM and SIGKILL; give it that and a little more.
      const deadline = Date.now() + 3000;
      while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const left = pids.filter(alive);
      for (const pid of left) {
        try {
          process.kill(-pid, 'SIGKILL'); // the agent's own group (the process driver starts it detached)
        } catch {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {}
        }
      }
      const gone = Date.now() + 2000;
      while (left.some(alive) && Date.now() < gone) await new Promise((r) => setTimeout(r, 20));
      return left.length;
    },
  };
}

/** Debian's haproxy is there (DATAPLANE=haproxy can be measured). */
export function hasHaproxy(): boolean {
  try {
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A platform with DATAPLANE=haproxy, and the pid of its HAProxy (for CPU accounting). */
export async function startHaproxyPlatform(
  env: Record<string, string>,
): Promise<{ p: PlatformProcess; haproxyPid: number }> {
  const p = await startPlatformProcess({ ...env, DATAPLANE: 'haproxy' });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const s = (await (await fetch(`${p.controllerUrl}/status`)).json()) as {
      readyInstances: number;
      dataplane: { pid: number; servers: number };
    };
    // Measured once HAProxy has every ready instance (before that, requests go to the activator).
    if (s.dataplane.servers >= s.readyInstances && s.readyInstances > 0)
      return { p, haproxyPid: s.dataplane.pid };
    if (Date.now() > deadline) throw new Error('bench: haproxy did not get the pool within 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}
