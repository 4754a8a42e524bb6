// The router on real agent processes: concurrency limit, FIFO queue with overflow and timeout, sticky
// sessions (and their move when the instance dies), timeouts, client disconnects, headers, body limits,
// WebSocket upgrades.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { describe, it } from 'node:test';
import type { Platform } from '../src/platform.js';
import { bootPlatform, json, killInstance, waitFor } from './helpers/platform.js';
import { connectWs } from './helpers/ws.js';

interface ProcessAnswer {
  agentId: string;
  instanceId: string;
  inflight: number;
  output: { echo: unknown };
  session: { id: string | null; requests: number };
}

const post = (p: Platform, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(`${p.lbUrl}/process`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });

async function withPlatform(env: Record<string, string>, ready: number, fn: (p: Platform) => Promise<void>) {
  const p = await bootPlatform({ MIN_INSTANCES: String(ready), MAX_INSTANCES: String(ready), ...env });
  try {
    await p.controller.waitForReady(ready, 15_000);
    await fn(p);
  } finally {
    await p.stop();
  }
}

describe('concurrency limit and queue', () => {
  it('never lets more than MAX_CONCURRENCY requests reach an agent under 10× oversubscription', async () => {
    await withPlatform(
      { MAX_CONCURRENCY: '4', QUEUE_MAX: '200', SESSION_AFFINITY: 'false' },
      2,
      async (p) => {
        let maxQueued = 0;
        const watch = setInterval(() => (maxQueued = Math.max(maxQueued, p.router.queued())), 5);
        const answers = await Promise.all(
          Array.from({ length: 80 }, async (_, i) => {
            const res = await post(p, { workMs: 50, input: i });
            assert.equal(res.status, 200);
            return json<ProcessAnswer>(res);
          }),
        );
        clearInterval(watch);
        const peak = Math.max(...answers.map((a) => a.inflight));
        assert.ok(peak <= 4, `an agent saw ${peak} requests in flight, MAX_CONCURRENCY is 4`);
        assert.ok(peak >= 2, 'the limit was actually exercised');
        assert.ok(maxQueued > 0, 'the excess waited in the queue');
        assert.deepEqual(new Set(answers.map((a) => a.output.echo)).size, 80, 'each request answered once');
        const metrics = await (await fetch(`${p.lbUrl}/metrics`)).text();
        assert.match(metrics, /yggdrasil_router_queue_wait_seconds_count [1-9]\d*/);
      },
    );
  });

  it('serves queued requests in FIFO order and refuses overflow with 503 + Retry-After', async () => {
    const env = { MAX_CONCURRENCY: '1', QUEUE_MAX: '3', SESSION_AFFINITY: 'false' };
    await withPlatform(env, 1, async (p) => {
      const done: string[] = [];
      const send = (name: string, workMs: number) =>
        post(p, { workMs, input: name }).then(async (r) => {
          done.push(name);
          return r;
        });
      const first = send('A', 400);
      await waitFor('A in flight', () => p.router.inflight('agent-1') === 1);
      const queued: Array<Promise<Response>> = [];
      for (const [i, name] of ['B', 'C', 'D'].entries()) {
        queued.push(send(name, 20));
        await waitFor(`${name} queued`, () => p.router.queued() === i + 1);
      }
      const overflow = await post(p, { input: 'E' });
      assert.equal(overflow.status, 503);
      assert.ok(Number(overflow.headers.get('retry-after')) >= 1, 'Retry-After is set');
      assert.equal((await json<{ error: { code: string } }>(overflow)).error.code, 'YGG_ERR_CAPACITY');
      const all = await Promise.all([first, ...queued]);
      assert.deepEqual(
        all.map((r) => r.status),
        [200, 200, 200, 200],
      );
      assert.deepEqual(done, ['A', 'B', 'C', 'D']);
    });
  });

  it('answers 503 + Retry-After when the wait exceeds QUEUE_TIMEOUT_MS, and the running request still completes', async () => {
    const env = { MAX_CONCURRENCY: '1', QUEUE_TIMEOUT_MS: '300', SESSION_AFFINITY: 'false' };
    await withPlatform(env, 1, async (p) => {
      const first = post(p, { workMs: 1500 });
      await waitFor('first in flight', () => p.router.inflight('agent-1') === 1);
      const t0 = Date.now();
      const waited = await post(p, { input: 'late' });
      const elapsed = Date.now() - t0;
      assert.equal(waited.status, 503);
      assert.ok(waited.headers.get('retry-after'));
      const body = await json<{ error: { code: string; message: string } }>(waited);
      assert.equal(body.error.code, 'YGG_ERR_CAPACITY');
      assert.match(body.error.message, /QUEUE_TIMEOUT_MS=300/);
      assert.ok(elapsed >= 250 && elapsed < 1500, `timed out after ${elapsed} ms`);
      assert.equal((await first).status, 200);
    });
  });
});

