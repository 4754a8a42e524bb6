// DRIVER=docker on a real dockerd: hardened non-root containers with the configured limits, a killed
// container seen and replaced at once, adoption after a controller restart, `down`, clear engine errors,
// and the cold-start figure (create → ready, 20 starts).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Platform } from '../src/platform.js';
import { type DockerDriver, LABEL_INSTANCE, LABEL_OWNER } from '../src/runtime/docker-driver.js';
import { docker, ensureImages, ownedContainers, removeOwned, testOwner } from './helpers/docker.js';
import { bootPlatform, json, waitFor } from './helpers/platform.js';
import { requireService } from './helpers/services.js';
import { run } from './helpers/spawn.js';

const skip = requireService('docker');
const root = new URL('..', import.meta.url).pathname;

describe('docker driver', { skip }, () => {
  const owner = testOwner();
  const env = { DRIVER: 'docker', ...owner, STOP_GRACE_MS: '1000', HEALTH_CHECK_INTERVAL: '1000' };
  let p: Platform;

  before(async () => {
    ensureImages();
    p = await bootPlatform({ ...env, MIN_INSTANCES: '2' });
    await p.controller.waitForReady(2, 60_000);
  });
  after(async () => {
    await p?.stop();
    const left = await ownedContainers(owner.DOCKER_OWNER);
    await removeOwned(owner.DOCKER_OWNER, owner.DOCKER_NETWORK);
    assert.equal(left.length, 0, `stop() left ${left.length} container(s) behind`);
  });

  it('runs hardened, labelled, non-root containers with the configured limits', async () => {
    const list = await ownedContainers(owner.DOCKER_OWNER);
    assert.equal(list.length, 2);
    for (const c of list) {
      const info = await docker.getContainer(c.Id).inspect();
      assert.notEqual(info.Config.User, '', 'the image sets a user');
      assert.notEqual(info.Config.User, 'root');
      assert.notEqual(info.Config.User, '0');
      assert.equal(info.HostConfig.Memory, 512 * 1024 * 1024);
      assert.equal(info.HostConfig.MemoryReservation, 256 * 1024 * 1024);
      assert.equal(info.HostConfig.NanoCpus, 0.5e9);
      assert.equal(info.HostConfig.ReadonlyRootfs, true);
      assert.deepEqual(info.HostConfig.CapDrop, ['ALL']);
      assert.deepEqual(info.HostConfig.SecurityOpt, ['no-new-privileges']);
      assert.ok(Object.keys(info.HostConfig.Tmpfs ?? {}).includes('/tmp'));
      assert.equal(info.Config.Labels[LABEL_OWNER], owner.DOCKER_OWNER);
      assert.match(info.Config.Labels[LABEL_INSTANCE] ?? '', /^agent-\d+$/);
      assert.ok(
        Object.keys(info.NetworkSettings.Networks).includes(owner.DOCKER_NETWORK),
        'on its own network',
      );
    }
    const health = await json<{ uid: number; agentId: string }>(
      await fetch(`${p.lbUrl}/agent/agent-1/health`),
    );
    assert.equal(health.agentId, 'agent-1');
    assert.notEqual(health.uid, 0, 'the agent reports a non-root uid');
  });

  it('serves requests through the router to the containers', async () => {
    const res = await fetch(`${p.lbUrl}/agent/agent-2/process`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input: 'in a container' }),
    });
    assert.equal(res.status, 200);
    assert.equal((await json<{ output: { echo: string } }>(res)).output.echo, 'in a container');
  });

  it('sees a docker kill from its exit event (not a failed health check) and replaces the container', async () => {
    const before1 = p.controller.status().instances.find((i) => i.id === 'agent-1')!;
    const container = String(before1.meta.containerId);
    const t0 = Date.now();
    run('docker', ['kill', container]);
    await waitFor(
      'agent-1 ready in a new container',
      () => {
        const now = p.controller.status().instances.find((i) => i.id === 'agent-1');
        return now?.state === 'ready' && now.meta.containerId !== container;
      },
      10_000,
    );
    const elapsed = Date.now() - t0;
    // A figure, not a limit: tests assert no absolute time (a busy CI run took 2009 ms once).
    console.log(`# docker kill → replacement ready: ${elapsed} ms`);
    assert.match(
      p.controller.status().instances.find((i) => i.id === 'agent-1')!.lastFailure?.reason ?? '',
      /exited with code 137/,
    );
  });

  it('a restarted controller adopts the running containers instead of starting duplicates', async () => {
    const ids = new Set((await ownedContainers(owner.DOCKER_OWNER)).map((c) => c.Id));
    // Simulate a controller that died: its driver forgets the containers without stopping them.
    const second = await bootPlatform({ ...env, MIN_INSTANCES: '2' });
    try {
      await second.controller.waitForReady(2, 20_000);
      const after2 = await ownedContainers(owner.DOCKER_OWNER);
      assert.deepEqual(new Set(after2.map((c) => c.Id)), ids, 'the same containers, no duplicates');
      assert.ok(second.controller.status().events.some((e) => e.data?.adopted === true));
    } finally {
      // Hand the containers back to the first platform: the second must not stop them.
      (second.driver as DockerDriver).detach();
      await second.stop();
    }
    assert.equal((await ownedContainers(owner.DOCKER_OWNER)).length, 2);
  });
});

