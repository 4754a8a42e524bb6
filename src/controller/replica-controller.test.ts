// The replica controller on a simulated engine and a FakeClock: it reaches MIN_INSTANCES, scales up and
// down with the victims it would choose as a hint, drains what the engine terminates, follows a count
// set on the engine by someone else, and sees a killed replica replaced (a new incarnation).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../core/fake-clock.js';
import { createLogger } from '../core/logger.js';
import type { PoolMember } from '../core/pool.js';
import { SimulatedReplicas } from '../runtime/simulated-replicas.js';
import { ReplicaController } from './replica-controller.js';

function setup(honoursHints = true, min = 2, max = 5) {
  const clock = new FakeClock(0);
  const engine = new SimulatedReplicas({ clock, startMs: 100, terminateMs: 200, honoursHints });
  const c = new ReplicaController({
    driver: engine,
    logger: createLogger('silent'),
    minInstances: min,
    maxInstances: max,
    clock,
  });
  const pools: PoolMember[][] = [];
  c.onPoolChange((m) => pools.push(m));
  return { clock, engine, c, pools };
}

describe('ReplicaController (simulated engine, FakeClock)', () => {
  it('reaches MIN_INSTANCES: members only once the engine says ready', async () => {
    const { clock, c } = setup();
    await c.start();
    assert.equal(c.members().length, 0);
    assert.equal(c.outlook(), 'starting');
    await clock.advance(100);
    assert.deepEqual(
      c.members().map((m) => [m.id, m.state]),
      [
        ['task-1', 'ready'],
        ['task-2', 'ready'],
      ],
    );
    assert.equal(c.readyCount(), 2);
    assert.equal(c.outlook(), 'ready');
  });

  it('scales down with its victims as a hint; a terminating replica is drained, then gone', async () => {
    const { clock, engine, c } = setup();
    const sessions: Record<string, number> = { 'task-1': 4, 'task-2': 0, 'task-3': 2 };
    c.setLoadSource({ inflight: () => 0, sessions: (id) => sessions[id] ?? 0 });
    await c.start();
    c.setDesired(3, 'test');
    await clock.advance(100);
    assert.equal(c.readyCount(), 3);
    c.setDesired(2, 'test');
    await clock.advance(0);
    assert.deepEqual(engine.lastHint, ['task-2'], 'the replica with no session is the one to go');
    assert.equal(c.members().find((m) => m.id === 'task-2')?.state, 'draining');
    await clock.advance(200);
    assert.deepEqual(
      c.members().map((m) => m.id),
      ['task-1', 'task-3'],
    );
  });

  it('an engine that ignores the hint (Swarm) removes its own choice; the controller follows it', async () => {
    const { clock, engine, c } = setup(false);
    c.setLoadSource({ inflight: () => 0, sessions: (id) => (id === 'task-3' ? 9 : 0) });
    await c.start();
    c.setDesired(3, 'test');
    await clock.advance(100);
    c.setDesired(2, 'test');
    await clock.advance(0);
    assert.notDeepEqual(engine.lastHint, ['task-3']);
    assert.equal(c.members().find((m) => m.id === 'task-3')?.state, 'draining', 'the engine took the newest');
  });

  it('a count set on the engine by someone else becomes the desired count, within the limits', async () => {
    const { clock, engine, c } = setup();
    await c.start();
    await clock.advance(100);
    engine.setDesiredExternally(4);
    await clock.advance(100);
    assert.equal(c.desiredInstances, 4);
    assert.equal(c.readyCount(), 4);
    const scaled = c.events
      .recent(10)
      .filter((e) => e.type === 'scaled')
      .at(-1);
    assert.equal(scaled?.data?.reason, 'engine');
    engine.setDesiredExternally(9); // above MAX_INSTANCES=5: clamped and asked back
    await clock.advance(100);
    assert.equal(c.desiredInstances, 5);
    assert.equal(engine.snapshot().desired, 5);
  });

  it('a replica that dies is replaced by the engine: a new member with a new incarnation', async () => {
    const { clock, engine, c } = setup();
    await c.start();
    await clock.advance(100);
    engine.kill('task-1');
    await clock.advance(0);
    assert.deepEqual(
      c.members().map((m) => m.id),
      ['task-2'],
    );
    await clock.advance(100);
    assert.deepEqual(
      c.members().map((m) => [m.id, m.incarnation]),
      [
        ['task-2', 'inc-2'],
        ['task-3', 'inc-3'],
      ],
    );
  });

  it('stop() takes the engine to 0 and does not fight it (its own 0 is not a count set by someone else)', async () => {
    const { clock, engine, c } = setup();
    await c.start();
    await clock.advance(100);
    let stopped = false;
    const stopping = c.stop().then(() => {
      stopped = true;
    });
    for (let t = 0; t < 40_000 && !stopped; t += 100) await clock.advance(100);
    await stopping;
    assert.equal(engine.snapshot().desired, 0, 'the engine was left at 0');
    assert.equal(engine.snapshot().replicas.length, 0);
    assert.ok(
      !c.events.recent(1000).some((e) => e.data?.reason === 'engine'),
      'no "set on the engine" event',
    );
  });

  it('a restart adopts the engine’s pool at its count (3, with MIN_INSTANCES 1), not MIN_INSTANCES', async () => {
    const clock = new FakeClock(0);
    const engine = new SimulatedReplicas({ clock, startMs: 100, terminateMs: 200, honoursHints: true });
    await engine.scale(3);
    await clock.advance(100);
    const c = new ReplicaController({
      driver: engine,
      logger: createLogger('silent'),
      minInstances: 1,
      maxInstances: 5,
      clock,
    });
    await c.start();
    await clock.advance(300);
    assert.equal(c.desiredInstances, 3);
    assert.equal(engine.snapshot().desired, 3, 'the engine was not scaled down');
    assert.equal(c.readyCount(), 3);
  });

  it('a drain cycles the replica out and back in without taking its own lower count for someone else’s', async () => {
    const { clock, engine, c } = setup(true, 2, 5);
    await c.start();
    await clock.advance(100);
    assert.equal(c.drainInstance('task-1', false, 'test'), 'accepted');
    for (let t = 0; t < 1000; t += 50) await clock.advance(50);
    assert.ok(!engine.snapshot().replicas.some((r) => r.id === 'task-1'), 'the drained replica is gone');
    assert.equal(engine.snapshot().desired, 2);
    assert.equal(c.readyCount(), 2);
    assert.ok(
      !c.events.recent(1000).some((e) => e.data?.reason === 'engine'),
      'no "set on the engine" event',
    );
  });
});