describe('sticky sessions', () => {
  it('keeps 100 requests of one session on one instance, then moves it when the instance dies', async () => {
    await withPlatform({}, 3, async (p) => {
      const instances = new Set<string>();
      for (let n = 1; n <= 100; n++) {
        const res = await post(p, { input: n }, { 'x-session-id': 'workflow-1' });
        const a = await json<ProcessAnswer>(res);
        assert.equal(a.session.requests, n);
        assert.equal(res.headers.get('x-yggdrasil-session-moved'), null);
        instances.add(a.agentId);
      }
      assert.equal(instances.size, 1, `one session spread over ${[...instances]}`);
      const home = [...instances][0]!;
      await killInstance(p, home);
      const moved = await post(p, { input: 'after' }, { 'x-session-id': 'workflow-1' });
      assert.equal(moved.status, 200);
      assert.equal(moved.headers.get('x-yggdrasil-session-moved'), '1');
      const a = await json<ProcessAnswer>(moved);
      assert.equal(a.session.requests, 1, 'a new instance has not seen this session');
      const next = await post(p, {}, { 'x-session-id': 'workflow-1' });
      assert.equal(next.headers.get('x-yggdrasil-session-moved'), null);
      assert.equal((await json<ProcessAnswer>(next)).session.requests, 2);
    });
  });

  it('gives a cookie to a request without a session, and the cookie keeps it on its instance', async () => {
    await withPlatform({}, 2, async (p) => {
      const first = await post(p, {});
      const cookie = first.headers.get('set-cookie') ?? '';
      assert.match(cookie, /^ygg_session=agent-\d+\.[0-9a-f]{8}\.[\w-]+; Path=\/; HttpOnly; SameSite=Lax$/);
      const home = (await json<ProcessAnswer>(first)).agentId;
      assert.equal(p.router.sessions.size(), 0, 'a client that never returns leaves no table entry');
      const pair = cookie.split(';')[0]!;
      for (let n = 2; n <= 10; n++) {
        const res = await post(p, {}, { cookie: pair });
        assert.equal(res.headers.get('set-cookie'), null, 'no new cookie for a known session');
        const a = await json<ProcessAnswer>(res);
        assert.equal(a.agentId, home);
        assert.equal(
          a.session.requests,
          n,
          'the agent counts every request of the session, the first included',
        );
      }
      const status = await json<{ instances: Array<{ id: string; sessions: number }> }>(
        await fetch(`${p.controllerUrl}/status`),
      );
      assert.equal(status.instances.find((i) => i.id === home)?.sessions, 1);
    });
  });

  it('waits in its own instance queue when that instance is full instead of moving', async () => {
    await withPlatform({ MAX_CONCURRENCY: '1' }, 2, async (p) => {
      const h = { 'x-session-id': 'stateful' };
      const home = (await json<ProcessAnswer>(await post(p, {}, h))).agentId;
      const busy = post(p, { workMs: 400 }, h);
      await waitFor('the session busy on its instance', () => p.router.inflight(home) === 1);
      const res = await post(p, {}, h);
      const a = await json<ProcessAnswer>(res);
      assert.equal(a.agentId, home, 'stayed on its instance although another one was free');
      assert.equal(res.headers.get('x-yggdrasil-session-moved'), null);
      assert.equal(a.session.requests, 3);
      assert.equal((await busy).status, 200);
    });
  });
});

describe('timeouts and disconnects', () => {
  it('answers 504 YGG_ERR_TIMEOUT after REQUEST_TIMEOUT_MS', async () => {
    await withPlatform({ REQUEST_TIMEOUT_MS: '300' }, 1, async (p) => {
      const res = await post(p, { workMs: 3000 });
      assert.equal(res.status, 504);
      assert.equal((await json<{ error: { code: string } }>(res)).error.code, 'YGG_ERR_TIMEOUT');
      assert.equal(res.headers.get('x-yggdrasil-instance'), 'agent-1');
    });
  });

  it('cancels the upstream request when the client goes away and frees its slot', async () => {
    await withPlatform({ MAX_CONCURRENCY: '1', SESSION_AFFINITY: 'false' }, 1, async (p) => {
      const ac = new AbortController();
      const abandoned = post(p, { workMs: 10_000 }, {}, ac.signal).catch((e: Error) => e);
      await waitFor('in flight', () => p.router.inflight('agent-1') === 1);
      ac.abort();
      assert.ok((await abandoned) instanceof Error);
      await waitFor('the slot to be freed', () => p.router.inflight('agent-1') === 0, 2000);
      const health = await json<{ inflight: number }>(await fetch(`${p.lbUrl}/agent/agent-1/health`));
      assert.equal(health.inflight, 0, 'the agent saw the cancellation too');
      const res = await post(p, { input: 'next' });
      assert.equal(res.status, 200);
    });
  });
});

