// The embedded default runtime: each instance is a local child process (the reference agent, or
// AGENT_COMMAND run by /bin/sh). Each child gets its own process group so a stop reaches everything it
// spawned, and a watchdog holding a liveness pipe (watchdog.ts) so the group dies with the platform,
// SIGKILL included. A platform that starts reaps the groups a dead one left behind (orphans.ts).
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { YggError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { agentEnvironment } from './agent-env.js';
import type { ExitInfo, InstanceDriver, InstanceHandle, InstanceSpec, ResourceUsage } from './driver.js';
import { freePort } from './free-port.js';
import { reapOrphans, SUPERVISOR_ENV, supervisorMark } from './orphans.js';
import { processUsage } from './proc-usage.js';
import { startWatchdog, stopWatchdog } from './watchdog.js';

export interface ProcessDriverOptions {
  /** Shell command of the user's agent; empty runs the reference agent. */
  command?: string;
  /** Address the instances listen on and are reached at. */
  host?: string;
  /** The environment every instance is given (defaults to the basics of this process's: PATH, HOME, LANG, TZ). */
  env?: Record<string, string>;
  /** Working directory of AGENT_COMMAND (defaults to this process's). */
  cwd?: string;
  /** Time the watchdog gives an orphaned agent between SIGTERM and SIGKILL. @default 2000 */
  orphanGraceMs?: number;
  /** Forward the instances' stdout/stderr to this process's (npm start); tests turn it off. */
  forwardOutput?: boolean;
  logger: Logger;
}

interface Running {
  handle: InstanceHandle;
  child: ChildProcess;
  watchdog: ChildProcess;
  /** stop() is ending it: the group is stop()'s to end, not the watchdog's. */
  stopping: boolean;
  exited: Promise<void>;
  lastOutput: string[];
}

const KEEP_LINES = 20;

/** Newest modification time of the .ts files under `dir` (recursively). */
function newestSource(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (name.endsWith('.ts')) newest = Math.max(newest, st.mtimeMs);
  }
  return newest;
}

/**
 * Where the reference agent's entry point is, and how to run it. From the build it is dist/agent/main.js.
 * From source (tests, tsx) the build is used when it is newer than the agent's sources, since tsx adds
 * about 300 ms to every cold start; otherwise the source runs under tsx.
 */
export function referenceAgentCommand(): { file: string; args: string[] } {
  const here = fileURLToPath(import.meta.url);
  const built = fileURLToPath(new URL('../agent/main.js', import.meta.url));
  if (!here.endsWith('.ts')) return { file: process.execPath, args: [built] };
  const src = fileURLToPath(new URL('..', import.meta.url));
  const dist = join(src, '..', 'dist', 'agent', 'main.js');
  if (existsSync(dist)) {
    const fresh =
      statSync(dist).mtimeMs >= Math.max(newestSource(join(src, 'agent')), newestSource(join(src, 'core')));
    if (fresh) return { file: process.execPath, args: [dist] };
  }
  return {
    file: process.execPath,
    args: ['--import', 'tsx', fileURLToPath(new URL('../agent/main.ts', import.meta.url))],
  };
}

export class ProcessDriver implements InstanceDriver {
  readonly kind = 'process';
  /** A local process may use a whole core. */
  readonly cpuLimitCores = 1;
  readonly mode = 'instances' as const;
  private readonly running = new Map<string, Running>();
  private readonly exitListeners: Array<(exit: ExitInfo) => void> = [];
  private readonly host: string;
  private readonly killAllOnExit = () => {
    for (const r of this.running.values()) {
      killGroup(r.child, 'SIGKILL');
      stopWatchdog(r.watchdog);
    }
  };
  private mark: Promise<string> | undefined;
  private readonly env: Record<string, string>;

  constructor(private readonly opts: ProcessDriverOptions) {
    this.host = opts.host ?? '127.0.0.1';
    this.env = opts.env ?? agentEnvironment({ parent: process.env, names: [], basics: true });
    process.on('exit', this.killAllOnExit);
  }

