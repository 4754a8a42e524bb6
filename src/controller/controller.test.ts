// The controller's shell with a fake runtime and a fake health check: no processes, no sockets.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { Endpoint, ExitInfo, InstanceDriver, InstanceHandle, InstanceSpec } from '../runtime/driver.js';
import { Controller, type ControllerOptions } from './controller.js';
import type { ProbeResult } from './health-probe.js';

class FakeDriver implements InstanceDriver {
  readonly kind = 'fake';
  readonly cpuLimitCores = 1;
  readonly mode = 'instances' as const;
  private n = 0;
  private readonly exits: Array<(e: ExitInfo) => void> = [];
  readonly running = new Set<string>();

  async start(spec: InstanceSpec): Promise<InstanceHandle> {
    this.running.add(spec.id);
    this.n++;
    return {
      id: spec.id,
      incarnation: `inc-${this.n}`,
      endpoint: { host: '127.0.0.1', port: 10_000 + this.n },
      startedAt: Date.now(),
      meta: {},
    };
  }
  async stop(id: string): Promise<void> {
    this.running.delete(id);
  }
  async usage() {
    return undefined;
  }
  async adopt(): Promise<InstanceHandle[]> {
    return [];
  }
  async pause(): Promise<void> {}
  async resume(): Promise<void> {}
  onExit(l: (e: ExitInfo) => void): void {
    this.exits.push(l);
  }
  async close(): Promise<void> {}
}

/** A pino logger that keeps its lines. */
function capturingLogger() {
  const lines: Array<{ level: number; msg: string; instance?: string }> = [];
  const logger = pino(
    { level: 'debug' },
    {
      write: (s: string) => {
        lines.push(JSON.parse(s));
      },
    },
  );
  return { logger, lines };
}

function controller(over: Partial<ControllerOptions> & Pick<ControllerOptions, 'probe'>) {
  const { logger, lines } = capturingLogger();
  const driver = new FakeDriver();
  const c = new Controller({
    driver,
    logger,
    minInstances: 1,
    maxInstances: 100,
    healthCheckIntervalMs: 3_600_000, // rounds are run by the test
    healthCheckTimeoutMs: 1000,
    healthFailureThreshold: 3,
    startupTimeoutMs: 10_000,
    startupProbeIntervalMs: 10,
    restartBackoffMs: 100,
    restartBackoffMaxMs: 1000,
    drainTimeoutMs: 100,
    stopGraceMs: 10,
    ...over,
  });
  return { c, driver, lines };
}

describe('Controller health checks', () => {
  it('a round that outlives some of its instances skips them (no crash on a stopped one)', async () => {
    const pending: Array<(r: ProbeResult) => void> = [];
    let round = false;
    const probe = (_e: Endpoint) =>
      round
        ? new Promise<ProbeResult>((resolve) => pending.push(resolve))
        : Promise.resolve({ ok: true as const });
    const { c } = controller({ probe });
    await c.start();
    c.setDesired(70, 'test');
    await c.waitForReady(70, 5000);
    round = true;
    const checks = c.checkHealth(Date.now() + 3_600_001);
    await new Promise((r) => setImmediate(r));
    assert.equal(pending.length, 64, 'the first batch is out');
    // Most instances go away while the first batch is probed.
    c.setDesired(1, 'test');
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(c.status().instances.length < 70, 'instances were stopped meanwhile');
    for (const resolve of pending.splice(0)) resolve({ ok: true });
    await assert.doesNotReject(checks);
    await c.stop();
  });

  it('logs a run of failed checks once, then the failure that replaces the instance', async () => {
    let failing = false;
    const probe = async (): Promise<ProbeResult> =>
      failing ? { ok: false, reason: 'HTTP 500 on /health' } : { ok: true };
    const { c, lines } = controller({ probe, healthFailureThreshold: 4 });
    await c.start();
    await c.waitForReady(1, 5000);
    failing = true;
    // Four rounds, each far enough "later" that the instance is due again.
    for (let i = 1; i <= 4; i++) await c.checkHealth(Date.now() + i * 3_600_001);
    const warnings = lines.filter((l) => l.level === 40);
    const checkLines = warnings.filter((l) => /health check of agent-1 failed/.test(l.msg));
    assert.equal(checkLines.length, 1, 'one line for the run of failures');
    const failed = c.status().events.filter((e) => e.type === 'instance_failed');
    assert.equal(failed.length, 1);
    assert.match(failed[0]!.message, /4 consecutive failed health checks \(last: HTTP 500 on \/health\)/);
    await c.stop();
  });

  it('a failed background task is logged and counted, never an unhandled rejection', async () => {
    const probe = async (): Promise<ProbeResult> => ({ ok: true });
    const { c, driver, lines } = controller({ probe, usageIntervalMs: 5 });
    driver.start = async () => {
      throw new Error('engine on fire');
    };
    // A bug in a loop: caught, logged, counted, and the loop goes on.
    (c as unknown as { sampleUsage: () => Promise<void> }).sampleUsage = async () => {
      throw new Error('usage bug');
    };
    await c.start();
    const loggedLines = () =>
      lines.filter((l) => l.level === 50 && l.msg === 'background task failed: usage sampling');
    // Two rounds of the loop, however busy the machine (a fixed 60 ms saw only one under coverage in CI).
    for (let waited = 0; loggedLines().length < 2 && waited < 5000; waited += 10) {
      await new Promise((r) => setTimeout(r, 10));
    }
    // A start error is an instance failure (shown in status), not a crash of the controller.
    assert.match(c.status().instances[0]?.lastFailure?.reason ?? '', /engine on fire/);
    const logged = loggedLines();
    assert.ok(logged.length >= 2, `${logged.length} lines`);
    const text = await c.metrics.registry.metrics();
    const m = /yggdrasil_controller_background_errors_total\{loop="usage sampling"\} (\d+)/.exec(text);
    assert.ok(Number(m?.[1]) >= 2, text.slice(0, 200));
    await c.stop();
  });
});

describe('Controller adoption', () => {
  it('an adopted instance started long ago gets the whole STARTUP_TIMEOUT_MS and full probe timeouts from its adoption', async () => {
    // A container created an hour ago (a standby taking over a pool that ran a while): its startup
    // deadline counts from the adoption, not from its creation, or its first failed probe replaces it.
    const timeouts: number[] = [];
    let calls = 0;
    const probe = async (_e: Endpoint, _path: string, timeoutMs: number): Promise<ProbeResult> => {
      timeouts.push(timeoutMs);
      calls++;
      return calls === 1 ? { ok: false, reason: 'busy machine' } : { ok: true };
    };
    const { c, driver } = controller({ probe, minInstances: 1 });
    driver.adopt = async () => [
      {
        id: 'agent-1',
        incarnation: 'inc-old',
        endpoint: { host: '127.0.0.1', port: 9999 },
        startedAt: Date.now() - 3_600_000,
        meta: { adopted: 1 },
      },
    ];
    await c.start();
    await c.waitForReady(1, 5000);
    const agent1 = c.status().instances.find((i) => i.id === 'agent-1')!;
    assert.equal(agent1.meta.adopted, 1, 'the adopted instance itself is ready, not a replacement');
    assert.equal(agent1.restarts, 0);
    assert.equal(
      timeouts[0],
      1000,
      'the first probe had HEALTH_CHECK_TIMEOUT_MS, not what was left of a past deadline',
    );
    await c.stop();
  });
});
