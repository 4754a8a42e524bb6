import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Controller } from '../controller/controller.js';
import { probeHealth } from '../controller/health-probe.js';
import { isYggError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { type ExitInfo, urlOf } from './driver.js';
import { SimulatedDriver } from './simulated-driver.js';

describe('SimulatedDriver: the shared health server', () => {
  const driver = new SimulatedDriver();
  after(() => driver.close());

  const table = [
    { name: 'GET /health answers 200', method: 'GET', path: '/health', want: 200 },
    { name: 'GET /health?x=1 answers 200', method: 'GET', path: '/health?x=1', want: 200 },
    { name: 'HEAD /health answers 200', method: 'HEAD', path: '/health', want: 200 },
    { name: 'POST /health is not a probe', method: 'POST', path: '/health', want: 404 },
    { name: 'any other path answers 404', method: 'GET', path: '/process', want: 404 },
  ];
  for (const { name, method, path, want } of table) {
    it(name, async () => {
      const h = await driver.start({ id: `agent-${name.length}-${method}` });
      const res = await fetch(`${urlOf(h.endpoint)}${path}`, { method });
      await res.arrayBuffer();
      assert.equal(res.status, want);
      await driver.stop(h.id, 0);
    });
  }

  it('every simulated instance shares one endpoint on 127.0.0.1 and passes the controller probe', async () => {
    const a = await driver.start({ id: 'agent-a' });
    const b = await driver.start({ id: 'agent-b' });
    assert.deepEqual(a.endpoint, b.endpoint);
    assert.equal(a.endpoint.host, '127.0.0.1');
    assert.notEqual(a.incarnation, b.incarnation);
    assert.deepEqual(await probeHealth(a.endpoint, '/health', 1000), { ok: true });
    await driver.stop('agent-a', 0);
    await driver.stop('agent-b', 0);
  });
});

describe('SimulatedDriver: lifecycle', () => {
  type Step = { op: 'start' | 'stop' | 'crash'; id: string };
  const table: Array<{
    name: string;
    steps: Step[];
    wantIds: string[];
    wantExits: Array<Pick<ExitInfo, 'id' | 'code'>>;
    wantError?: string;
  }> = [
    {
      name: 'start adds an instance',
      steps: [{ op: 'start', id: 'agent-1' }],
      wantIds: ['agent-1'],
      wantExits: [],
    },
    {
      name: 'stop removes it and reports a clean exit',
      steps: [
        { op: 'start', id: 'agent-1' },
        { op: 'stop', id: 'agent-1' },
      ],
      wantIds: [],
      wantExits: [{ id: 'agent-1', code: 0 }],
    },
    {
      name: 'stopping an unknown id does nothing',
      steps: [{ op: 'stop', id: 'agent-9' }],
      wantIds: [],
      wantExits: [],
    },
    {
      name: 'crash reports exit code 1',
      steps: [
        { op: 'start', id: 'agent-1' },
        { op: 'start', id: 'agent-2' },
        { op: 'crash', id: 'agent-2' },
      ],
      wantIds: ['agent-1'],
      wantExits: [{ id: 'agent-2', code: 1 }],
    },
    {
      name: 'a second start of a running id is refused',
      steps: [
        { op: 'start', id: 'agent-1' },
        { op: 'start', id: 'agent-1' },
      ],
      wantIds: ['agent-1'],
      wantExits: [],
      wantError: 'YGG_ERR_DRIVER',
    },
    {
      name: 'a stopped id may start again',
      steps: [
        { op: 'start', id: 'agent-1' },
        { op: 'stop', id: 'agent-1' },
        { op: 'start', id: 'agent-1' },
      ],
      wantIds: ['agent-1'],
      wantExits: [{ id: 'agent-1', code: 0 }],
    },
  ];
  for (const { name, steps, wantIds, wantExits, wantError } of table) {
    it(name, async () => {
      const driver = new SimulatedDriver();
      const exits: ExitInfo[] = [];
      driver.onExit((e) => exits.push(e));
      let error: string | undefined;
      try {
        for (const s of steps) {
          if (s.op === 'start') await driver.start({ id: s.id });
          else if (s.op === 'stop') await driver.stop(s.id, 1000);
          else driver.crash(s.id);
        }
      } catch (err) {
        error = isYggError(err) ? err.code : String(err);
      }
      assert.equal(error, wantError);
      assert.deepEqual(driver.ids().sort(), wantIds);
      assert.deepEqual(
        exits.map((e) => ({ id: e.id, code: e.code })),
        wantExits,
      );
      await driver.close();
    });
  }

  it('a start in progress already holds its id', async () => {
    const driver = new SimulatedDriver({ startDelayMs: 50 });
    const first = driver.start({ id: 'agent-1' });
    await assert.rejects(driver.start({ id: 'agent-1' }), /already running/);
    await first;
    assert.deepEqual(driver.ids(), ['agent-1']);
    await driver.close();
  });

  it('close stops every instance, reports their exits and closes the server', async () => {
    const driver = new SimulatedDriver();
    const exits: string[] = [];
    driver.onExit((e) => exits.push(e.id));
    const h = await driver.start({ id: 'agent-1' });
    await driver.start({ id: 'agent-2' });
    await driver.close();
    assert.deepEqual(exits.sort(), ['agent-1', 'agent-2']);
    assert.equal((await probeHealth(h.endpoint, '/health', 500)).ok, false);
    assert.deepEqual(await driver.adopt(), []);
  });
});

describe('SimulatedDriver: synthetic usage', () => {
  const table = [
    {
      name: 'no CPU at start',
      cpuCores: 0.5,
      memoryBytes: 1000,
      afterMs: 0,
      want: { cpuSeconds: 0, memoryBytes: 1000 },
    },
    {
      name: 'CPU grows at cpuCores',
      cpuCores: 0.5,
      memoryBytes: 1000,
      afterMs: 2000,
      want: { cpuSeconds: 1, memoryBytes: 1000 },
    },
    {
      name: 'defaults: 0.01 cores, 64 MiB',
      cpuCores: undefined,
      memoryBytes: undefined,
      afterMs: 1000,
      want: { cpuSeconds: 0.01, memoryBytes: 64 * 1024 * 1024 },
    },
  ];
  for (const { name, cpuCores, memoryBytes, afterMs, want } of table) {
    it(name, async () => {
      let t = 1_000_000;
      const driver = new SimulatedDriver({
        now: () => t,
        ...(cpuCores !== undefined && { cpuCores }),
        ...(memoryBytes !== undefined && { memoryBytes }),
      });
      await driver.start({ id: 'agent-1' });
      t += afterMs;
      assert.deepEqual(await driver.usage('agent-1'), { ...want, at: t });
      assert.equal(await driver.usage('agent-2'), undefined);
      await driver.close();
    });
  }
});

describe('SimulatedDriver under the real controller', () => {
  it('a pool of 50 simulated instances becomes ready through real health probes', async () => {
    const driver = new SimulatedDriver();
    const controller = new Controller({
      driver,
      logger: createLogger('silent'),
      minInstances: 50,
      maxInstances: 50,
      healthCheckIntervalMs: 100,
      healthCheckTimeoutMs: 1000,
      healthFailureThreshold: 1,
      startupTimeoutMs: 10_000,
      startupProbeIntervalMs: 20,
      restartBackoffMs: 10,
      restartBackoffMaxMs: 100,
      drainTimeoutMs: 100,
      stopGraceMs: 0,
    });
    try {
      await controller.start();
      await controller.waitForReady(50, 10_000);
      assert.equal(controller.status().driver, 'simulated');
      // Periodic health checks pass too: nothing fails over a few rounds.
      await new Promise((r) => setTimeout(r, 350));
      assert.equal(controller.readyCount(), 50);
      assert.equal(controller.events.recent(200).filter((e) => e.type === 'instance_failed').length, 0);
    } finally {
      await controller.stop();
    }
    assert.deepEqual(driver.ids(), []);
  });
});
