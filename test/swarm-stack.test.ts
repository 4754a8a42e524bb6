// deploy/swarm/stack.yml on a real single-node swarm, with the README's commands: `docker stack deploy`
// brings up Redis, two controllers (one leads) and a router per node; the leader creates the agents'
// service on the stack's overlay network with no published port; a request on the router's port is
// served by an agent task; `docker stack rm` then `npm run down` leave nothing of it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { request } from 'undici';
import { freePort } from '../src/runtime/free-port.js';
import { docker, ensureFreshImage, ensureImages, testOwner } from './helpers/docker.js';
import { waitFor } from './helpers/platform.js';
import { CLI } from './helpers/roles.js';
import { requireService } from './helpers/services.js';

const exec = promisify(execFile);
const STACK_FILE = new URL('../deploy/swarm/stack.yml', import.meta.url).pathname;

describe('deploy/swarm/stack.yml with docker stack deploy', {
  skip: requireService('swarm'),
  timeout: 300_000,
}, () => {
  const owner = testOwner().DOCKER_OWNER;
  const stack = owner.replace(/[^a-z0-9]/g, '').slice(-12) || 'yggstack';
  const network = `${owner}-net`;
  let port = 0;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    ensureImages();
    ensureFreshImage('controller');
    ensureFreshImage('agent');
    port = await freePort();
    env = {
      ...process.env,
      DOCKER_GID: String(statSync('/var/run/docker.sock').gid),
      YGG_HTTP_PORT: String(port),
      YGG_REDIS_IMAGE: 'yggdrasil/redis:latest',
      DOCKER_OWNER: owner,
      DOCKER_NETWORK: network,
      MIN_INSTANCES: '2',
      LEADER_LEASE_MS: '2000',
    };
  });
  const stackContainers = async () =>
    (await docker.listContainers({ all: true, filters: { label: [`com.docker.stack.namespace=${stack}`] } }))
      .length;
  after(async () => {
    await exec('docker', ['stack', 'rm', stack], { env }).catch(() => {});
    // A controller still stopping would make the agents' service again: wait until none runs.
    await waitFor(
      'the stack’s containers gone',
      async () => (await stackContainers()) === 0,
      120_000,
      500,
    ).catch(() => {});
    for (const s of await docker.listServices({ filters: { name: [`${owner}-agents`] } }))
      await docker
        .getService(s.ID)
        .remove()
        .catch(() => {});
    await exec('docker', ['stack', 'rm', stack], { env }).catch(() => {});
  });

  it('deploys: a request on the router’s port is served by an agent task reached over the overlay', async () => {
    const { stderr } = await exec(
      'docker',
      ['stack', 'deploy', '--resolve-image', 'never', '-c', STACK_FILE, stack],
      { env },
    );
    assert.doesNotMatch(stderr, /error/i, stderr);
    await waitFor(
      'the router with 2 ready agents',
      async () => {
        try {
          const res = await request(`http://127.0.0.1:${port}/health`);
          const body = (await res.body.json()) as { readyInstances?: number };
          return res.statusCode === 200 && body.readyInstances === 2;
        } catch {
          return false;
        }
      },
      180_000,
      500,
    );
    const agents = (await docker.listServices({ filters: { name: [`${owner}-agents`] } }))[0] as unknown as {
      Spec: { TaskTemplate: { Networks?: Array<{ Target: string }> }; EndpointSpec?: { Ports?: unknown[] } };
    };
    assert.ok(agents, 'the leader created the agents’ service');
    assert.equal(agents.Spec.EndpointSpec?.Ports?.length ?? 0, 0, 'no port of the agents is published');
    const net = await docker.getNetwork(network).inspect();
    assert.ok(
      agents.Spec.TaskTemplate.Networks?.some((n) => n.Target === net.Id || n.Target === network),
      'the agents are on the stack’s overlay network',
    );
    const served = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const res = await request(`http://127.0.0.1:${port}/process`, {
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json' },
      });
      await res.body.dump();
      assert.equal(res.statusCode, 200);
      served.add(String(res.headers['x-yggdrasil-instance']));
    }
    assert.equal(served.size, 2, `served by ${[...served]}`);
  });

  it('docker stack rm, npm run down, docker stack rm: nothing of it is left', async () => {
    // Fails to remove the overlay network while the agents' service holds it: said, and done below.
    const first = await exec('docker', ['stack', 'rm', stack], { env }).catch((e: { stderr: string }) => e);
    assert.doesNotMatch(first.stderr, /error(?!.*in use by service)/i);
    // Until its controllers have stopped (they hand the agents' service over, never remove it).
    await waitFor('the stack’s containers gone', async () => (await stackContainers()) === 0, 120_000, 500);
    // The controllers handed the agents' service over to a next deploy; down removes it.
    const down = await exec(process.execPath, [CLI, 'down'], {
      env: { ...process.env, DRIVER: 'swarm', DOCKER_OWNER: owner },
    });
    assert.match(down.stdout, new RegExp(`removed swarm service ${owner}-agents`));
    await waitFor(
      'no container of the pool',
      async () =>
        (await docker.listContainers({ all: true, filters: { name: [`${owner}-agents`] } })).length === 0,
      120_000,
      500,
    );
    // The overlay network was in use by the agents when the stack went: a second rm removes it.
    await exec('docker', ['stack', 'rm', stack], { env }).catch(() => {});
    await waitFor(
      'the stack’s networks gone',
      async () =>
        (await docker.listNetworks({ filters: { label: [`com.docker.stack.namespace=${stack}`] } }))
          .length === 0,
      30_000,
      500,
    );
  });
});
