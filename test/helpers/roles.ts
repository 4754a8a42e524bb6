// `yggdrasil router` and `yggdrasil controller` as real processes (the built CLI) on ports of their
// own, sharing a test's redis-server; each stopped by the test that started it.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pinned } from '../../bench/procs.js';
import { freePort } from '../../src/runtime/free-port.js';
import { TEST_DEFAULTS } from './platform.js';
import { startRedis, type TestRedis } from './redis.js';
import { run, type Spawned } from './spawn.js';

const ROOT = new URL('../..', import.meta.url).pathname;
export const CLI = join(ROOT, 'dist/cli/main.js');
export const COUNTING_AGENT = join(ROOT, 'test/fixtures/counting-agent.mjs');

export interface RoleProcess {
  role: 'router' | 'controller';
  id: string;
  url: string;
  proc: Spawned;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it exited. */
  stop(graceMs?: number): Promise<void>;
}

export async function startRole(
  role: 'router' | 'controller',
  id: string,
  env: Record<string, string>,
  /** A core to pin it to (taskset, when there is one): the benchmarks do. */
  cpu?: number,
): Promise<RoleProcess> {
  const port = await freePort();
  const portVar = role === 'router' ? 'LB_PORT' : 'CONTROLLER_PORT';
  const [cmd, args] = pinned(process.execPath, [CLI, role], cpu);
  const proc = run(cmd, args, {
    ...TEST_DEFAULTS,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    LOG_FORMAT: 'json',
    NODE_ID: id,
    LB_PORT: '0',
    CONTROLLER_PORT: '0',
    ...env,
    [portVar]: String(port),
  });
  const url = `http://127.0.0.1:${port}`;
  const alive = { done: false };
  void proc.exited.then(() => {
    alive.done = true;
  });
  for (let i = 0; ; i++) {
    if (alive.done) throw new Error(`${role} ${id} exited at start:\n${proc.stderr()}\n${proc.stdout()}`);
    try {
      const res = await fetch(`${url}/health`);
      await res.body?.cancel();
      break;
    } catch {
      if (i > 200) throw new Error(`${role} ${id} did not listen on ${port}:\n${proc.stderr()}`);
      await sleep(50);
    }
  }
  return {
    role,
    id,
    url,
    proc,
    kill: (signal = 'SIGKILL') => {
      if (!alive.done) proc.child.kill(signal);
    },
    async stop(graceMs = 10_000) {
      if (alive.done) return;
      proc.child.kill('SIGTERM');
      const t = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
      await proc.exited;
      clearTimeout(t);
    },
  };
}

/** A redis-server with a controller and routers sharing it (test/shared-state.test.ts). */
export interface TestPool {
  redis: TestRedis;
  controller: RoleProcess;
  routers: RoleProcess[];
  stop(): Promise<void>;
}

/** Starts the pool and resolves once every router sees `ready` ready instances. */
export async function startPool(opts: {
  env: (redis: TestRedis) => Record<string, string>;
  controller: string;
  routers: string[];
  ready: number;
}): Promise<TestPool> {
  const redis = await startRedis();
  const env = opts.env(redis);
  const controller = await startRole('controller', opts.controller, env);
  const routers: RoleProcess[] = [];
  for (const id of opts.routers) routers.push(await startRole('router', id, env));
  const deadline = Date.now() + 30_000;
  const seen = async (r: RoleProcess) => {
    const h = (await (await fetch(`${r.url}/health`)).json()) as { readyInstances: number };
    return h.readyInstances === opts.ready;
  };
  for (;;) {
    if ((await Promise.all(routers.map(seen))).every(Boolean)) break;
    if (Date.now() > deadline)
      throw new Error(`the routers did not see ${opts.ready} ready instances in 30 s`);
    await sleep(50);
  }
  return {
    redis,
    controller,
    routers,
    async stop() {
      await Promise.all(routers.map((r) => r.stop()));
      await controller.stop();
      await redis.stop();
    },
  };
}