describe('headers, bodies and upgrades', () => {
  it('sets X-Forwarded-*, drops hop-by-hop headers and streams a large body', async () => {
    await withPlatform({}, 1, async (p) => {
      const big = 'x'.repeat(5 * 1024 * 1024);
      // node:http, not fetch: fetch refuses to send a Connection header.
      const a = await new Promise<{ bytes: number; headers: Record<string, string> }>((resolve, reject) => {
        const req = httpRequest(`${p.lbUrl}/api/echo`, {
          method: 'POST',
          headers: {
            connection: 'keep-alive, x-drop-me',
            'x-drop-me': '1',
            'x-keep-me': '1',
            te: 'trailers',
          },
        });
        req.on('response', (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve(JSON.parse(text)));
        });
        req.on('error', reject);
        req.end(big);
      });
      assert.equal(a.bytes, big.length);
      assert.equal(a.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(a.headers['x-forwarded-proto'], 'http');
      assert.equal(a.headers['x-forwarded-host'], new URL(p.lbUrl).host);
      assert.equal(a.headers['x-keep-me'], '1');
      assert.equal(a.headers['x-drop-me'], undefined, 'a header named in Connection is hop-by-hop');
      assert.equal(a.headers.te, undefined);
    });
  });

  it("leaves Socket.IO's default path to the agents (the platform's feed is under /_yggdrasil/)", async () => {
    await withPlatform({}, 1, async (p) => {
      const agents = await fetch(`${p.lbUrl}/socket.io/?EIO=4&transport=polling`);
      assert.equal(agents.headers.get('x-yggdrasil-instance'), 'agent-1', 'proxied to an agent');
      const feed = await fetch(`${p.lbUrl}/_yggdrasil/socket.io/socket.io.js`);
      assert.equal(feed.status, 200);
      assert.equal(feed.headers.get('x-yggdrasil-instance'), null, 'served by the platform');
    });
  });

  it('refuses a body over MAX_BODY_BYTES with 413, declared or chunked', async () => {
    await withPlatform({ MAX_BODY_BYTES: '1000' }, 1, async (p) => {
      const declared = await fetch(`${p.lbUrl}/api/x`, { method: 'POST', body: 'y'.repeat(2000) });
      assert.equal(declared.status, 413);
      assert.equal(declared.headers.get('x-yggdrasil-instance'), null, 'refused before any instance');
      assert.equal((await json<{ error: { code: string } }>(declared)).error.code, 'YGG_ERR_BODY_TOO_LARGE');
      const stream = new ReadableStream({
        start(c) {
          for (let i = 0; i < 4; i++) c.enqueue(new TextEncoder().encode('z'.repeat(600)));
          c.close();
        },
      });
      const chunked = await fetch(`${p.lbUrl}/api/x`, {
        method: 'POST',
        body: stream,
        duplex: 'half',
      } as RequestInit);
      assert.equal(chunked.status, 413);
      assert.equal((await json<{ error: { code: string } }>(chunked)).error.code, 'YGG_ERR_BODY_TOO_LARGE');
    });
  });

  it("carries a WebSocket upgrade to the session's instance and echoes through it", async () => {
    await withPlatform({}, 3, async (p) => {
      const h = { 'x-session-id': 'ws-session' };
      const home = (await json<ProcessAnswer>(await post(p, {}, h))).agentId;
      const ws = await connectWs(`${p.lbUrl}/ws`, h);
      try {
        assert.equal(ws.status, 101);
        assert.equal(ws.headers['x-yggdrasil-instance'], home);
        const hello = JSON.parse(await ws.next()) as { agentId: string; session: string };
        assert.deepEqual([hello.agentId, hello.session], [home, 'ws-session']);
        await waitFor('the connection to hold a slot', () => p.router.inflight(home) === 1);
        ws.send('ping through the router');
        assert.equal(await ws.next(), 'ping through the router');
      } finally {
        ws.close();
      }
      await waitFor('the slot to be released on close', () => p.router.inflight(home) === 0);
    });
  });
});
