// The seed's quick start for real: `docker-compose up -d` on the CI override (images built locally
// from Debian), curl /health and POST /agent/agent-1/process through nginx, Prometheus scraping the
// controller, API keys made inside the container guarding the admin port (127.0.0.1 only) while
// Prometheus keeps scraping with a read key, then `docker-compose down` leaving nothing behind.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { request } from 'undici';
import { docker, ensureImages, imageExists, ownedContainers, testOwner } from './helpers/docker.js';
import { httpJson } from './helpers/http.js';
import { waitFor } from './helpers/platform.js';
import { requireService } from './helpers/services.js';

const exec = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
const skip = requireService('docker-compose');

describe('docker-compose stack (CI override)', { skip }, () => {
  const owner = testOwner();
  const keyDir = mkdtempSync(join(tmpdir(), 'ygg-compose-'));
  const promKeyFile = join(keyDir, 'ygg-read-key');
  writeFileSync(promKeyFile, '');
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
    // The read key Prometheus sends once keys exist: empty until a test writes one.
    YGG_PROMETHEUS_KEY_FILE: promKeyFile,
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
    rmSync(keyDir, { recursive: true, force: true });
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

  it('keys made inside the container guard the admin API on 127.0.0.1; the public port shows a summary; Prometheus scrapes with a read key', async () => {
    const addAuth = async (name: string, role: string) =>
      (
        await compose(
          'exec',
          '-T',
          'controller',
          'node',
          'dist/cli/main.js',
          'add-auth',
          '--name',
          name,
          '--role',
          role,
        )
      ).stdout
        .trim()
        .split('\n')
        .at(-1)!;
    const admin = await addAuth('ops', 'admin');
    writeFileSync(promKeyFile, `${await addAuth('prometheus', 'read')}\n`);
    const api = `http://127.0.0.1:${await portOf('controller', 3000)}`;
    await waitFor(
      'the keys to take effect',
      async () => (await httpJson(`${api}/status`)).status === 401,
      10_000,
      200,
    );
    const scaled = await request(`${api}/scaling`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ maxInstances: 2 }),
    });
    assert.equal(scaled.statusCode, 200, await scaled.body.text());
    const anon = await httpJson<Record<string, unknown>>(`${lb}/status`);
    assert.equal(anon.status, 200);
    assert.equal(anon.body.events, undefined, 'no events on the public port');
    assert.ok(!JSON.stringify(anon.body).includes('lastFailure'));
    // A fresh scrape of the controller succeeds with the key Prometheus reads from its file.
    const since = Date.now() / 1000;
    await waitFor(
      'Prometheus to scrape the controller with its key',
      async () => {
        const r = await httpJson<{ data: { result: Array<{ value: [number, string] }> } }>(
          `${prom}/api/v1/query?query=${encodeURIComponent('timestamp(up{job="yggdrasil-controller"} == 1)')}`,
        ).catch(() => undefined);
        // The time of the last successful scrape: one after the keys existed.
        const s = r?.body.data?.result[0];
        return s && Number(s.value[1]) > since + 1 ? s : undefined;
      },
      60_000,
      1000,
    );
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
