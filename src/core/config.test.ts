import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadPlatformConfig, PLATFORM_OPTIONS } from './config.js';
import { isYggError } from './errors.js';

const load = (env: Record<string, string>, file?: string) => loadPlatformConfig(env, file);

describe('loadPlatformConfig', () => {
  it('takes the seed defaults when nothing is set', () => {
    const cfg = load({});
    assert.equal(cfg.MAX_CONCURRENCY, 80);
    assert.equal(cfg.MIN_INSTANCES, 1);
    assert.equal(cfg.MAX_INSTANCES, 10);
    assert.equal(cfg.HEALTH_CHECK_INTERVAL, 30_000);
    assert.equal(cfg.LB_PORT, 8080);
    assert.equal(cfg.CONTROLLER_PORT, 3000);
    assert.equal(cfg.NODE_ENV, 'development');
    assert.equal(cfg.LOG_LEVEL, 'info');
    assert.equal(cfg.DRIVER, 'process');
  });

  const good: Array<{
    name: string;
    env: Record<string, string>;
    key: keyof typeof PLATFORM_OPTIONS;
    want: unknown;
  }> = [
    { name: 'integer', env: { MAX_CONCURRENCY: '12' }, key: 'MAX_CONCURRENCY', want: 12 },
    { name: 'integer with spaces', env: { MIN_INSTANCES: ' 2 ' }, key: 'MIN_INSTANCES', want: 2 },
    { name: 'empty value counts as unset', env: { MAX_INSTANCES: '' }, key: 'MAX_INSTANCES', want: 10 },
    { name: 'enum', env: { NODE_ENV: 'production' }, key: 'NODE_ENV', want: 'production' },
    { name: 'boolean word', env: { SESSION_AFFINITY: 'off' }, key: 'SESSION_AFFINITY', want: false },
    { name: 'fraction', env: { TARGET_UTILIZATION: '0.5' }, key: 'TARGET_UTILIZATION', want: 0.5 },
    { name: 'zero instances allowed', env: { MIN_INSTANCES: '0' }, key: 'MIN_INSTANCES', want: 0 },
  ];
  for (const row of good) {
    it(`reads ${row.name}`, () => assert.equal(load(row.env)[row.key], row.want));
  }

  const bad: Array<{ name: string; env: Record<string, string>; want: RegExp }> = [
    {
      name: 'text for an integer',
      env: { MAX_CONCURRENCY: 'abc' },
      want: /^MAX_CONCURRENCY="abc" is not allowed: expected an integer from 1 to 10000$/,
    },
    {
      name: 'fraction for an integer',
      env: { MIN_INSTANCES: '1.5' },
      want: /MIN_INSTANCES="1.5" is not allowed/,
    },
    {
      name: 'below the minimum',
      env: { MAX_CONCURRENCY: '0' },
      want: /MAX_CONCURRENCY="0" is not allowed: expected an integer from 1/,
    },
    {
      name: 'above the maximum',
      env: { LB_PORT: '70000' },
      want: /LB_PORT="70000" is not allowed: expected an integer from 0 to 65535/,
    },
    {
      name: 'unknown enum value',
      env: { DRIVER: 'podman' },
      want: /DRIVER="podman" is not allowed: expected one of process/,
    },
    {
      name: 'MIN above MAX',
      env: { MIN_INSTANCES: '5', MAX_INSTANCES: '2' },
      want: /^MIN_INSTANCES=5 > MAX_INSTANCES=2: MIN_INSTANCES must be at most MAX_INSTANCES$/,
    },
    {
      name: 'same ports',
      env: { LB_PORT: '9000', CONTROLLER_PORT: '9000' },
      want: /LB_PORT=9000 = CONTROLLER_PORT=9000/,
    },
    {
      name: 'backoff above its cap',
      env: { RESTART_BACKOFF_MS: '5000', RESTART_BACKOFF_MAX_MS: '1000' },
      want: /RESTART_BACKOFF_MS=5000 > RESTART_BACKOFF_MAX_MS=1000/,
    },
    {
      name: 'bad boolean',
      env: { SESSION_AFFINITY: 'maybe' },
      want: /SESSION_AFFINITY="maybe" is not allowed: expected true or false/,
    },
    {
      name: 'utilisation above 1',
      env: { TARGET_UTILIZATION: '1.5' },
      want: /TARGET_UTILIZATION="1.5" is not allowed: expected a number from 0.01 to 1/,
    },
    {
      name: 'a Kubernetes owner that starts with a digit (a Service name is DNS-1035)',
      env: { DRIVER: 'kubernetes', DOCKER_OWNER: '1pool' },
      want: /^DOCKER_OWNER=1pool cannot name a Kubernetes Deployment and Service .*a lower-case letter, then/,
    },
    {
      name: 'a Kubernetes owner with _ (a Docker name, not a DNS label)',
      env: { DRIVER: 'kubernetes', DOCKER_OWNER: 'my_pool' },
      want: /^DOCKER_OWNER=my_pool cannot name a Kubernetes/,
    },
    {
      name: 'panic window longer than the stable one',
      env: { PANIC_WINDOW_MS: '9000', STABLE_WINDOW_MS: '6000' },
      want: /PANIC_WINDOW_MS=9000 > STABLE_WINDOW_MS=6000/,
    },
  ];
  for (const row of bad) {
    it(`refuses ${row.name} naming variable, value and rule`, () => {
      assert.throws(
        () => load(row.env),
        (err: unknown) => isYggError(err) && err.code === 'YGG_ERR_CONFIG' && row.want.test(err.message),
      );
    });
  }

  it('reads a JSON config file, and the environment wins over it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ygg-config-'));
    const file = join(dir, 'ygg.json');
    writeFileSync(file, JSON.stringify({ MAX_INSTANCES: 4, MIN_INSTANCES: '2', NODE_ENV: 'staging' }));
    const cfg = load({ MIN_INSTANCES: '3' }, file);
    assert.deepEqual([cfg.MAX_INSTANCES, cfg.MIN_INSTANCES, cfg.NODE_ENV], [4, 3, 'staging']);
  });

  it('refuses an unknown key in the config file (a typo must not be ignored)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ygg-config-'));
    const file = join(dir, 'ygg.json');
    writeFileSync(file, JSON.stringify({ MAX_INSTANCE: 4 }));
    assert.throws(() => load({}, file), /unknown option MAX_INSTANCE/);
  });

  it('every option has a doc line and an allowed-values description', () => {
    for (const [name, def] of Object.entries(PLATFORM_OPTIONS)) {
      assert.ok(def.doc.length > 10, `${name} needs a doc line`);
      assert.ok(def.allowed.length > 3, `${name} needs an allowed description`);
    }
  });
});