  async start(spec: InstanceSpec): Promise<InstanceHandle> {
    if (this.running.has(spec.id)) {
      throw new YggError('YGG_ERR_DRIVER', `instance ${spec.id} is already running`);
    }
    const port = await freePort(this.host);
    const incarnation = randomUUID();
    this.mark ??= supervisorMark();
    const env = {
      ...this.env,
      ...spec.env,
      PORT: String(port),
      AGENT_ID: spec.id,
      INSTANCE_ID: `${spec.id}-${incarnation.slice(0, 8)}`,
      AGENT_HOST: this.host,
      [SUPERVISOR_ENV]: await this.mark,
    };
    const forward = this.opts.forwardOutput ?? false;
    const stdio: ['ignore', 'pipe' | 'ignore', 'pipe'] = ['ignore', forward ? 'pipe' : 'ignore', 'pipe'];
    let child: ChildProcess;
    if (this.opts.command) {
      child = spawn('/bin/sh', ['-c', shellScript(this.opts.command)], {
        env,
        detached: true,
        stdio,
        ...(this.opts.cwd ? { cwd: this.opts.cwd } : {}),
      });
    } else {
      const agent = referenceAgentCommand();
      child = spawn(agent.file, agent.args, { env, detached: true, stdio });
    }
    // Spawned at once after the agent, before any await: the group is never without its watchdog.
    const watchdog =
      child.pid === undefined
        ? undefined
        : startWatchdog(child.pid, this.opts.orphanGraceMs ?? 2000, this.env);
    const handle: InstanceHandle = {
      id: spec.id,
      incarnation,
      endpoint: { host: this.host, port },
      startedAt: Date.now(),
      meta: { pid: child.pid ?? -1, port },
    };
    const lastOutput: string[] = [];
    let exitResolve!: () => void;
    const exited = new Promise<void>((r) => {
      exitResolve = r;
    });
    const running: Running = { handle, child, watchdog: watchdog!, stopping: false, exited, lastOutput };
    this.running.set(spec.id, running);

    if (forward) child.stdout?.pipe(process.stdout, { end: false });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      if (forward) process.stderr.write(chunk);
      for (const line of chunk.split('\n')) {
        if (line.trim() === '') continue;
        lastOutput.push(line.length > 500 ? `${line.slice(0, 500)}…` : line);
        if (lastOutput.length > KEEP_LINES) lastOutput.shift();
      }
    });
    child.unref();

    let reported = false;
    const report = (code: number | null, signal: string | null) => {
      if (reported) return;
      reported = true;
      if (this.running.get(spec.id) === running) this.running.delete(spec.id);
      // An agent that died by itself (or was killed) may leave children in its group (a shell
      // wrapper's agent, still serving on the old port): its watchdog ends them, with grace.
      if (!running.stopping) watchdog?.stdin?.end();
      exitResolve();
      const exit: ExitInfo = { id: spec.id, incarnation, code, signal, lastOutput: [...lastOutput] };
      for (const l of this.exitListeners) l(exit);
    };
    child.once('exit', (code, signal) => report(code, signal));
    child.once('error', (err) => {
      lastOutput.push(`spawn error: ${err.message}`);
      report(null, null);
    });
    if (child.pid === undefined) {
      // spawn failed synchronously (e.g. ENOENT is reported through 'error' on the next tick).
      await exited;
      throw new YggError(
        'YGG_ERR_DRIVER',
        `could not start ${spec.id}: ${lastOutput.at(-1) ?? 'spawn failed'}`,
      );
    }
    this.opts.logger.debug({ id: spec.id, pid: child.pid, port }, 'process started');
    return handle;
  }

  async stop(id: string, graceMs: number): Promise<void> {
    const r = this.running.get(id);
    if (!r) return;
    r.stopping = true;
    const deadline = Date.now() + graceMs;
    killGroup(r.child, 'SIGTERM');
    // A paused (SIGSTOPped) group holds the TERM until it runs again: thaw it to drain.
    killGroup(r.child, 'SIGCONT');
    const timer = setTimeout(() => killGroup(r.child, 'SIGKILL'), graceMs);
    try {
      await r.exited;
      // A shell command's children may still be finishing their requests: wait for the group too.
      const pid = r.child.pid;
      while (pid !== undefined && groupAlive(pid) && Date.now() < deadline) await sleep(25);
    } finally {
      clearTimeout(timer);
    }
    killGroup(r.child, 'SIGKILL');
    stopWatchdog(r.watchdog);
  }

  /** SIGSTOP to the whole group: the agent and anything it started freeze, memory kept, no CPU. */
  async pause(id: string): Promise<void> {
    const r = this.running.get(id);
    if (!r) throw new YggError('YGG_ERR_DRIVER', `no instance ${id} to pause`);
    killGroup(r.child, 'SIGSTOP');
  }

  async resume(id: string): Promise<void> {
    const r = this.running.get(id);
    if (!r) throw new YggError('YGG_ERR_DRIVER', `no instance ${id} to resume`);
    killGroup(r.child, 'SIGCONT');
  }

  async usage(id: string): Promise<ResourceUsage | undefined> {
    const pid = this.running.get(id)?.child.pid;
    return pid === undefined ? undefined : processUsage(pid);
  }

  /**
   * Nothing to adopt (agents do not outlive their platform); instead, end what a platform that died
   * with its watchdogs left behind.
   */
  async adopt(): Promise<InstanceHandle[]> {
    const reaped = await reapOrphans(this.opts.orphanGraceMs ?? 2000);
    if (reaped.length > 0) {
      this.opts.logger.warn(
        { pids: reaped.map((o) => o.pid), supervisors: [...new Set(reaped.map((o) => o.supervisor))] },
        `ended ${reaped.length} agent process(es) left by a platform that died`,
      );
    }
    return [];
  }

  onExit(listener: (exit: ExitInfo) => void): void {
    this.exitListeners.push(listener);
  }

  /** Pids of the instances running now (tests use it to prove nothing is orphaned). */
  pids(): number[] {
    return [...this.running.values()].map((r) => r.child.pid ?? -1);
  }

  async close(graceMs = 2000): Promise<void> {
    await Promise.all([...this.running.keys()].map((id) => this.stop(id, graceMs)));
    process.off('exit', this.killAllOnExit);
  }
}

/**
 * A simple command is exec'ed so the agent itself is the process we watch and signal; anything with
 * shell syntax (VAR=x cmd, &&, pipes) runs under the shell, and stop() waits for the whole group.
 */
export function shellScript(command: string): string {
  const simple = /^[^\s=;&|<>`$()'"]+(\s|$)/.test(command) && !/[;&|<>`\n]/.test(command);
  return simple ? `exec ${command}` : command;
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}
