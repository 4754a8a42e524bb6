// The compose stack's `ha` profile for real (CI override, images built locally): nginx-ha in front of
// router-a and router-b, controller-a and controller-b sharing the pool through Redis. One leads,
// the other stands by; SIGKILL of the leader's container hands leadership over and the pool keeps its
// agent container; then `down` and the agents' owner cleanup leave nothing.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  ensureFreshImage,
  ensureImages,
  imageExists,
  ownedContainers,
  removeOwned,
  testOwner,
} from './helpers/docker.js';
import { httpJson } from './helpers/http.js';
import { waitFor } from './helpers/platform.js';
import { requireService } from './helpers/services.js';

const exec = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
const HA = ['redis', 'controller-a', 'controller-b', 'router-a', 'router-b', 'nginx-ha'];

interface Status {
  readyInstances: number;
  leadership: { leader: boolean; holder: string | null; term: number };
  instances: Array<{ id: string; meta: { containerId?: string } }>;
}

describe('docker-compose --profile ha (CI override)', {
  skip: requireService('docker-compose'),
  timeout: 300_000,
}, () => {
  const owner = testOwner();
  const agentsOwner = `${owner.DOCKER_OWNER}-ha`;
  const env = {
    ...process.env,
    ...owner,
    YGG_PUBLIC_ADDR: '127.0.0.1',
    YGG_HA_HTTP_PORT: '',
    YGG_HA_CONTROLLER_A_PORT: '',
    YGG_HA_CONTROLLER_B_PORT: '',
    DOCKER_GID: String(statSync('/var/run/docker.sock').gid),
    MIN_INSTANCES: '1',
    LEADER_LEASE_MS: '1000',
  };
  const compose = (...args: string[]) =>
    exec(
      'docker-compose',
      [
        '-p',
        owner.DOCKER_OWNER,
        '-f',
        'docker-compose.yml',
        '-f',
        'docker-compose.ci.yml',
        '--profile',
        'ha',
        ...args,
      ],
      { cwd: root, env, maxBuffer: 16 * 1024 * 1024 },
    );
  const portOf = async (service: string, port: number) =>
    Number((await compose('port', service, String(port))).stdout.trim().split(':').pop());
  const url: Record<string, string> = {};

  before(async () => {
    ensureImages();
    ensureFreshImage('controller');
    for (const image of ['yggdrasil/nginx:latest', 'yggdrasil/redis:latest']) {
      assert.ok(imageExists(image), `${image} is missing: run npm run images:build`);
    }
    await compose('up', '-d', ...HA);
    url.lb = `http://127.0.0.1:${await portOf('nginx-ha', 80)}`;
    url.a = `http://127.0.0.1:${await portOf('controller-a', 3000)}`;
    url.b = `http://127.0.0.1:${await portOf('controller-b', 3000)}`;
  });

  after(async () => {
    await compose('down', '-v', '--remove-orphans').catch(() => {});
    // A leader that stops hands its agents to the next one: with none left, the README's
    // `DRIVER=docker DOCKER_OWNER=<owner>-ha npm run down` removes them.
    const down = await exec('npm', ['run', '--silent', 'down'], {
      cwd: root,
      env: {
        ...process.env,
        DRIVER: 'docker',
        DOCKER_OWNER: agentsOwner,
        DOCKER_NETWORK: owner.DOCKER_NETWORK,
      },
    }).catch((err: Error) => ({ stdout: String(err) }));
    await removeOwned(agentsOwner, owner.DOCKER_NETWORK);
    assert.match(down.stdout, /removed 1 container\(s\) owned by/);
    assert.equal((await ownedContainers(agentsOwner)).length, 0);
  });

  it('serves through nginx-ha; one controller leads, the other stands by', async () => {
    // nginx-ha takes turns between router-a and router-b, and each finds the ready agent in Redis on
    // its own: both must have said healthy (one did, and the other's 503 failed a CI run).
    const healthy = new Set<string>();
    await waitFor(
      'both routers to be healthy through nginx-ha',
      async () => {
        const h = await httpJson<{ router: string }>(`${url.lb}/health`).catch(() => undefined);
        if (h?.status === 200) healthy.add(h.body.router);
        return healthy.size === 2;
      },
      120_000,
      250,
    );
    for (let i = 0; i < 20; i++) {
      const r = await httpJson<{ agentId: string }>(`${url.lb}/agent/agent-1/process`, {
        method: 'POST',
        body: { input: `ha ${i}` },
      });
      assert.equal(r.status, 200, `request ${i}: ${JSON.stringify(r.body)}`);
      assert.equal(r.headers['x-yggdrasil-instance'], 'agent-1');
    }
    const [a, b] = await Promise.all(
      [url.a, url.b].map(async (u) => (await httpJson<Status>(`${u}/status`)).body),
    );
    assert.equal(
      [a!.leadership.leader, b!.leadership.leader].filter(Boolean).length,
      1,
      `leaders: ${JSON.stringify([a!.leadership, b!.leadership])}`,
    );
  });

  it('SIGKILL of the leading controller: the other leads and keeps the same agent container', async () => {
    const a = (await httpJson<Status>(`${url.a}/status`)).body;
    const [leader, standby] = a.leadership.leader ? ['controller-a', url.b] : ['controller-b', url.a];
    const before = (await ownedContainers(agentsOwner)).map((c) => c.Id).sort();
    assert.equal(before.length, 1);
    await compose('kill', '-s', 'SIGKILL', leader);
    const next = await waitFor(
      'the standby to lead',
      async () => {
        const s = (await httpJson<Status>(`${standby}/status`).catch(() => undefined))?.body;
        return s?.leadership.leader && s.readyInstances === 1 ? s : undefined;
      },
      30_000,
      100,
    );
    assert.equal(next.leadership.term, a.leadership.term + 1);
    assert.deepEqual((await ownedContainers(agentsOwner)).map((c) => c.Id).sort(), before);
    const r = await httpJson<{ agentId: string }>(`${url.lb}/agent/agent-1/process`, {
      method: 'POST',
      body: { input: 'after' },
    });
    assert.equal(r.status, 200);
  });
});
