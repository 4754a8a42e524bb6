// The controller's timing on a FakeClock: restart backoff, the startup deadline, the drain timeout and
// the autoscale loop's interval, each checked at the millisecond around its edge. No sockets, no
// processes, no real waiting: the scripted driver and health check answer at once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { FakeClock } from '../core/fake-clock.js';
import { createLogger } from '../core/logger.js';
import type { ExitInfo, InstanceDriver, InstanceHandle, InstanceSpec } from '../runtime/driver.js';
import { AutoscaleLoop } from './autoscale-loop.js';
import { Controller, type ControllerOptions } from './controller.js';
import type { ProbeResult } from './health-probe.js';

class ScriptedDriver implements InstanceDriver {
  readonly kind = 'scripted';
  readonly cpuLimitCores = 1;
  readonly mode = 'instances' as const;
  readonly starts: Array<{ id: string; at: number }> = [];
  readonly stops: Array<{ id: string; at: number }> = [];
  private n = 0;
  private readonly exits: Array<(e: ExitInfo) => void> = [];
  readonly handles = new Map<string, InstanceHandle>();

  constructor(private readonly clock: FakeClock) {}

  async start(spec: InstanceSpec): Promise<InstanceHandle> {
    this.n++;
    this.starts.push({ id: spec.id, at: this.clock.now() });
    const h = {
      id: spec.id,
      incarnation: `inc-${this.n}`,
      endpoint: { host: '127.0.0.1', port: 10_000 + this.n },
      startedAt: this.clock.now(),
      meta: {},
    };
    this.handles.set(spec.id, h);
    return h;
  }
  async stop(id: string): Promise<void> {
    this.stops.push({ id, at: this.clock.now() });
  }
  /** The instance exits by itself (a crash: code 1). */
  crash(id: string): void {
    const h = this.handles.get(id)!;
    for (const l of this.exits) l({ id, incarnation: h.incarnation, code: 1, signal: null, lastOutput: [] });
  }
  async usage() {
    return undefined;
  }
  async adopt() {
    return [];
  }
  async pause(): Promise<void> {}
  async resume(): Promise<void> {}
  onExit(l: (e: ExitInfo) => void): void {
    this.exits.push(l);
  }
  async close(): Promise<void> {}
}

function setup(over: Partial<ControllerOptions> = {}, probe: () => ProbeResult = () => ({ ok: true })) {
  const clock = new FakeClock(0);
  const driver = new ScriptedDriver(clock);
  const c = new Controller({
    driver,
    logger: createLogger('silent'),
    clock,
    probe: async () => probe(),
    minInstances: 1,
    maxInstances: 4,
    healthCheckIntervalMs: 3_600_000,
    healthCheckTimeoutMs: 1000,
    healthFailureThreshold: 3,
    startupTimeoutMs: 5000,
    startupProbeIntervalMs: 100,
    restartBackoffMs: 1000,
    restartBackoffMaxMs: 8000,
    drainTimeoutMs: 3000,
    stopGraceMs: 10,
    reconcileIntervalMs: 60_000,
    usageIntervalMs: 60_000,
    ...over,
  });
  return { clock, driver, c };
}

