// The whole platform on DRIVER=swarm (a real single-node swarm): the pool reaches MIN_INSTANCES as a
// replicated service, the router serves from its tasks, a task killed by hand is replaced and its
// sessions move with the moved header, a load step scales the service up and back, a count set at run
// time reaches the engine, and stopping the platform leaves no service behind.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { Platform } from '../src/platform.js';
import { docker, ensureImages, testOwner } from './helpers/docker.js';
import { bootPlatform, FAST_AUTOSCALER, waitFor } from './helpers/platform.js';
import { requireService } from './helpers/services.js';

describe('the platform on DRIVER=swarm', { skip: requireService('swarm'), timeout: 240_000 }, () => {
  const owner = testOwner();
  let p: Platform;

  before(async () => {
    ensureImages();
    p = await bootPlatform({
      DRIVER: 'swarm',
      ...owner,
      MIN_INSTANCES: '2',
      MAX_INSTANCES: '3',
      AGENT_MEMORY_LIMIT: '256m',
      ...FAST_AUTOSCALER,
    });
    await p.controller.waitForReady(2, 120_000);
  });
  after(async () => {
    await p?.stop();
    const left = await docker.listServices({ filters: { name: [`${owner.DOCKER_OWNER}-agents`] } });
    assert.equal(left.length, 0, 'the service outlived the platform');
  });

  it('serves through the router from both tasks', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const res = await request(`${p.lbUrl}/api/swarm`, {
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.statusCode, 200);
      seen.add(String(res.headers['x-yggdrasil-instance']));
      await res.body.dump();
    }
    assert.equal(seen.size, 2, `served by ${[...seen]}`);
    assert.equal(p.controller.status().driver, 'swarm');
  });

  it('a load step scales the service up to MAX_INSTANCES, and the way back to MIN_INSTANCES', async () => {
    const until = Date.now() + 60_000;
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: 12 }, async () => {
        while (Date.now() < until && p.controller.readyCount() < 3) {
          const res = await request(`${p.lbUrl}/process`, {
            method: 'POST',
            body: JSON.stringify({ workMs: 200 }),
            headers: { 'content-type': 'application/json' },
          });
          await res.body.dump();
          statuses.push(res.statusCode);
        }
      }),
    );
    assert.equal(p.controller.readyCount(), 3, 'three ready tasks under load');
    const replicas = async () =>
      (
        (
          await docker.listServices({ filters: { name: [`${owner.DOCKER_OWNER}-agents`] } })
        )[0] as unknown as {
          Spec: { Mode: { Replicated: { Replicas: number } } };
        }
      ).Spec.Mode.Replicated.Replicas;
    assert.equal(await replicas(), 3);
    assert.ok(
      statuses.every((s) => s === 200),
      `all served: ${statuses.filter((s) => s !== 200)}`,
    );
    await waitFor('back to 2 tasks', () => p.controller.status().instances.length === 2, 60_000, 200);
    // The victim's task goes first and the service's count after it: wait for the spec too (it read 3
    // once under load right after the instances showed 2).
    await waitFor('the service at 2 replicas', async () => (await replicas()) === 2, 30_000, 200);
  });

  it('a task killed by hand is replaced; its session moves with the moved header', async () => {
    const first = await request(`${p.lbUrl}/api/swarm`, { headers: { 'x-session-id': 'swarm-session' } });
    const pinned = String(first.headers['x-yggdrasil-instance']);
    await first.body.dump();
    const victim = p.controller.status().instances.find((i) => i.id === pinned)!;
    await docker.getContainer(String(victim.meta.containerId)).kill();
    await waitFor(
      'a replacement task, ready',
      () => {
        const s = p.controller.status();
        return s.readyInstances === 2 && !s.instances.some((i) => i.id === pinned) ? s : undefined;
      },
      60_000,
      200,
    );
    const again = await request(`${p.lbUrl}/api/swarm`, { headers: { 'x-session-id': 'swarm-session' } });
    await again.body.dump();
    assert.equal(again.statusCode, 200);
    assert.notEqual(String(again.headers['x-yggdrasil-instance']), pinned);
    assert.equal(again.headers['x-yggdrasil-session-moved'], '1');
  });

  it('MIN_INSTANCES raised to 3 at run time reaches the engine, and the pool follows', async () => {
    // What PUT /scaling does to the controller; the autoscaler's own decisions are clamped to it.
    p.controller.setScalingLimits({ minInstances: 3, maxInstances: 3 }, 'test');
    await waitFor('3 ready tasks', () => p.controller.readyCount() === 3, 60_000, 200);
    const svc = (
      await docker.listServices({ filters: { name: [`${owner.DOCKER_OWNER}-agents`] } })
    )[0] as unknown as {
      Spec: { Mode: { Replicated: { Replicas: number } } };
    };
    assert.equal(svc.Spec.Mode.Replicated.Replicas, 3);
  });
});
