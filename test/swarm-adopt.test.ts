// A controller restart on DRIVER=swarm adopts the running service: `yggdrasil start` SIGKILLed leaves
// the service and its tasks to Swarm; the next platform with the same DOCKER_OWNER follows the same
// tasks (no new one, none lost) and serves from them at once.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import type { Platform } from '../src/platform.js';
import { docker, ensureImages, testOwner } from './helpers/docker.js';
import { bootPlatform, TEST_DEFAULTS, waitFor } from './helpers/platform.js';
import { CLI } from './helpers/roles.js';
import { requireService } from './helpers/services.js';
import { run } from './helpers/spawn.js';

describe('DRIVER=swarm: a controller restart adopts the service', {
  skip: requireService('swarm'),
  timeout: 240_000,
}, () => {
  const owner = testOwner();
  const service = `${owner.DOCKER_OWNER}-agents`;
  let p: Platform | undefined;

  after(async () => {
    await p?.stop();
    const left = await docker.listServices({ filters: { name: [service] } });
    for (const s of left)
      await docker
        .getService(s.ID)
        .remove()
        .catch(() => {});
  });

  it('SIGKILL of `yggdrasil start`, then a new platform: the same tasks, ready, serving', async () => {
    ensureImages();
    const env = {
      ...TEST_DEFAULTS,
      DRIVER: 'swarm',
      ...owner,
      MIN_INSTANCES: '2',
      MAX_INSTANCES: '2',
      AGENT_MEMORY_LIMIT: '256m',
    };
    const first = run(process.execPath, [CLI, 'start'], { ...env, LOG_LEVEL: 'warn' });
    const tasks = async () => {
      // 404 until the first platform has created the service.
      const list = (await docker
        .listTasks({ filters: { service: [service], 'desired-state': ['running'] } })
        .catch(() => [])) as Array<{ ID: string; Status: { State: string } }>;
      return list
        .filter((t) => t.Status.State === 'running')
        .map((t) => t.ID)
        .sort();
    };
    const before = await waitFor(
      '2 running tasks',
      async () => ((await tasks()).length === 2 ? tasks() : undefined),
      120_000,
      250,
    );
    first.child.kill('SIGKILL');
    await first.exited;
    assert.deepEqual(await tasks(), before, 'the tasks outlived the killed controller (Swarm owns them)');
    p = await bootPlatform({
      DRIVER: 'swarm',
      ...owner,
      MIN_INSTANCES: '2',
      MAX_INSTANCES: '2',
      AGENT_MEMORY_LIMIT: '256m',
    });
    await p.controller.waitForReady(2, 60_000);
    const adopted = p.controller
      .status()
      .instances.map((i) => i.id)
      .sort();
    assert.deepEqual(adopted, before, 'the new controller follows the same tasks');
    const res = await request(`${p.lbUrl}/api/adopted`);
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    assert.ok(before.includes(String(res.headers['x-yggdrasil-instance'])));
    assert.deepEqual(await tasks(), before, 'no task was replaced');
  });
});
