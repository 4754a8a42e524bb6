// The seed's quick start for real: `docker-compose up -d` on the CI override (images built locally
// from Debian), curl /health and POST /agent/agent-1/process through nginx, Prometheus scraping the
// controller, then `docker-compose down` leaving no container and no network behind.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { docker, ensureImages, imageExists, ownedContainers, testOwner } from './helpers/docker.js';
import { httpJson } from './helpers/http.js';
import { waitFor } from './helpers/platform.js';
import { requireService } from './helpers/services.js';

const exec = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
const skip = requireService('docker-compose');

describe('docker-compose stack (CI override)', { skip }, () => {
  const owner = testOwner();
  const project = owner.DOCKER_OWNER;
  const env = {
    ...process.env,
    ...owner,
    // Empty host ports: Docker picks free ones on 127.0.0.1 (no port races, nothing on other addresses).
    YGG_PUBLIC_ADDR: '127.0.0.1',
    YGG_HTTP_PORT: '',
    YGG_CONTROLLER_PORT: '',
    YGG_PROMETHEUS_PORT: '',
    DOCKER_GID: String(statSync('/var/run/docker.sock').gid),
    MIN_INSTANCES: '1',
  };
  const compose = (...args: string[]) =>
    exec(
      'docker-compose',
      ['-p', project, '-f', 'docker-compose.yml', '-f', 'docker-compose.ci.yml', ...args],
      {
        cwd: root,
        env,
        maxBuffer: 16 * 1024 * 1024,
      },
    );
  const portOf = async (service: string, port: number) => {
    const { stdout } = await compose('port', service, String(port));
    return Number(stdout.trim().split(':').pop());
  };
  let lb = '';
  let prom = '';

  before(async () => {
    ensureImages();
    for (const image of [
      'yggdrasil/controller:latest',
      'yggdrasil/nginx:latest',
      'yggdrasil/prometheus:latest',
    ]) {
      assert.ok(imageExists(image), `${image} is missing: run npm run images:build`);
    }
    await compose('up', '-d');
    lb = `http://127.0.0.1:${await portOf('nginx', 80)}`;
    prom = `http://127.0.0.1:${await portOf('prometheus', 9090)}`;
  });

  after(async () => {
    await compose('down', '-v', '--remove-orphans').catch(() => {});
  });

  it('answers /health through nginx once an agent is ready', async () => {
    const health = await waitFor(
      'the stack to be healthy through nginx',
      async () => {
        const r = await httpJson<{ status: string; readyInstances: number }>(`${lb}/health`).catch(
          () => undefined,
        );
        return r?.status === 200 ? r : undefined;
      },
      120_000,
      250,
    );
    assert.equal(health.body.status, 'ok');
    assert.ok(health.body.readyInstances >= 1);
  });

  it('serves POST /agent/agent-1/process through nginx from an agent container', async () => {
    const r = await httpJson<{ agentId: string; output: { echo: string } }>(`${lb}/agent/agent-1/process`, {
      method: 'POST',
      body: { input: 'through nginx' },
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-yggdrasil-instance'], 'agent-1');
    assert.deepEqual([r.body.agentId, r.body.output.echo], ['agent-1', 'through nginx']);
    const agents = await ownedContainers(owner.DOCKER_OWNER);
    assert.equal(agents.length, 1, 'the controller runs the agent as a container it owns');
  });

  it('Prometheus scrapes the controller and the router', async () => {
    const up = await waitFor(
      'Prometheus to scrape both controller ports',
      async () => {
        const r = await httpJson<{
          data: { result: Array<{ metric: { instance: string }; value: [number, string] }> };
        }>(`${prom}/api/v1/query?query=${encodeURIComponent('up')}`).catch(() => undefined);
        const ok = r?.body.data?.result.filter((s) => s.value[1] === '1') ?? [];
        return ok.length >= 2 ? ok : undefined;
      },
      60_000,
      500,
    );
    const instances = up.map((s) => s.metric.instance).sort();
    assert.deepEqual(instances, ['controller:3000', 'controller:8080']);
  });

  it('docker-compose down leaves no container and no network behind', async () => {
    await compose('down', '-v', '--remove-orphans');
    assert.equal((await ownedContainers(owner.DOCKER_OWNER)).length, 0, 'agent containers left behind');
    const left = await docker.listContainers({
      all: true,
      filters: { label: [`com.docker.compose.project=${project}`] },
    });
    assert.equal(left.length, 0, 'compose containers left behind');
    const nets = await docker.listNetworks({ filters: { name: [owner.DOCKER_NETWORK] } });
    assert.equal(nets.filter((n) => n.Name === owner.DOCKER_NETWORK).length, 0, 'network left behind');
  });
});