describe('Controller timing (FakeClock)', () => {
  it('restart backoff: the first crash restarts at once, then RESTART_BACKOFF_MS doubling', async () => {
    const { clock, driver, c } = setup();
    await c.start();
    await clock.advance(0);
    assert.equal(c.readyCount(), 1);
    const at = (k: number) => driver.starts[k]!.at;
    driver.crash('agent-1'); // ready for 0 ms: a crash
    await clock.advance(0);
    assert.equal(driver.starts.length, 2, 'the first crash restarts at once');
    assert.equal(at(1), at(0));
    driver.crash('agent-1');
    await clock.advance(999);
    assert.equal(driver.starts.length, 2, 'the second waits RESTART_BACKOFF_MS');
    await clock.advance(2);
    assert.equal(driver.starts.length, 3);
    assert.equal(at(2) - at(1), 1001);
    driver.crash('agent-1');
    await clock.advance(1999);
    assert.equal(driver.starts.length, 3, 'the third waits twice as long');
    await clock.advance(2);
    assert.equal(driver.starts.length, 4);
    await c.stop();
  });

  it('STARTUP_TIMEOUT_MS: an instance whose health check never passes fails at its deadline, not before', async () => {
    const { clock, driver, c } = setup({}, () => ({ ok: false, reason: 'HTTP 503 on /health' }));
    await c.start();
    await clock.advance(4900);
    assert.equal(c.status().instances[0]!.state, 'starting');
    await clock.advance(1200);
    const s = c.status().instances[0]!;
    assert.equal(
      s.lastFailure?.reason.startsWith('not healthy within STARTUP_TIMEOUT_MS=5000'),
      true,
      s.lastFailure?.reason,
    );
    assert.ok(driver.stops.length >= 1, 'the failed start is stopped');
    await c.stop();
  });

  it('DRAIN_TIMEOUT_MS: a drained instance with a request that never ends stops at the deadline', async () => {
    const { clock, driver, c } = setup();
    let inflight = 1;
    c.setLoadSource({ inflight: () => inflight, sessions: () => 0 });
    await c.start();
    await clock.advance(0);
    assert.equal(c.drainInstance('agent-1', false, 'test'), 'accepted');
    const drainedAt = clock.now();
    await clock.advance(2950);
    assert.equal(driver.stops.length, 0, 'still draining: the request is in flight');
    await clock.advance(100);
    assert.equal(driver.stops.length, 1);
    assert.ok(driver.stops[0]!.at - drainedAt >= 3000 && driver.stops[0]!.at - drainedAt < 3050);
    inflight = 0;
    const stopped = c.events.recent(50).find((e) => e.type === 'instance_stopped');
    assert.match(stopped!.message, /still in flight after DRAIN_TIMEOUT_MS/);
    await c.stop();
  });

  it('a drain ends as soon as the last request does', async () => {
    const { clock, driver, c } = setup();
    let inflight = 2;
    c.setLoadSource({ inflight: () => inflight, sessions: () => 0 });
    await c.start();
    await clock.advance(0);
    c.drainInstance('agent-1', false, 'test');
    await clock.advance(500);
    inflight = 0;
    await clock.advance(30);
    assert.equal(driver.stops.length, 1);
    assert.ok(driver.stops[0]!.at <= 525 + 25, `stopped at ${driver.stops[0]!.at}`);
    await c.stop();
  });
});

describe('AutoscaleLoop timing (FakeClock)', () => {
  it('decides every SCALE_INTERVAL_MS from the samples, and not while mayScale says no', async () => {
    const clock = new FakeClock(0);
    const desired: number[] = [];
    let may = true;
    const loop = new AutoscaleLoop({
      target: {
        readyCount: () => 1,
        usageOfReady: () => [],
        setDesired: (n) => desired.push(n),
      },
      registry: new Registry(),
      onError: (l, e) => assert.fail(`${l}: ${e}`),
      concurrency: () => 30,
      mayScale: () => may,
      clock,
      minInstances: 1,
      maxInstances: 10,
      maxConcurrency: 10,
      targetUtilization: 1,
      targetCpu: 0,
      cpuLimitCores: 1,
      stableWindowMs: 6000,
      panicWindowMs: 1000,
      scaleIntervalMs: 2000,
      scaleToZeroGraceMs: 0,
    });
    loop.start();
    await clock.advance(1999);
    assert.deepEqual(desired, [], 'no decision before the first interval');
    await clock.advance(1);
    assert.deepEqual(desired, [3], '30 in flight, 10 each: 3');
    may = false;
    await clock.advance(4000);
    assert.deepEqual(desired, [3], 'no decision while it may not scale');
    may = true;
    await clock.advance(2000);
    assert.deepEqual(desired, [3, 3]);
    loop.stop();
    assert.equal(clock.pending, 0, 'stop leaves no timer');
  });
});