describe('docker driver errors and `down`', { skip }, () => {
  it('a missing image is a clear error in status, not a crash', async () => {
    const owner = testOwner();
    const p = await bootPlatform({ DRIVER: 'docker', ...owner, AGENT_IMAGE: 'yggdrasil/no-such-image:1' });
    try {
      await waitFor('a failure in status', () => p.controller.status().instances[0]?.lastFailure, 20_000);
      const failure = p.controller.status().instances[0]!.lastFailure!;
      assert.match(failure.reason, /docker: creating .* failed: .*no-such-image/i);
      assert.match(failure.reason, /npm run images:build/);
      const health = await fetch(`${p.controllerUrl}/health`);
      assert.equal(health.status, 200, 'the controller keeps running');
    } finally {
      await p.stop();
      await removeOwned(owner.DOCKER_OWNER, owner.DOCKER_NETWORK);
    }
  });

  it('`yggdrasil down` removes every owned container and the network', async () => {
    ensureImages();
    const owner = testOwner();
    const p = await bootPlatform({ DRIVER: 'docker', ...owner, MIN_INSTANCES: '2' });
    await p.controller.waitForReady(2, 60_000);
    (p.driver as DockerDriver).detach(); // leave them running, as a crashed controller would
    await p.stop();
    assert.equal((await ownedContainers(owner.DOCKER_OWNER)).length, 2);
    const down = run(
      process.execPath,
      ['dist/cli/main.js', 'down'],
      { DRIVER: 'docker', ...owner },
      { cwd: root },
    );
    assert.equal((await down.exited).code, 0);
    assert.match(
      down.stdout(),
      new RegExp(`removed 2 container\\(s\\) owned by ${owner.DOCKER_OWNER} and network`),
    );
    assert.equal((await ownedContainers(owner.DOCKER_OWNER)).length, 0);
    const nets = await docker.listNetworks({ filters: { name: [owner.DOCKER_NETWORK] } });
    assert.equal(nets.filter((n) => n.Name === owner.DOCKER_NETWORK).length, 0);
  });
});

describe('docker driver: what a container is given of the environment', { skip }, () => {
  it('only AGENT_ENV and AGENT_ENV_FILE, never the controller’s other variables', async () => {
    const owner = testOwner();
    const saved = { DB_PASSWORD: process.env.DB_PASSWORD, OPENAI_API_KEY: process.env.OPENAI_API_KEY };
    process.env.DB_PASSWORD = 'hunter2';
    process.env.OPENAI_API_KEY = 'sk-test-key';
    let p: Platform | undefined;
    try {
      ensureImages();
      p = await bootPlatform({
        DRIVER: 'docker',
        ...owner,
        MIN_INSTANCES: '1',
        MAX_INSTANCES: '1',
        AGENT_ENV: 'OPENAI_API_KEY',
      });
      await p.controller.waitForReady(1, 60_000);
      const [c] = await ownedContainers(owner.DOCKER_OWNER);
      const envList = (await docker.getContainer(c!.Id).inspect()).Config.Env;
      assert.ok(envList.includes('OPENAI_API_KEY=sk-test-key'), 'the named variable is passed');
      assert.ok(!envList.some((e) => e.startsWith('DB_PASSWORD=')), 'the secret stays out');
      assert.ok(
        !envList.includes(`PATH=${process.env.PATH}`),
        'not even the host PATH: the image has its own',
      );
    } finally {
      await p?.stop();
      await removeOwned(owner.DOCKER_OWNER, owner.DOCKER_NETWORK);
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});
