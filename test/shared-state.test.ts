// The router and the controller as separate processes sharing state in a real redis-server: sessions
// through any router, MAX_CONCURRENCY across routers (counted by the agents), a Redis pause, and the
// shared-state modules against the real thing (fencing, the session table, the load board).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { createLogger } from '../src/core/logger.js';
import { sharedKeys } from '../src/shared/keys.js';
import { LoadBoard } from '../src/shared/load-board.js';
import { RedisSessionStore } from '../src/shared/redis-session-store.js';
import { RouterPresence } from '../src/shared/router-presence.js';
import { sharedScripts } from '../src/shared/scripts.js';
import { waitFor } from './helpers/platform.js';
import { startRedis, type TestRedis } from './helpers/redis.js';
import { COUNTING_AGENT, type RoleProcess, startPool, startRole, type TestPool } from './helpers/roles.js';
import { requireService } from './helpers/services.js';

const skip = requireService('redis');

interface Status {
  readyInstances: number;
  instances: Array<{ id: string; state: string; address: string | null }>;
  leadership?: { leader: boolean; holder: string | null; term: number; via: string };
}

const dispatcher = new Agent({ connections: 256, pipelining: 1 });
after(() => dispatcher.close());

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers, dispatcher });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

async function statusOf(controller: RoleProcess): Promise<Status> {
  return (await get(`${controller.url}/status`)).body as Status;
}

function poolEnv(redis: TestRedis, extra: Record<string, string> = {}): Record<string, string> {
  return {
    REDIS_URL: redis.url,
    AGENT_COMMAND: `node ${COUNTING_AGENT}`,
    ROUTER_HEARTBEAT_MS: '100',
    LEADER_LEASE_MS: '1000',
    HEALTH_CHECK_INTERVAL: '500',
    ...extra,
  };
}

