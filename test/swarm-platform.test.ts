// The whole platform on DRIVER=swarm (a real single-node swarm): the pool reaches MIN_INSTANCES as a
// replicated service, the router serves from its tasks, a task killed by hand is replaced and its
// sessions move with the moved header, the autoscaler's count reaches the engine, and stopping the
// platform leaves no service behind.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { Platform } from '../src/platform.js';
import { docker, ensureImages, testOwner } from './helpers/docker.js';
import { bootPlatform, waitFor } from './helpers/platform.js';
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
