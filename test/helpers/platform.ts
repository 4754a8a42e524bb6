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
  // TEST_DATAPLANE=haproxy runs them with HAProxy on LB_PORT (test/haproxy-conformance.test.ts does).
  ...(process.env.TEST_DATAPLANE ? { DATAPLANE: process.env.TEST_DATAPLANE } : {}),
  // Each such child run has containers and a network of its own (two at once must not adopt or remove
  // each other's); the wrapper that set it removes what is left.
  ...(process.env.TEST_DOCKER_OWNER
    ? { DOCKER_OWNER: process.env.TEST_DOCKER_OWNER, DOCKER_NETWORK: process.env.TEST_DOCKER_OWNER }
    : {}),
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

/** This run has HAProxy on LB_PORT (TEST_DATAPLANE=haproxy): rows the README's table says it lacks differ. */
export const ON_HAPROXY = process.env.TEST_DATAPLANE === 'haproxy';

export function testConfig(env: Record<string, string> = {}): PlatformConfig {
  return loadPlatformConfig({ ...TEST_DEFAULTS, ...env }, undefined);
}

export async function bootPlatform(env: Record<string, string> = {}): Promise<Platform> {
  const cfg = testConfig(env);
  const p = await startPlatform(cfg, { logger: createLogger(cfg.LOG_LEVEL) });
  if (cfg.DATAPLANE === 'haproxy') {
    // Ready for the controller is not yet in HAProxy (it is programmed just after): until then the
    // requests go to the Node router behind it, and a test would measure that one.
    const ready = p.controller.waitForReady.bind(p.controller);
    p.controller.waitForReady = async (count, timeoutMs) => {
      await ready(count, timeoutMs);
      await waitFor(
        `HAProxy to have ${count} servers`,
        async () => {
          const s = (await (await fetch(`${p.controllerUrl}/status`)).json()) as {
            dataplane: { servers: number };
          };
          return s.dataplane.servers >= count;
        },
        timeoutMs,
      );
    };
  }
  return p;
}

/**
 * The autoscaler with short windows, for the engines' load tests: 12 requests in flight against
 * MAX_CONCURRENCY 4 × 0.5 per instance want 6 instances (MAX_INSTANCES caps them).
 */
export const FAST_AUTOSCALER: Record<string, string> = {
  MAX_CONCURRENCY: '4',
  TARGET_UTILIZATION: '0.5',
  TARGET_CPU: '0',
  STABLE_WINDOW_MS: '3000',
  PANIC_WINDOW_MS: '1000',
  SCALE_INTERVAL_MS: '250',
};

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