describe('routers and a controller sharing state in Redis', { skip, timeout: 120_000 }, () => {
  let pool: TestPool;
  let redis: TestRedis;
  let controller: RoleProcess;
  let routers: RoleProcess[] = [];

  before(async () => {
    pool = await startPool({
      env: (r) =>
        poolEnv(r, {
          MIN_INSTANCES: '3',
          MAX_INSTANCES: '3',
          MAX_CONCURRENCY: '4',
          QUEUE_MAX: '1000',
          QUEUE_TIMEOUT_MS: '60000',
        }),
      controller: 'c1',
      routers: ['r1', 'r2'],
      ready: 3,
    });
    ({ redis, controller, routers } = pool);
  });

  after(async () => {
    await Promise.all(routers.slice(2).map((r) => r.stop()));
    await pool?.stop();
  });

  it('the controller leads alone, and says so in /status', async () => {
    const s = await statusOf(controller);
    assert.deepEqual(s.leadership, { leader: true, holder: 'c1', term: 1, via: 'redis' });
  });

  it('a session pinned through router A is served by the same instance through router B', async () => {
    const [a, b] = routers as [RoleProcess, RoleProcess];
    for (let n = 0; n < 5; n++) {
      const session = `s-${n}-${Date.now()}`;
      const first = await get(`${a.url}/api/pin`, { 'x-session-id': session });
      assert.equal(first.status, 200);
      const pinned = first.body.agentId as string;
      for (let i = 0; i < 6; i++) {
        const via = i % 2 === 0 ? b : a;
        const r = await get(`${via.url}/api/pin`, { 'x-session-id': session });
        assert.equal(r.body.agentId, pinned, `session ${session} moved from ${pinned} through ${via.id}`);
      }
    }
    // A session the router issued (a cookie, no header) also holds through the other router.
    const issued = await get(`${a.url}/api/pin`);
    const cookie = String(issued.headers['set-cookie']).split(';')[0]!;
    const again = await get(`${b.url}/api/pin`, { cookie });
    assert.equal(again.body.agentId, issued.body.agentId);
  });

  it('under 10× oversubscription through 2, then 3, then 2 routers no agent ever holds more than MAX_CONCURRENCY', async () => {
    const s = await statusOf(controller);
    const agents = s.instances.map((i) => i.address!);
    // 3 instances × MAX_CONCURRENCY 4 = 12 slots; 120 clients keep a request each in flight.
    let stop = false;
    let sent = 0;
    const codes = new Map<number, number>();
    const client = async (i: number) => {
      while (!stop) {
        const live = routers.filter((r) => r.proc.child.exitCode === null && !r.proc.child.killed);
        const via = live[i % live.length]!;
        try {
          const res = await request(`${via.url}/process`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ id: `${i}-${sent++}`, workMs: 30 }),
            dispatcher,
          });
          await res.body.dump();
          codes.set(res.statusCode, (codes.get(res.statusCode) ?? 0) + 1);
        } catch {
          codes.set(0, (codes.get(0) ?? 0) + 1);
        }
      }
    };
    const load = Array.from({ length: 120 }, (_, i) => client(i));
    await sleep(1500);
    const env = poolEnv(redis, { MAX_CONCURRENCY: '4', QUEUE_MAX: '1000', QUEUE_TIMEOUT_MS: '60000' });
    const third = await startRole('router', 'r3', env);
    routers.push(third);
    await sleep(1500);
    routers.pop(); // out of the clients' rotation first: a stopping router refuses new requests (503)
    await sleep(200);
    await third.stop();
    await sleep(1500);
    stop = true;
    await Promise.all(load);
    const peaks = await Promise.all(agents.map(async (a) => (await get(`${a}/peak`)).body.peak as number));
    const served = codes.get(200) ?? 0;
    assert.ok(served > 300, `only ${served} requests served: ${JSON.stringify([...codes])}`);
    for (const [i, p] of peaks.entries()) {
      assert.ok(
        p <= 4,
        `agent ${i + 1} saw ${p} requests at once (MAX_CONCURRENCY=4); codes ${JSON.stringify([...codes])}`,
      );
    }
    assert.ok(Math.max(...peaks) >= 3, `the agents were not loaded (peaks ${peaks})`);
    // r3 leaving mid-load may cut its own in-flight requests (a stopping router drains them); none other fails.
    const failed = [...codes].filter(([c]) => c !== 200).reduce((n, [, k]) => n + k, 0);
    assert.equal(failed, 0, `failed answers: ${JSON.stringify([...codes])}`);
  });

  it('a Redis pause of 10 s (SIGSTOP) causes no 5xx; the routers say degraded, then recover', async () => {
    const [a, b] = routers as [RoleProcess, RoleProcess];
    const before = await get(`${a.url}/api/known`, { 'x-session-id': 'known-session' });
    const codes = new Map<number, number>();
    let stop = false;
    const loop = async (i: number) => {
      for (let n = 0; !stop; n++) {
        const via = (i + n) % 2 === 0 ? a : b;
        // Known sessions, new sessions, and none.
        const headers: Record<string, string> =
          n % 3 === 0
            ? { 'x-session-id': 'known-session' }
            : n % 3 === 1
              ? { 'x-session-id': `new-${i}-${n}` }
              : {};
        try {
          const r = await get(`${via.url}/api/pause`, headers);
          codes.set(r.status, (codes.get(r.status) ?? 0) + 1);
          if (headers['x-session-id'] === 'known-session') {
            assert.equal(r.body.agentId, before.body.agentId, 'the known session moved during the pause');
          }
        } catch {
          codes.set(0, (codes.get(0) ?? 0) + 1);
        }
        await sleep(20);
      }
    };
    const load = Array.from({ length: 8 }, (_, i) => loop(i));
    await sleep(500);
    redis.pause();
    let sawDegraded = false;
    const t0 = Date.now();
    while (Date.now() - t0 < 10_000) {
      const h = await get(`${a.url}/health`);
      assert.equal(h.status, 200, `/health answered ${h.status} during the pause`);
      if (h.body.status === 'degraded') {
        sawDegraded = true;
        assert.match(String(h.body.reason), /redis/i);
      }
      await sleep(500);
    }
    const frozen = await statusOf(controller);
    redis.resume();
    await waitFor(
      'a router to be ok again',
      async () => (await get(`${a.url}/health`)).body.status === 'ok',
      10_000,
    );
    await sleep(1000);
    stop = true;
    await Promise.all(load);
    assert.ok(sawDegraded, '/health never said degraded while Redis was paused');
    const bad = [...codes].filter(([c]) => c >= 500 || c === 0);
    assert.deepEqual(bad, [], `answers: ${JSON.stringify([...codes])}`);
    assert.ok((codes.get(200) ?? 0) > 200, `too few answers: ${JSON.stringify([...codes])}`);
    // The controller kept the pool as it was and leads on.
    assert.equal(frozen.readyInstances, 3);
    const after = await statusOf(controller);
    assert.equal(after.leadership?.leader, true);
    assert.equal(after.readyInstances, 3);
  });
});

