// Test helpers: boot the whole platform in-process on random free ports with real agent processes.
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPlatformConfig, type PlatformConfig } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { type Platform, startPlatform } from '../../src/platform.js';

export const TEST_DEFAULTS: Record<string, string> = {
  // TEST_DRIVER=docker runs the same tests on containers (test/docker-router.test.ts does, in CI).
  ...(process.env.TEST_DRIVER ? { DRIVER: process.env.TEST_DRIVER } : {}),
  LB_PORT: '0',
  CONTROLLER_PORT: '0',
  LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
  NODE_ENV: 'test',
  HEALTH_CHECK_INTERVAL: '1000',
  STOP_GRACE_MS: '2000',
  DRAIN_TIMEOUT_MS: '5000',
  RESTART_BACKOFF_MS: '100',
  RESTART_BACKOFF_MAX_MS: '2000',
  // No keys unless a test makes some: never the developer's ~/.yggdrasil/auth.json.
  AUTH_FILE: join(tmpdir(), `ygg-test-no-keys-${process.pid}.json`),
};

export function testConfig(env: Record<string, string> = {}): PlatformConfig {
  return loadPlatformConfig({ ...TEST_DEFAULTS, ...env }, undefined);
}

export async function bootPlatform(env: Record<string, string> = {}): Promise<Platform> {
  const cfg = testConfig(env);
  return startPlatform(cfg, { logger: createLogger(cfg.LOG_LEVEL) });
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes (then throws with `what`). */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  everyMs = 20,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function json<T = Record<string, unknown>>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

/** What identifies one run of an instance on any runtime: its pid or its container. */
export function runKey(i: { meta: Record<string, string | number> }): string {
  return String(i.meta.pid ?? i.meta.containerId);
}

/** Kills a ready instance the hard way (SIGKILL / docker kill); resolves once the controller saw it. */
export async function killInstance(p: Platform, id: string): Promise<void> {
  const inst = p.controller.status().instances.find((i) => i.id === id && i.state === 'ready');
  if (!inst) throw new Error(`${id} is not ready`);
  const key = runKey(inst);
  if (inst.meta.pid !== undefined) process.kill(Number(inst.meta.pid), 'SIGKILL');
  else execFileSync('docker', ['kill', String(inst.meta.containerId)], { stdio: 'ignore' });
  await waitFor(
    `the controller to see ${id} die`,
    () =>
      !p.controller.status().instances.some((i) => i.id === id && i.state === 'ready' && runKey(i) === key),
  );
}
