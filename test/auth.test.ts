// Keys and roles on real processes (issue 10): `npm run add:auth` makes keys (hashes only, 0600) and
// prints each once; admin routes refuse without a key (401), with a read key (403), work with an
// admin key and the change shows in /status; read routes need a key once one exists; the public port's
// /status and feed show a summary only; a revoked key stops working; the CLI sends YGG_TOKEN.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { io } from 'socket.io-client';
import { parseKey } from '../src/auth/keys.js';
import type { Platform } from '../src/platform.js';
import { bootPlatform, waitFor } from './helpers/platform.js';

const exec = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;

const dir = mkdtempSync(join(tmpdir(), 'ygg-auth-'));
const authFile = join(dir, 'state', 'auth.json');

async function addAuth(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return exec('npm', ['run', '--silent', 'add:auth', '--', ...args], {
    cwd: root,
    env: { ...process.env, AUTH_FILE: authFile },
  });
}

async function call(url: string, key?: string, init: RequestInit = {}) {
  const res = await fetch(url, {
    ...init,
    headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(init.headers ?? {}) },
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, body: body as Record<string, unknown> };
}

const codeOf = (b: Record<string, unknown>) => (b.error as { code?: string } | undefined)?.code;

function cli(args: string[], env: Record<string, string>) {
  return exec(process.execPath, ['dist/cli/main.js', ...args], {
    cwd: root,
    env: { ...process.env, ...env },
  }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
}

function feed(url: string, token?: string) {
  return new Promise<{
    hello?: { events: unknown[]; stats: { instances: Array<{ lastFailure: unknown }> } };
    error?: string;
  }>((resolve) => {
    const s = io(url, {
      path: '/_yggdrasil/socket.io',
      transports: ['websocket'],
      reconnection: false,
      ...(token ? { auth: { token } } : {}),
    });
    s.once('hello', (hello) => {
      s.close();
      resolve({ hello });
    });
    s.once('connect_error', (err) => {
      s.close();
      resolve({ error: err.message });
    });
  });
}

after(() => rmSync(dir, { recursive: true, force: true }));

describe('with no key yet', () => {
  let p: Platform;
  before(async () => {
    p = await bootPlatform({ MIN_INSTANCES: '1', MAX_INSTANCES: '2', AUTH_FILE: authFile });
    await p.controller.waitForReady(1, 15_000);
  });
  after(() => p.stop());

  it('admin routes answer 403 YGG_ERR_AUTH_NOT_CONFIGURED saying how to make a key; read routes are open', async () => {
    const r = await call(`${p.controllerUrl}/scaling`, undefined, {
      method: 'PUT',
      body: '{"maxInstances":3}',
    });
    assert.equal(r.status, 403);
    assert.equal(codeOf(r.body), 'YGG_ERR_AUTH_NOT_CONFIGURED');
    assert.match(
      String((r.body.error as { message: string }).message),
      /npm run add:auth -- --name NAME --role admin/,
    );
    assert.equal((await call(`${p.controllerUrl}/status`)).status, 200);
    assert.equal((await call(`${p.controllerUrl}/health`)).status, 200);
  });
});

describe('keys and roles', () => {
  let p: Platform;
  let admin: string;
  let reader: string;
  let client: string;

  before(async () => {
    const a = await addAuth('--name', 'ops', '--role', 'admin');
    admin = a.stdout.trim().split('\n').at(-1)!;
    reader = (await addAuth('--name', 'grafana', '--role', 'read')).stdout.trim().split('\n').at(-1)!;
    client = (await addAuth('--name', 'tenant-a', '--role', 'client')).stdout.trim().split('\n').at(-1)!;
    p = await bootPlatform({ MIN_INSTANCES: '1', MAX_INSTANCES: '2', AUTH_FILE: authFile });
    await p.controller.waitForReady(1, 15_000);
  });
  after(() => p.stop());

  it('npm run add:auth prints the key alone on the last line, stores only its hash in a 0600 file, and lists names', async () => {
    assert.match(admin, /^ygg_[0-9a-f]{12}_[\w-]{43}$/);
    const text = readFileSync(authFile, 'utf8');
    for (const k of [admin, reader, client])
      assert.ok(!text.includes(parseKey(k)!.secret), 'no secret on disk');
    assert.equal(statSync(authFile).mode & 0o777, 0o600);
    const list = await addAuth('--list');
    assert.match(list.stdout, /^ops\tadmin\t/m);
    assert.match(list.stdout, /^grafana\tread\t/m);
    assert.ok(!list.stdout.includes('ygg_'), 'the list shows no key');
    const dup = await addAuth('--name', 'ops').catch((e: { code: number; stderr: string }) => e);
    assert.equal((dup as { code: number }).code, 2);
    assert.match((dup as { stderr: string }).stderr, /a key named ops exists/);
  });

  it('read routes need a read or admin key once keys exist (401 with WWW-Authenticate, 403 for a client key)', async () => {
    for (const path of ['/status', '/metrics', '/sd/agents']) {
      const none = await call(`${p.controllerUrl}${path}`);
      assert.equal(none.status, 401, path);
      assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="yggdrasil"');
      assert.equal(codeOf(none.body), 'YGG_ERR_UNAUTHORIZED');
      assert.equal(
        (await call(`${p.controllerUrl}${path}`, 'ygg_000000000000_' + 'x'.repeat(43))).status,
        401,
      );
      assert.equal(
        (await call(`${p.controllerUrl}${path}`, client)).status,
        403,
        `${path} with a client key`,
      );
      assert.equal((await call(`${p.controllerUrl}${path}`, reader)).status, 200, `${path} with a read key`);
      assert.equal((await call(`${p.controllerUrl}${path}`, admin)).status, 200, `${path} with an admin key`);
    }
    assert.equal((await call(`${p.controllerUrl}/health`)).status, 200, '/health stays open');
  });

  it('PUT /scaling: 401 without a key, 403 with a read key, 200 with an admin key; the change shows in /status', async () => {
    const body = JSON.stringify({ minInstances: 2, maxInstances: 3 });
    assert.equal((await call(`${p.controllerUrl}/scaling`, undefined, { method: 'PUT', body })).status, 401);
    assert.equal((await call(`${p.controllerUrl}/scaling`, reader, { method: 'PUT', body })).status, 403);
    const ok = await call(`${p.controllerUrl}/scaling`, admin, { method: 'PUT', body });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, { minInstances: 2, maxInstances: 3, desiredInstances: 2 });
    const status = (await call(`${p.controllerUrl}/status`, reader)).body;
    assert.equal(status.minInstances, 2);
    assert.equal(status.maxInstances, 3);
    await p.controller.waitForReady(2, 15_000);
    const bad = await call(`${p.controllerUrl}/scaling`, admin, {
      method: 'PUT',
      body: '{"maxInstances":0}',
    });
    assert.equal(bad.status, 400);
    assert.match(
      String((bad.body.error as { message: string }).message),
      /maxInstances=0 is not allowed: expected an integer from 1 to 1000/,
    );
    const cross = await call(`${p.controllerUrl}/scaling`, admin, {
      method: 'PUT',
      body: '{"minInstances":5}',
    });
    assert.match(
      String((cross.body.error as { message: string }).message),
      /minInstances=5 > maxInstances=3/,
    );
    // The CLI: YGG_TOKEN is the key; without one it says what to set.
    const scaled = await cli(['scale', '--min', '1', '--max', '2', '--url', p.controllerUrl], {
      YGG_TOKEN: admin,
    });
    assert.equal(scaled.code, 0, scaled.stderr);
    assert.match(scaled.stdout, /scaling limits now 1\.\.2; desired \d/);
    const refused = await cli(['scale', '--max', '4', '--url', p.controllerUrl], { YGG_TOKEN: '' });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /401 YGG_ERR_UNAUTHORIZED.*set YGG_TOKEN/);
  });

  it('drain and restart: 202 with an admin key, 404 for an unknown id; the instance drains and comes back', async () => {
    // The pool held where it is (min = max): the autoscaler may not pick the restarting instance as a
    // scale-down victim meanwhile (it did once, on a busy CI run, after the test above left 1..2).
    const pinned = await call(`${p.controllerUrl}/scaling`, admin, {
      method: 'PUT',
      body: '{"minInstances":2,"maxInstances":2}',
    });
    assert.equal(pinned.status, 200);
    await p.controller.waitForReady(2, 15_000);
    const ready = p.controller.status().instances.find((i) => i.state === 'ready')!;
    assert.equal(
      (await call(`${p.controllerUrl}/instances/${ready.id}/restart`, reader, { method: 'POST' })).status,
      403,
    );
    const before = ready.restarts;
    const restart = await cli(['restart', ready.id, '--url', p.controllerUrl], { YGG_TOKEN: admin });
    assert.equal(restart.code, 0, restart.stderr);
    await waitFor(
      'the restart',
      () => {
        const i = p.controller.status().instances.find((x) => x.id === ready.id);
        return i?.state === 'ready' && i.restarts === before + 1;
      },
      20_000,
    ).catch((err: Error) => {
      const s = p.controller.status();
      throw new Error(
        `${err.message}: ${JSON.stringify({ instances: s.instances.map((i) => [i.id, i.state, i.restarts]), events: s.events.slice(-8).map((e) => e.message) })}`,
      );
    });
    const unknown = await call(`${p.controllerUrl}/instances/agent-99/drain`, admin, { method: 'POST' });
    assert.equal(unknown.status, 404);
    assert.equal(codeOf(unknown.body), 'YGG_ERR_UNKNOWN_INSTANCE');
    const drained = await call(`${p.controllerUrl}/instances/${ready.id}/drain`, admin, { method: 'POST' });
    assert.equal(drained.status, 202);
    assert.deepEqual(drained.body, { id: ready.id, action: 'drain', state: 'draining' });
    await waitFor('the drained instance to go and the pool to refill', () => {
      const s = p.controller.status();
      return (
        s.readyInstances >= s.desiredInstances &&
        s.events.some((e) => e.type === 'instance_stopped' && e.instance === ready.id)
      );
    });
  });

  it('the public port: anonymous /status and feed are a summary; a read key sees everything', async () => {
    const anon = (await call(`${p.lbUrl}/status`)).body;
    assert.deepEqual(Object.keys(anon).sort(), [
      'desiredInstances',
      'instances',
      'maxInstances',
      'minInstances',
      'queue',
      'readyInstances',
    ]);
    const text = JSON.stringify(anon);
    for (const secret of ['pid', 'address', 'lastFailure', 'events', 'meta', '127.0.0.1']) {
      assert.ok(!text.includes(secret), `anonymous /status shows ${secret}`);
    }
    const full = (await call(`${p.lbUrl}/status`, reader)).body;
    assert.ok(Array.isArray(full.instances) && Array.isArray(full.events));
    const anonFeed = await feed(p.lbUrl);
    assert.deepEqual(anonFeed.hello?.events, [], 'no events for anonymous clients');
    const keyFeed = await feed(p.lbUrl, reader);
    assert.ok((keyFeed.hello?.events.length ?? 0) > 0);
    // The controller port's feed refuses anonymous clients outright once keys exist.
    assert.match((await feed(p.controllerUrl)).error ?? '', /YGG_ERR_UNAUTHORIZED/);
    assert.ok((await feed(p.controllerUrl, reader)).hello);
    // And the CLI's health check sends YGG_TOKEN.
    const health = await cli(['health', '--url', p.controllerUrl], { YGG_TOKEN: reader });
    assert.equal(health.code, 0, health.stderr);
    const noKey = await cli(['health', '--url', p.controllerUrl], { YGG_TOKEN: '' });
    assert.match(noKey.stderr, /401 YGG_ERR_UNAUTHORIZED/);
  });

  it('a revoked key stops working within seconds, without a restart', async () => {
    assert.equal((await call(`${p.controllerUrl}/status`, reader)).status, 200);
    const revoked = await cli(['add-auth', '--revoke', 'grafana'], { AUTH_FILE: authFile });
    assert.equal(revoked.code, 0, revoked.stderr);
    await waitFor(
      'the revocation to take effect',
      async () => (await call(`${p.controllerUrl}/status`, reader)).status === 401,
      10_000,
      100,
    );
    assert.equal((await call(`${p.controllerUrl}/status`, admin)).status, 200, 'other keys still work');
  });
});