describe('the autoscaler scales on the load of every router together', { skip, timeout: 60_000 }, () => {
  let pool: TestPool;

  before(async () => {
    pool = await startPool({
      env: (r) =>
        poolEnv(r, {
          MIN_INSTANCES: '1',
          MAX_INSTANCES: '4',
          MAX_CONCURRENCY: '4',
          TARGET_UTILIZATION: '1',
          TARGET_CPU: '0',
          STABLE_WINDOW_MS: '2000',
          PANIC_WINDOW_MS: '1000',
          SCALE_INTERVAL_MS: '200',
          QUEUE_TIMEOUT_MS: '30000',
        }),
      controller: 'ac',
      routers: ['aa', 'ab'],
      ready: 1,
    });
  });
  after(() => pool?.stop());

  it('6 requests in flight through each of 2 routers (12 with MAX_CONCURRENCY 4): 3 instances', async () => {
    let stop = false;
    const loop = async (via: RoleProcess, i: number) => {
      for (let n = 0; !stop; n++) {
        const res = await request(`${via.url}/process`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id: `${via.id}-${i}-${n}`, workMs: 200 }),
          dispatcher,
        });
        await res.body.dump();
      }
    };
    const load = pool.routers.flatMap((r) => Array.from({ length: 6 }, (_, i) => loop(r, i)));
    const scaled = await waitFor(
      'the pool to grow to the sum of both routers’ load',
      async () => {
        const s = (await get(`${pool.controller.url}/status`)).body as {
          desiredInstances: number;
          routers: number;
        };
        return s.desiredInstances >= 3 ? s : undefined;
      },
      20_000,
      100,
    );
    stop = true;
    await Promise.all(load);
    // One router's load alone (6 on MAX_CONCURRENCY 4) would ask for 2.
    assert.ok(scaled.desiredInstances >= 3, `desired ${scaled.desiredInstances}`);
    assert.equal(scaled.routers, 2, 'the controller counts both routers');
  });
});

describe('RATE_LIMIT_RPS across routers (Redis)', { skip, timeout: 60_000 }, () => {
  let pool: TestPool;

  before(async () => {
    pool = await startPool({
      env: (r) => poolEnv(r, { MIN_INSTANCES: '1', MAX_INSTANCES: '1', RATE_LIMIT_RPS: '10' }),
      controller: 'rc',
      routers: ['ra', 'rb'],
      ready: 1,
    });
  });
  after(() => pool?.stop());

  it('one client gets RATE_LIMIT_RPS through both routers together, not twice that', async () => {
    // 40 requests at once, alternating routers, from one address: 10 pass within the second.
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => get(`${pool.routers[i % 2]!.url}/api/limited`)),
    );
    const ok = results.filter((r) => r.status === 200).length;
    const limited = results.filter((r) => r.status === 429);
    assert.ok(ok >= 10 && ok <= 12, `${ok} requests passed RATE_LIMIT_RPS=10 through 2 routers`);
    assert.equal(ok + limited.length, 40);
    assert.equal(limited[0]?.body.error.code, 'YGG_ERR_RATE_LIMITED');
    const keys = await pool.redis.client.keys('ygg:rl:*');
    assert.ok(keys.length > 0, 'no rate-limit counts in Redis');
  });
});

describe('npm run router / npm run controller', () => {
  for (const role of ['router', 'controller']) {
    it(`npm run ${role} without REDIS_URL stops at once (exit 2) naming REDIS_URL`, {
      timeout: 60_000,
    }, async () => {
      const { execFile } = await import('node:child_process');
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = execFile(
          'npm',
          ['run', '--silent', role],
          {
            cwd: new URL('..', import.meta.url).pathname,
            env: { ...process.env, REDIS_URL: '', LOG_LEVEL: 'silent' },
          },
          () => {},
        );
        let stderr = '';
        child.stderr?.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        child.on('exit', (code) => resolve({ code, stderr }));
      });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`yggdrasil ${role}: configuration error: REDIS_URL is empty`));
    });
  }
});

