// The container images and the compose files: the agent image runs hardened (read-only root, no
// capabilities, non-root user, 0.5 CPU / 512 MB), answers /health on a port Docker publishes on
// 127.0.0.1, turns healthy through its HEALTHCHECK, stops promptly on SIGTERM and stays small; every
// compose file and override validates. Images are built by scripts/build-images.sh only when missing
// or built from other code (label io.yggdrasil.source-hash). Without Docker the tests are skipped,
// except under CI=true, where they fail.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { httpJson } from './helpers/http.js';
import { waitFor } from './helpers/platform.js';
import { requireService } from './helpers/services.js';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
const AGENT_IMAGE = 'yggdrasil/agent:latest';
/** Measured: 166 MB on yggdrasil/node:20 (160 MB: Debian minbase 74 MB + node 86 MB), app layer 6 MB. */
const MAX_AGENT_IMAGE_MB = 200;
const MAX_APP_LAYER_MB = 25;
const OVERRIDES = ['ci', 'dev', 'staging', 'prod'];

// Missing services skip with one line outside CI and fail under CI=true (test/helpers/services.ts).
const skipDocker = requireService('docker');
const skipCompose = requireService('docker-compose');

async function docker(...args: string[]): Promise<string> {
  const { stdout } = await run('docker', args, { cwd: root, maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

const mb = (bytes: number) => Math.round(bytes / 100_000) / 10;

describe('agent image', () => {
  const started: string[] = [];
  let id = '';
  let base = '';

  before(
    async () => {
      if (skipDocker) return;
      const wanted = spawnSync(process.execPath, ['docker/source-hash.mjs'], { cwd: root, encoding: 'utf8' });
      const hash = wanted.stdout.trim();
      const have = await docker(
        'image',
        'inspect',
        '-f',
        '{{ index .Config.Labels "io.yggdrasil.source-hash" }}',
        AGENT_IMAGE,
      ).catch(() => '');
      if (!hash || have !== hash) {
        // dist/ is fresh (npm test builds it first); recompiling here would race the other test files.
        process.stderr.write(`images.test: building ${AGENT_IMAGE} (${have ? 'older code' : 'missing'})\n`);
        const built = spawnSync('bash', ['scripts/build-images.sh', 'agent', '--no-compile'], {
          cwd: root,
          encoding: 'utf8',
          timeout: 14 * 60_000,
        });
        process.stderr.write(built.stdout);
        assert.equal(built.status, 0, `scripts/build-images.sh agent failed:\n${built.stderr}`);
      }
      id = await docker(
        'run',
        '-d',
        '--rm',
        '-p',
        '127.0.0.1::8080',
        '--read-only',
        '--tmpfs',
        '/tmp',
        '--cap-drop',
        'ALL',
        '--security-opt',
        'no-new-privileges',
        '--memory',
        '512m',
        '--cpus',
        '0.5',
        '--label',
        'io.yggdrasil.test=images',
        '-e',
        'AGENT_ID=agent-9',
        AGENT_IMAGE,
      );
      started.push(id);
      // "127.0.0.1:49153": the only address this test sends traffic to.
      const published = (await docker('port', id, '8080/tcp')).split('\n')[0] ?? '';
      assert.match(published, /^127\.0\.0\.1:\d+$/, `docker port: ${published}`);
      base = `http://${published}`;
    },
    { timeout: 15 * 60_000 },
  );

  after(async () => {
    for (const c of started) await docker('rm', '-f', c).catch(() => undefined);
  });

  it('answers GET /health on the published port as agent-9, not as root', { skip: skipDocker }, async () => {
    // undici, not fetch: Node 20's fetch can hang when Docker's proxy resets a starting container.
    const body = await waitFor(
      'GET /health 200',
      async () => {
        const res = await httpJson<{ status: string; agentId: string; uid: number }>(`${base}/health`).catch(
          () => undefined,
        );
        return res?.status === 200 ? res.body : undefined;
      },
      10_000,
      250,
    );
    assert.equal(body.status, 'ok');
    assert.equal(body.agentId, 'agent-9');
    assert.equal(typeof body.uid, 'number');
    assert.notEqual(body.uid, 0, 'the agent must not run as root');
    assert.equal(body.uid, 10001);
  });

  it('runs as a non-root user and becomes healthy through its HEALTHCHECK', {
    skip: skipDocker,
  }, async () => {
    const config = JSON.parse(await docker('inspect', '-f', '{{json .Config}}', id)) as {
      User: string;
      Healthcheck?: { Test: string[] };
      ExposedPorts: Record<string, unknown>;
    };
    assert.match(config.User, /^[1-9]\d*(:\d+)?$/, `Config.User=${config.User}`);
    assert.notEqual(config.User.split(':')[0], '0');
    assert.deepEqual(config.Healthcheck?.Test, ['CMD', 'node', 'dist/agent/healthcheck.js']);
    assert.ok('8080/tcp' in config.ExposedPorts);
    const t0 = Date.now();
    await waitFor(
      'health status healthy',
      async () => {
        const s = await docker('inspect', '-f', '{{.State.Health.Status}}', id);
        assert.notEqual(s, 'unhealthy');
        return s === 'healthy' ? s : undefined;
      },
      12_000,
      250,
    );
    process.stderr.write(
      `images.test: agent container healthy ${Date.now() - t0} ms after the first check\n`,
    );
  });

  it('holds no dev dependency and stays small', { skip: skipDocker }, async () => {
    const size = Number(await docker('image', 'inspect', '-f', '{{.Size}}', AGENT_IMAGE));
    const history = await docker(
      'history',
      '--no-trunc',
      '--human=false',
      '--format',
      '{{.Size}}\t{{.CreatedBy}}',
      AGENT_IMAGE,
    );
    const appLayer = history
      .split('\n')
      .map((line) => line.split('\t'))
      .find(([, by]) => /COPY .* in \/app\s*$/.test(by ?? ''));
    const appBytes = Number(appLayer?.[0] ?? Number.NaN);
    process.stderr.write(
      `images.test: ${AGENT_IMAGE} is ${mb(size)} MB (bound ${MAX_AGENT_IMAGE_MB} MB), /app layer ${mb(appBytes)} MB (bound ${MAX_APP_LAYER_MB} MB)\n`,
    );
    assert.ok(mb(size) < MAX_AGENT_IMAGE_MB, `${AGENT_IMAGE} is ${mb(size)} MB`);
    assert.ok(mb(appBytes) < MAX_APP_LAYER_MB, `the /app layer is ${mb(appBytes)} MB`);
    const pkg = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as {
      devDependencies: Record<string, string>;
    };
    const probe = `const fs = require('node:fs'); process.stdout.write(JSON.stringify(${JSON.stringify(
      Object.keys(pkg.devDependencies),
    )}.filter((d) => fs.existsSync('/app/node_modules/' + d))))`;
    const present = JSON.parse(
      await docker('run', '--rm', '--network', 'none', AGENT_IMAGE, 'node', '-e', probe),
    );
    assert.deepEqual(present, [], 'dev dependencies in the image');
  });

  it('stops within seconds on docker stop (SIGTERM drains, PID 1 handles it)', {
    skip: skipDocker,
  }, async () => {
    const t0 = Date.now();
    await docker('stop', '-t', '10', id);
    const ms = Date.now() - t0;
    assert.ok(ms < 5000, `docker stop took ${ms} ms: SIGTERM was not handled`);
  });
});

/** `docker-compose config` output split into service blocks (the YAML it prints is regular). */
function services(config: string): Map<string, string> {
  const out = new Map<string, string>();
  const body = config.split(/^services:\n/m)[1]?.split(/^\S/m)[0] ?? '';
  for (const block of body.split(/^(?= {2}[\w.-]+:\n)/m)) {
    const name = /^ {2}([\w.-]+):/.exec(block)?.[1];
    if (name) out.set(name, block);
  }
  return out;
}

describe('docker-compose files', () => {
  // The files' own defaults, whatever this shell exports.
  const env = { ...process.env };
  for (const k of ['AGENT_IMAGE', 'YGG_TAG', 'NODE_ENV', 'LOG_LEVEL', 'MIN_INSTANCES', 'MAX_INSTANCES'])
    delete env[k];
  const compose = (...files: string[]) =>
    run('docker-compose', [...files.flatMap((f) => ['-f', f]), 'config'], { cwd: root, env }).then(
      (r) => r.stdout,
    );

  it('docker-compose.yml validates; only the controllers get the Docker socket', {
    skip: skipCompose,
  }, async () => {
    const r = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], {
      cwd: root,
      env,
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const svc = services(await compose('docker-compose.yml'));
    assert.deepEqual([...svc.keys()].sort(), [
      'controller',
      'controller-a',
      'controller-b',
      'grafana',
      'nginx',
      'nginx-ha',
      'prometheus',
      'redis',
      'router-a',
      'router-b',
    ]);
    const controllers = ['controller', 'controller-a', 'controller-b'];
    for (const [name, block] of svc) {
      assert.equal(
        block.includes('/var/run/docker.sock'),
        controllers.includes(name),
        `${name} and the docker socket`,
      );
    }
    // The ha profile's routers run the router role; its controllers the controller role, on Redis.
    for (const name of ['router-a', 'router-b']) assert.match(svc.get(name)!, /- router\n/);
    for (const name of ['controller-a', 'controller-b']) {
      assert.match(svc.get(name)!, /- controller\n/);
      assert.match(svc.get(name)!, /REDIS_URL: redis:\/\/redis:6379/);
    }
    const controller = svc.get('controller')!;
    assert.match(controller, /DRIVER: docker/);
    assert.match(controller, /AGENT_IMAGE: yggdrasil\/agent:latest/);
    assert.match(svc.get('redis')!, /profiles:\n\s+- redis\n\s+- ha/);
    for (const block of svc.values()) assert.match(block, /cpus: 0\.5/);
  });

  for (const name of OVERRIDES) {
    it(`docker-compose.${name}.yml validates as an override`, { skip: skipCompose }, async () => {
      const r = spawnSync(
        'docker-compose',
        ['-f', 'docker-compose.yml', '-f', `docker-compose.${name}.yml`, 'config', '-q'],
        { cwd: root, env, encoding: 'utf8' },
      );
      assert.equal(r.status, 0, `docker-compose.${name}.yml: ${r.stderr}`);
      assert.equal(r.stderr.trim(), '', `docker-compose.${name}.yml warns: ${r.stderr}`);
      if (name === 'ci') {
        const svc = services(await compose('docker-compose.yml', 'docker-compose.ci.yml'));
        for (const svcName of ['nginx', 'prometheus', 'redis']) {
          assert.match(
            svc.get(svcName)!,
            new RegExp(`image: yggdrasil/${svcName}:latest`),
            `${svcName} in CI`,
          );
        }
        assert.match(svc.get('grafana')!, /profiles:\n\s+- grafana/, 'grafana is left out of the CI run');
      }
    });
  }
});
