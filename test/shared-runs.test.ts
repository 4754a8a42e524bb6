// Runs in Redis (issue 13: "memory; Redis when REDIS_URL is set"): two `yggdrasil router` processes
// and a controller sharing a real redis-server. A run started through router A is read, streamed,
// resumed after Last-Event-ID and cancelled through router B, which never ran it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { waitFor } from './helpers/platform.js';
import { startPool, type TestPool } from './helpers/roles.js';
import { requireService } from './helpers/services.js';
import { readSse } from './helpers/sse.js';

const skip = requireService('redis');

interface RunView {
  id: string;
  state: string;
  request: { method: string; path: string };
  answer?: { status: number; events?: number; body?: string };
  error: { code: string } | null;
}

async function view(url: string, id: string): Promise<{ status: number; run?: RunView }> {
  const res = await request(`${url}/runs/${id}`);
  const body = (await res.body.json()) as { run?: RunView };
  return { status: res.statusCode, ...body };
}

async function startRun(url: string, path: string): Promise<string> {
  const res = await request(`${url}${path}`, {
    method: path.startsWith('/stream') ? 'GET' : 'POST',
    headers: { prefer: 'respond-async' },
    ...(path.startsWith('/stream') ? {} : { body: '{}' }),
  });
  assert.equal(res.statusCode, 202);
  return ((await res.body.json()) as { run: { id: string } }).run.id;
}

/** SSE ids read from /runs/{id}/stream after `last`, until `count` came (then gone) or the end. */
const read = (url: string, id: string, last: number, count?: number) =>
  readSse(`${url}/runs/${id}/stream`, { lastEventId: last, ...(count ? { stopAfter: count } : {}) });

describe('runs shared through Redis: any router serves them', { skip, timeout: 120_000 }, () => {
  let pool: TestPool;
  let a: string;
  let b: string;
  before(async () => {
    pool = await startPool({
      env: (redis) => ({ REDIS_URL: redis.url, MIN_INSTANCES: '1', MAX_INSTANCES: '1' }),
      controller: 'c1',
      routers: ['ra', 'rb'],
      ready: 1,
    });
    [a, b] = pool.routers.map((r) => r.url) as [string, string];
  });
  after(async () => {
    await pool?.stop();
  });

  it('a run started on router A streams from router B, resumed after Last-Event-ID with no gap', async () => {
    const id = await startRun(a, '/stream?n=40&ms=40');
    const first = await read(b, id, 0, 10);
    assert.equal(first.status, 200);
    assert.deepEqual(
      first.ids,
      Array.from({ length: 10 }, (_, i) => i + 1),
    );
    const rest = await read(b, id, 10);
    assert.deepEqual(
      rest.ids,
      Array.from({ length: 30 }, (_, i) => i + 11),
      'no gap, no duplicate',
    );
    assert.match(rest.ended, /"state":"done"/);
    const v = await view(b, id);
    assert.equal(v.status, 200);
    assert.equal(v.run?.state, 'done');
    assert.equal(v.run?.request.path, '/stream?n=40&ms=40');
    assert.equal(v.run?.answer?.events, 40);
  });

  it("a JSON answer recorded on A is in B's GET /runs/{id}", async () => {
    const id = await startRun(a, '/api/remote');
    const done = await waitFor('the run to be done on B', async () => {
      const v = await view(b, id);
      return v.run?.state === 'done' ? v.run : undefined;
    });
    assert.equal(done.answer?.status, 200);
    assert.equal((JSON.parse(done.answer?.body ?? '{}') as { path: string }).path, '/api/remote');
  });

  it('DELETE on router B cancels a run router A runs', async () => {
    const id = await startRun(a, '/stream?n=10000&ms=50');
    await waitFor('the run to be running on B', async () => (await view(b, id)).run?.state === 'running');
    const res = await request(`${b}/runs/${id}`, { method: 'DELETE' });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
    const onA = await waitFor('A to see it cancelled', async () => {
      const v = await view(a, id);
      return v.run?.state === 'cancelled' ? v.run : undefined;
    });
    assert.equal(onA.error?.code, 'YGG_ERR_RUN_CANCELLED');
    assert.equal((await view(b, id)).run?.state, 'cancelled');
  });

  it('a stream asked after its last event ends at once; every key of a run expires', async () => {
    const id = await startRun(a, '/stream?n=3&ms=10');
    await waitFor('the run to be done on B', async () => (await view(b, id)).run?.state === 'done');
    const past = await read(b, id, 1000);
    assert.deepEqual(past.ids, []);
    assert.match(past.ended, /"state":"done"/, 'run-end, not an open stream');
    const redis = new Redis(pool.redis.url);
    try {
      for (const key of [`ygg:run:${id}`, `ygg:run:${id}:events`]) {
        const ttl = await redis.pttl(key);
        assert.ok(ttl > 0 && ttl <= 3_600_000, `${key} expires within RUN_RETENTION_MS (pttl ${ttl})`);
      }
      const running = await startRun(a, '/stream?n=100&ms=50');
      await waitFor(
        'events of the running run',
        async () => (await redis.xlen(`ygg:run:${running}:events`)) > 2,
      );
      for (const key of [`ygg:run:${running}`, `ygg:run:${running}:events`]) {
        assert.ok(
          (await redis.pttl(key)) > 3_600_000,
          `${key} of a running run expires after RUN_TIMEOUT_MS + RUN_RETENTION_MS`,
        );
      }
      await (await request(`${a}/runs/${running}`, { method: 'DELETE' })).body.dump();
    } finally {
      redis.disconnect();
    }
  });

  it('an unknown run is 404 on every router', async () => {
    for (const url of [a, b]) {
      const v = await view(url, '00000000-0000-4000-8000-000000000000');
      assert.equal(v.status, 404);
    }
  });

  // Last: it kills router A.
  it('a run whose router was killed (SIGKILL) fails YGG_ERR_RUN_LOST: its followers end, DELETE says so', async () => {
    const id = await startRun(a, '/stream?n=100000&ms=50');
    const first = await read(b, id, 0, 3);
    assert.deepEqual(first.ids, [1, 2, 3]);
    const follower = read(b, id, 3);
    await waitFor('router B to be following', async () => ((await view(b, id)).run?.answer?.events ?? 0) > 5);
    pool.routers[0]?.kill('SIGKILL');
    const rest = await follower;
    assert.match(rest.ended, /"state":"failed"/, 'the follower is told the run ended, not left open');
    assert.deepEqual(
      rest.ids,
      Array.from({ length: rest.ids.length }, (_, i) => i + 4),
      'what A had recorded before it died, with no gap',
    );
    const v = await view(b, id);
    assert.equal(v.run?.state, 'failed');
    assert.equal(v.run?.error?.code, 'YGG_ERR_RUN_LOST');
    const del = await request(`${b}/runs/${id}`, { method: 'DELETE' });
    const body = (await del.body.json()) as { run: RunView };
    assert.equal(body.run.state, 'failed', 'a DELETE of a lost run says it is over, not that it runs');
    assert.equal((await read(b, id, 0)).ended.includes('"state":"failed"'), true, 'a new reader ends too');
  });
});