describe('shared-state modules on a real redis-server', { skip, timeout: 30_000 }, () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(() => redis?.stop());

  it("a deposed leader's pool write is refused (fencing by term)", async () => {
    const keys = sharedKeys('fence');
    const scripts = sharedScripts(redis.client);
    const [won1, term1] = await scripts.acquire(keys.leader, keys.term, 'a', 200);
    assert.deepEqual([won1, term1], [1, 1]);
    const [lost] = await scripts.acquire(keys.leader, keys.term, 'b', 200);
    assert.equal(lost, 0, 'b took a held lease');
    assert.equal(await scripts.fencedPublish(keys.term, keys.pool, 1, 'a1', keys.poolChannel), 1);
    await sleep(300); // a's lease runs out (a paused, say) and b takes over
    const [won2, term2] = await scripts.acquire(keys.leader, keys.term, 'b', 1000);
    assert.deepEqual([won2, term2], [1, 2]);
    assert.equal(await scripts.fencedPublish(keys.term, keys.pool, 1, 'a-stale', keys.poolChannel), 0);
    assert.equal(await redis.client.get(keys.pool), 'a1');
    assert.equal(await scripts.renew(keys.leader, keys.term, 'a', 1, 1000), 0, 'a renewed a lease it lost');
    assert.equal(await scripts.fencedPublish(keys.term, keys.pool, 2, 'b1', keys.poolChannel), 1);
    assert.equal(await redis.client.get(keys.pool), 'b1');
  });

  it('a session set through one store is found by another; the load board counts it per instance', async () => {
    const keys = sharedKeys('sessions');
    const logger = createLogger('silent');
    const scripts = sharedScripts(redis.client);
    const a = new RedisSessionStore({ redis: redis.client, scripts, keys, ttlMs: 60_000, logger });
    const b = new RedisSessionStore({ redis: redis.client, scripts, keys, ttlMs: 60_000, logger });
    const now = Date.now();
    await a.set('s1', { instanceId: 'agent-1', incarnation: 'i1' }, now);
    await a.set('s2', { instanceId: 'agent-1', incarnation: 'i1' }, now);
    await a.set('s3', { instanceId: 'agent-2', incarnation: 'i2' }, now);
    assert.deepEqual(await b.get('s1', now), { instanceId: 'agent-1', incarnation: 'i1', lastSeen: now });
    // Moved by b: a's near cache still says agent-1, the shared table agent-2.
    await b.set('s2', { instanceId: 'agent-2', incarnation: 'i2' }, now);
    assert.equal((await a.get('s2', now))?.instanceId, 'agent-1');
    assert.equal((await a.fresh('s2', now))?.instanceId, 'agent-2');
    const board = new LoadBoard({ redis: redis.client, keys, routerTtlMs: 1000, sessionTtlMs: 60_000 });
    await board.refresh(['agent-1', 'agent-2', 'agent-3']);
    assert.deepEqual(
      ['agent-1', 'agent-2', 'agent-3'].map((id) => board.sessions(id)),
      [1, 2, 0],
    );
    await b.delete('s3');
    await board.refresh(['agent-2']);
    assert.equal(board.sessions('agent-2'), 1);
  });

  it("two routers' presences split an instance's capacity and the board sums their load", async () => {
    const keys = sharedKeys('presence');
    const make = (id: string, inflight: number) => {
      const limits: Record<string, number> = { 'agent-1': 0 };
      const p = new RouterPresence({
        redis: redis.client,
        keys,
        id,
        total: 80,
        heartbeatMs: 1000,
        router: {
          instances: () => [{ id: 'agent-1', limit: limits['agent-1']!, inflight }],
          queued: () => 2,
          setLimit: (i, n) => {
            limits[i] = n;
          },
        },
      });
      return { p, limits };
    };
    const r1 = make('r1', 3);
    await r1.p.beat();
    assert.equal(r1.limits['agent-1'], 80, 'alone: the whole capacity');
    const r2 = make('r2', 5);
    await r2.p.beat();
    assert.equal(r2.limits['agent-1'], 0, 'r2 waits until r1 reports the view with both');
    await r1.p.beat();
    assert.equal(r1.limits['agent-1'], 40, 'r1 lowers at once');
    await r2.p.beat();
    assert.equal(r2.limits['agent-1'], 40, 'r2 raises once r1 settled');
    const board = new LoadBoard({ redis: redis.client, keys, routerTtlMs: 3000, sessionTtlMs: 60_000 });
    await board.refresh(['agent-1']);
    assert.equal(board.inflight('agent-1'), 8);
    assert.equal(board.concurrency(), 12);
    assert.equal(board.routers(), 2);
    await r2.p.leave();
    await r1.p.beat();
    assert.equal(r1.limits['agent-1'], 80, 'r1 takes the share of a router that left');
  });
});
