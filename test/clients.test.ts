// Client access on the data plane (issue 10): CLIENT_AUTH=keys needs a client key, whose name reaches
// the agent as X-Yggdrasil-Tenant (and the key does not); RATE_LIMIT_RPS/BURST answer 429 with
// Retry-After and the IETF RateLimit headers while other clients keep being served;
// MAX_INFLIGHT_PER_CLIENT and MAX_SESSIONS_PER_CLIENT cap one client; per-tenant counters in metrics.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { addKey } from '../src/auth/keys.js';
import type { Platform } from '../src/platform.js';
import { metric, routerMetrics, settled, withCountingPlatform } from './helpers/agents.js';

interface Echo {
  headers: Record<string, string>;
}

const dir = mkdtempSync(join(tmpdir(), 'ygg-clients-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const get = (p: Platform, path: string, headers: Record<string, string> = {}) =>
  fetch(`${p.lbUrl}${path}`, { headers });

describe('CLIENT_AUTH=keys', () => {
  it('needs a client key; the tenant reaches the agent, the key does not', async () => {
    const authFile = join(dir, 'a.json');
    const tenantKey = await addKey(authFile, 'tenant-a', 'client');
    const readKey = await addKey(authFile, 'grafana', 'read');
    await withCountingPlatform(
      { MIN_INSTANCES: '1', MAX_INSTANCES: '1', CLIENT_AUTH: 'keys', AUTH_FILE: authFile },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(1, 15_000);
        const none = await get(p, '/echo');
        assert.equal(none.status, 401);
        assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="yggdrasil"');
        assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'YGG_ERR_UNAUTHORIZED');
        assert.equal(
          (await get(p, '/echo', { authorization: `Bearer ${readKey}` })).status,
          401,
          'a read key is not a client key',
        );
        const ok = await get(p, '/echo', {
          authorization: `Bearer ${tenantKey}`,
          'x-yggdrasil-tenant': 'spoofed',
        });
        assert.equal(ok.status, 200);
        const echo = (await ok.json()) as Echo;
        assert.equal(echo.headers['x-yggdrasil-tenant'], 'tenant-a');
        assert.equal(echo.headers.authorization, undefined, 'the key is not forwarded');
        const text = await routerMetrics(p);
        assert.equal(
          metric(text, 'yggdrasil_router_client_requests_total', 'tenant="tenant-a",outcome="admitted"'),
          1,
        );
        assert.equal(
          metric(text, 'yggdrasil_router_client_requests_total', 'tenant="anonymous",outcome="unauthorized"'),
          2,
        );
        assert.equal((await fetch(`${p.lbUrl}/health`)).status, 200, 'the platform’s own routes stay open');
      },
    );
  });
});

describe('rate limits', () => {
  it('RATE_LIMIT_RPS: 429 with Retry-After and RateLimit headers for the client over it, the others served', async () => {
    const authFile = join(dir, 'b.json');
    const a = await addKey(authFile, 'busy', 'client');
    const b = await addKey(authFile, 'calm', 'client');
    await withCountingPlatform(
      {
        MIN_INSTANCES: '1',
        MAX_INSTANCES: '1',
        CLIENT_AUTH: 'keys',
        AUTH_FILE: authFile,
        RATE_LIMIT_RPS: '5',
        RATE_LIMIT_BURST: '3',
      },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(1, 15_000);
        // All at once, so they fall in one second whatever this machine's speed.
        const answers = await Promise.all(
          Array.from({ length: 12 }, () => get(p, '/api/x', { authorization: `Bearer ${a}` })),
        );
        const statuses = answers.map((r) => r.status);
        const limited = answers.find((r) => r.status === 429);
        assert.equal(
          statuses.filter((s) => s === 200).length,
          8,
          `5 a second plus a burst of 3: ${statuses.join(' ')}`,
        );
        assert.ok(limited, 'the busy client was limited');
        assert.ok(Number(limited.headers.get('retry-after')) >= 1);
        assert.equal(limited.headers.get('ratelimit-policy'), '"default";q=5;w=1');
        assert.match(limited.headers.get('ratelimit') ?? '', /^"default";r=0;t=\d+$/);
        assert.equal(
          ((await limited.json()) as { error: { code: string } }).error.code,
          'YGG_ERR_RATE_LIMITED',
        );
        const calm = await get(p, '/api/x', { authorization: `Bearer ${b}` });
        assert.equal(calm.status, 200, 'another client is served');
        assert.match(calm.headers.get('ratelimit') ?? '', /^"default";r=4;t=\d+$/);
        const text = await routerMetrics(p);
        assert.equal(
          metric(text, 'yggdrasil_router_client_requests_total', 'tenant="busy",outcome="rate_limited"'),
          4,
        );
      },
    );
  });

  it('MAX_INFLIGHT_PER_CLIENT and MAX_SESSIONS_PER_CLIENT cap one client (by address without keys)', async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '1', MAX_INSTANCES: '1', MAX_INFLIGHT_PER_CLIENT: '2', MAX_SESSIONS_PER_CLIENT: '2' },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(1, 15_000);
        const slow = () =>
          fetch(`${p.lbUrl}/process`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ id: 'slow', workMs: 300 }),
          });
        const [x, y, z] = await Promise.all([
          slow(),
          slow(),
          new Promise<Response>((r) => setTimeout(() => r(slow()), 100)),
        ]);
        assert.deepEqual([x.status, y.status, z.status].sort(), [200, 200, 429]);
        assert.match(await z.text(), /MAX_INFLIGHT_PER_CLIENT=2/);
        await settled(p);
        assert.equal((await get(p, '/api/x', { 'x-session-id': 's1' })).status, 200);
        assert.equal((await get(p, '/api/x', { 'x-session-id': 's2' })).status, 200);
        const third = await get(p, '/api/x', { 'x-session-id': 's3' });
        assert.equal(third.status, 429);
        assert.match(await third.text(), /MAX_SESSIONS_PER_CLIENT=2/);
        assert.equal(
          (await get(p, '/api/x', { 'x-session-id': 's1' })).status,
          200,
          'a held session goes on',
        );
      },
    );
  });
});
