// DATAPLANE=haproxy (issue 14), on Debian's haproxy and real agent processes: HAProxy takes LB_PORT
// and the controller programs it through the Runtime API. Requests are balanced over the ready
// instances and carry X-Yggdrasil-Instance; sessions stick (header and cookie); past MAX_CONCURRENCY
// requests queue and, after QUEUE_TIMEOUT_MS, get the same 503 JSON and Retry-After as the Node router;
// the platform's routes and runs are the Node router's behind it; with no instance ready (scale from
// zero) the Node router holds the request as the activator; a drained instance takes no new request
// while its in-flight one finishes; WebSockets pass; the HAProxy process ends with the platform.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { request } from 'undici';
import { errorFiles, parseShowStat, renderHaproxyConfig } from '../src/dataplane/haproxy-config.js';
import { HaproxyRuntime } from '../src/dataplane/haproxy-runtime.js';
import type { Platform } from '../src/platform.js';
import { haproxyInput } from './fixtures/haproxy-input.js';
import { bootPlatform, isAlive, waitFor } from './helpers/platform.js';
import { requireService } from './helpers/services.js';
import { connectWs } from './helpers/ws.js';

const skip = requireService('haproxy');

async function post(p: Platform, body: object, headers: Record<string, string> = {}) {
  const res = await request(`${p.lbUrl}/process`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.body.text();
  return {
    status: res.statusCode,
    headers: res.headers,
    instance: String(res.headers['x-yggdrasil-instance'] ?? ''),
    body: JSON.parse(text) as Record<string, unknown>,
  };
}

async function dataplaneOf(
  p: Platform,
): Promise<{ kind: string; pid?: number; servers?: number; resyncs?: number }> {
  const s = (await (await request(`${p.controllerUrl}/status`)).body.json()) as {
    dataplane: { kind: string; pid?: number; servers?: number; resyncs?: number };
  };
  return s.dataplane;
}

describe('DATAPLANE=haproxy', { skip, timeout: 120_000 }, () => {
  let p: Platform;
  before(async () => {
    p = await bootPlatform({
      DATAPLANE: 'haproxy',
      MIN_INSTANCES: '2',
      MAX_INSTANCES: '2',
      MAX_CONCURRENCY: '2',
      QUEUE_TIMEOUT_MS: '500',
    });
    await p.controller.waitForReady(2, 30_000);
    await waitFor('haproxy to have both servers', async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 8; i++) seen.add((await post(p, {})).instance);
      return seen.size === 2;
    });
  });
  after(async () => {
    await p?.stop();
  });

  it('balances over the ready instances; the platform routes answer through it', async () => {
    const answers = await Promise.all(Array.from({ length: 4 }, () => post(p, { workMs: 100 })));
    assert.ok(answers.every((a) => a.status === 200));
    assert.deepEqual(new Set(answers.map((a) => a.instance)), new Set(['agent-1', 'agent-2']));
    const health = await request(`${p.lbUrl}/health`);
    assert.equal(health.statusCode, 200);
    assert.equal(((await health.body.json()) as { readyInstances: number }).readyInstances, 2);
    const status = (await (await request(`${p.lbUrl}/status`)).body.json()) as Record<string, unknown>;
    assert.equal(status.readyInstances, 2);
  });

  it('keeps a session on its instance, by X-Session-Id and by the ygg_session cookie', async () => {
    const ways: Array<Record<string, string>> = [
      { 'x-session-id': 'hap-1' },
      { cookie: 'ygg_session=hap-2' },
    ];
    for (const headers of ways) {
      const first = await post(p, {}, headers);
      for (let i = 0; i < 6; i++) assert.equal((await post(p, {}, headers)).instance, first.instance);
    }
  });

  it('queues past MAX_CONCURRENCY and answers 503 YGG_ERR_CAPACITY with Retry-After after QUEUE_TIMEOUT_MS', async () => {
    const answers = await Promise.all(Array.from({ length: 8 }, () => post(p, { workMs: 1500 })));
    const ok = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 503);
    assert.equal(ok.length, 4, 'two per instance (MAX_CONCURRENCY=2)');
    assert.equal(refused.length, 4);
    for (const r of refused) {
      assert.equal((r.body.error as { code: string }).code, 'YGG_ERR_CAPACITY');
      assert.equal(r.headers['retry-after'], '1');
    }
  });

  it('sets X-Forwarded-For over what the client sent, and carries a WebSocket', async () => {
    const r = await request(`${p.lbUrl}/api/echo`, { headers: { 'x-forwarded-for': '6.6.6.6' } });
    const echoed = (await r.body.json()) as { headers: Record<string, string> };
    assert.equal(echoed.headers['x-forwarded-for'], '127.0.0.1');
    const ws = await connectWs(`${p.lbUrl}/ws`, { 'x-session-id': 'hap-ws' });
    try {
      assert.equal(ws.status, 101);
      await ws.next(); // the agent's greeting
      ws.send('through haproxy');
      assert.equal(await ws.next(), 'through haproxy');
    } finally {
      ws.close();
    }
  });

  it('a drained instance takes no new request; its in-flight one finishes', async () => {
    const home = (await post(p, {}, { 'x-session-id': 'hap-drain' })).instance;
    const slow = post(p, { workMs: 1500 }, { 'x-session-id': 'hap-drain' });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(p.controller.drainInstance(home, false, 'test'), 'accepted');
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 4; i++) assert.notEqual((await post(p, {})).instance, home);
    assert.equal((await slow).status, 200, 'the in-flight request finished');
  });

  it("HAProxy's Prometheus exporter is a scrape target of /sd/agents, on loopback", async () => {
    const targets = (await (await request(`${p.controllerUrl}/sd/agents`)).body.json()) as Array<{
      targets: string[];
      labels: Record<string, string>;
    }>;
    const hap = targets.find((t) => t.labels.driver === 'haproxy');
    assert.ok(hap, 'haproxy is a target');
    assert.match(hap.targets[0]!, /^127\.0\.0\.1:\d+$/);
    const text = await (await request(`http://${hap.targets[0]}/metrics`)).body.text();
    assert.match(text, /haproxy_server_current_sessions\{proxy="agents",server="agent-1"\}/);
  });

  it('HAProxy out of line with the pool (a server in maintenance by hand, a free slot set ready) is programmed again', async () => {
    const { pid } = await dataplaneOf(p);
    const cfg = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .find((a) => a.endsWith('haproxy.cfg'))!;
    const admin = new HaproxyRuntime(join(dirname(cfg), 'admin.sock'));
    const serving = async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 10; i++) seen.add((await post(p, {})).instance);
      return seen;
    };
    const [victim] = [...(await serving())];
    const before = (await dataplaneOf(p)).resyncs ?? 0;
    assert.equal((await admin.command(`set server agents/${victim} state maint`)).trim(), '');
    // Counted first: a request could reach the victim through the Node router (the activator, should
    // HAProxy see no server up for a moment on a loaded machine) without HAProxy being fixed.
    await waitFor(
      'the lost server to be programmed again',
      async () => ((await dataplaneOf(p)).resyncs ?? 0) > before && (await serving()).has(victim!),
      10_000,
      100,
    );
    const afterLost = (await dataplaneOf(p)).resyncs ?? 0;
    const free = 'agent-6'; // slots: 2 × MAX_INSTANCES + 2, and this pool never gets that far
    await admin.command(`set server agents/${free} addr 127.0.0.1 port 9`);
    assert.equal((await admin.command(`set server agents/${free} state ready`)).trim(), '');
    await waitFor(
      'the stray slot to be back in maintenance',
      async () => {
        const row = parseShowStat(await admin.command('show stat')).find(
          (r) => r.backend === 'agents' && r.server === free,
        );
        return row?.status.startsWith('MAINT');
      },
      10_000,
      100,
    );
    assert.ok(((await dataplaneOf(p)).resyncs ?? 0) > afterLost, 'the stray one was counted in /status too');
    for (let i = 0; i < 10; i++)
      assert.equal((await post(p, {})).status, 200, 'nothing went to the stray slot');
  });

  it('a HAProxy that dies (SIGKILL) is started again and given the pool: requests are served again', async () => {
    const { pid } = await dataplaneOf(p);
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    const again = await waitFor(
      'a new haproxy with the pool',
      async () => {
        const d = await dataplaneOf(p).catch(() => undefined);
        if (!d?.pid || d.pid === pid || !d.servers) return undefined;
        const r = await post(p, {}).catch(() => undefined);
        return r?.status === 200 ? r : undefined;
      },
      15_000,
      100,
    );
    assert.match(again.instance, /^agent-\d+$/);
  });

  it('stopping the platform ends haproxy', async () => {
    const { kind, pid } = await dataplaneOf(p);
    assert.equal(kind, 'haproxy');
    assert.ok(pid && isAlive(pid), 'haproxy runs');
    await p.stop();
    await waitFor('haproxy to end', () => !isAlive(pid), 10_000);
  });
});

describe('the HAProxy configuration', { skip }, () => {
  it('is valid for this haproxy (haproxy -c), with and without BREAKER_COUNT_5XX, COMPRESSION, RESPONSE_CACHE_BYTES, TRUSTED_PROXIES and SESSION_AFFINITY', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ygg-hapcfg-'));
    try {
      for (const count5xx of [false, true]) {
        for (const f of errorFiles()) writeFileSync(join(dir, f.name), f.content);
        const cfg = renderHaproxyConfig(
          haproxyInput({
            bind: { host: '127.0.0.1', port: 1 },
            socketPath: join(dir, 'admin.sock'),
            errorDir: dir,
            compress: count5xx,
            cacheBytes: count5xx ? 5 * 1024 * 1024 + 1 : 0,
            trustedProxies: count5xx ? ['127.0.0.1', '10.0.0.0/8', '::1'] : [],
            sessionAffinity: !count5xx,
            slots: 22,
            server: { maxConcurrency: 80, queueMax: 1000, healthIntervalMs: 30_000, failures: 5, count5xx },
          }),
        );
        writeFileSync(join(dir, 'haproxy.cfg'), cfg);
        const r = spawnSync('haproxy', ['-c', '-f', join(dir, 'haproxy.cfg')], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('DATAPLANE=haproxy with TRUSTED_PROXIES and SESSION_AFFINITY=false', {
  skip,
  timeout: 120_000,
}, () => {
  let p: Platform;
  before(async () => {
    p = await bootPlatform({
      DATAPLANE: 'haproxy',
      TRUSTED_PROXIES: '127.0.0.1',
      SESSION_AFFINITY: 'false',
      MIN_INSTANCES: '2',
      MAX_INSTANCES: '2',
    });
    await p.controller.waitForReady(2, 30_000);
  });
  after(() => p?.stop());

  it("a trusted proxy's X-Forwarded-* are kept (For extended); a session is not pinned", async () => {
    const r = await request(`${p.lbUrl}/api/echo`, {
      headers: {
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'agents.example',
      },
    });
    const echoed = (await r.body.json()) as { headers: Record<string, string> };
    assert.equal(echoed.headers['x-forwarded-for'], '6.6.6.6, 127.0.0.1');
    assert.equal(echoed.headers['x-forwarded-proto'], 'https');
    assert.equal(echoed.headers['x-forwarded-host'], 'agents.example');
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) seen.add((await post(p, {}, { 'x-session-id': 'not-pinned' })).instance);
    assert.equal(seen.size, 2, 'one session over both instances');
  });
});

describe('DATAPLANE=haproxy from zero', { skip, timeout: 120_000 }, () => {
  it('with no instance ready the Node router holds the request while one starts (the activator)', async () => {
    const p = await bootPlatform({ DATAPLANE: 'haproxy', MIN_INSTANCES: '0', MAX_INSTANCES: '1' });
    try {
      assert.equal(p.controller.readyCount(), 0);
      const r = await post(p, {});
      assert.equal(r.status, 200);
      assert.equal(r.instance, 'agent-1');
      // Once ready, HAProxy serves it itself (the activator is out of the path).
      await waitFor('haproxy to have the server', async () => (await dataplaneOf(p)).servers === 1);
      assert.equal((await post(p, {})).status, 200);
    } finally {
      await p.stop();
    }
  });
});

describe('DATAPLANE=haproxy failing over to the Node router', { skip, timeout: 120_000 }, () => {
  it('HAProxy down and unable to start: the Node router serves its port from the same agents, until HAProxy is back', async () => {
    // HAPROXY_BIN is a wrapper that counts its starts and refuses to start while a flag file exists.
    const dir = mkdtempSync(join(tmpdir(), 'ygg-hapfail-'));
    const flag = join(dir, 'broken');
    const starts = join(dir, 'starts');
    const bin = join(dir, 'haproxy');
    const startCount = () => readFileSync(starts, 'utf8').split('\n').filter(Boolean).length;
    writeFileSync(
      bin,
      `#!/bin/sh\necho start >> '${starts}'\n[ -e '${flag}' ] && { echo 'broken on purpose' >&2; exit 1; }\nexec haproxy "$@"\n`,
      {
        mode: 0o755,
      },
    );
    const p = await bootPlatform({
      DATAPLANE: 'haproxy',
      HAPROXY_BIN: bin,
      MIN_INSTANCES: '2',
      MAX_INSTANCES: '2',
    });
    try {
      await p.controller.waitForReady(2, 30_000);
      const agents = () =>
        p.controller
          .status()
          .instances.map((i) => `${i.id}:${(i.meta as { pid?: number }).pid}`)
          .sort();
      const before = agents();
      const first = await dataplaneOf(p);
      const inflight = () =>
        p.controller
          .status()
          .instances.map((i) => i.inflight)
          .reduce((a, b) => a + b, 0);
      // A request in flight through HAProxy when it dies: its count must not outlive HAProxy.
      const slow = post(p, { workMs: 4000 }).catch(() => undefined);
      await waitFor('HAProxy to report the slow request in flight', () => inflight() >= 1, 5000, 50);
      writeFileSync(flag, '');
      const startsBefore = startCount();
      process.kill(first.pid!, 'SIGKILL');
      const killedAt = Date.now();
      await waitFor(
        'the Node router to serve the port',
        async () => {
          const d = (await (await request(`${p.controllerUrl}/status`)).body.json()) as {
            dataplane: { serving: string };
          };
          return d.dataplane.serving === 'node';
        },
        10_000,
        50,
      );
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const r = await post(p, { input: i });
        assert.equal(r.status, 200, 'served while HAProxy is down');
        seen.add(r.instance);
      }
      assert.equal(seen.size, 2, 'by both instances');
      await slow;
      assert.equal(inflight(), 0, 'nothing in flight is left from the dead HAProxy');
      // HAProxy keeps failing to start: the port stays served, and the starts back off (200 ms after
      // the kill, then doubling: 4 by 3.3 s; without a backoff they would be dozens).
      await new Promise((r) => setTimeout(r, Math.max(0, killedAt + 3300 - Date.now())));
      assert.equal((await post(p, {})).status, 200);
      const failedStarts = startCount() - startsBefore;
      assert.ok(failedStarts >= 3 && failedStarts <= 5, `${failedStarts} starts of HAProxy in 3.3 s`);
      rmSync(flag);
      const back = await waitFor(
        'HAProxy to be back on its port with the pool',
        async () => {
          const s = (await (await request(`${p.controllerUrl}/status`)).body.json()) as {
            dataplane: { serving: string; pid: number; servers: number };
          };
          return s.dataplane.serving === 'haproxy' &&
            s.dataplane.servers === 2 &&
            s.dataplane.pid !== first.pid
            ? s.dataplane
            : undefined;
        },
        20_000,
        100,
      );
      assert.ok(isAlive(back.pid));
      await waitFor(
        'requests through HAProxy again',
        async () => (await post(p, {}).catch(() => undefined))?.status === 200,
        5000,
        50,
      );
      assert.deepEqual(agents(), before, 'no agent was restarted');
    } finally {
      await p.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('DATAPLANE=haproxy with COMPRESSION=on and RESPONSE_CACHE_BYTES', { skip, timeout: 120_000 }, () => {
  let p: Platform;
  before(async () => {
    p = await bootPlatform({
      DATAPLANE: 'haproxy',
      COMPRESSION: 'on',
      RESPONSE_CACHE_BYTES: '4M',
      MIN_INSTANCES: '1',
      MAX_INSTANCES: '1',
    });
    await p.controller.waitForReady(1, 30_000);
  });
  after(() => p?.stop());
  const get = async (path: string, accept: string, headers: Record<string, string> = {}) => {
    const res = await request(`${p.lbUrl}${path}`, { headers: { 'accept-encoding': accept, ...headers } });
    return { headers: res.headers, raw: Buffer.from(await res.body.arrayBuffer()) };
  };

  it('HAProxy gzips a compressible answer for a client that takes gzip; never SSE, never for brotli alone', async () => {
    {
      const gz = await get('/document?bytes=20000', 'gzip, br');
      assert.equal(gz.headers['content-encoding'], 'gzip');
      assert.match(
        String(gz.headers['x-yggdrasil-instance']),
        /^agent-\d+$/,
        'HAProxy served it, not the activator',
      );
      const doc = JSON.parse(gunzipSync(gz.raw).toString()) as { text: string };
      assert.ok(doc.text.length > 19_000 && gz.raw.length * 2 < 20_000, `${gz.raw.length} bytes on the wire`);
      assert.equal((await get('/document?bytes=20000', 'br')).headers['content-encoding'], undefined);
      const sse = await get('/stream?n=3&ms=0', 'gzip');
      assert.equal(sse.headers['content-encoding'], undefined);
      assert.equal(sse.raw.toString().match(/^event: step$/gm)?.length, 3);
    }
  });

  it('HAProxy answers a public, max-age GET from its cache; never for a session or Authorization; no Cache-Control or an unmanaged Vary is not stored', async () => {
    type Doc = { served: number };
    const served = async (path: string, headers: Record<string, string> = {}, accept = 'identity') => {
      const r = await get(path, accept, headers);
      const raw = r.headers['content-encoding'] === 'gzip' ? gunzipSync(r.raw) : r.raw;
      return {
        served: (JSON.parse(raw.toString()) as Doc).served,
        cache: r.headers['x-yggdrasil-cache'],
        instance: r.headers['x-yggdrasil-instance'],
        coding: r.headers['content-encoding'],
      };
    };
    const url = '/document?bytes=3000&maxAge=60';
    const first = await served(url);
    assert.equal(first.cache, 'miss');
    assert.match(String(first.instance), /^agent-\d+$/);
    const second = await served(url);
    assert.deepEqual(second, { served: first.served, cache: 'hit', instance: undefined, coding: undefined });
    const gz = await served(url, {}, 'gzip');
    assert.deepEqual(
      [gz.served, gz.cache, gz.coding],
      [first.served, 'hit', 'gzip'],
      'a hit, gzipped on the way',
    );
    for (const headers of [
      { 'x-session-id': 'hap-cache-1' } as Record<string, string>,
      { cookie: 'ygg_session=hap-cache-2' },
      { authorization: 'Bearer someone' },
    ]) {
      const r = await served(url, headers);
      assert.ok(
        r.served > first.served && r.cache === undefined,
        `${JSON.stringify(headers)}: ${JSON.stringify(r)}`,
      );
    }
    for (const path of ['/document?bytes=2000', '/document?bytes=2000&maxAge=60&vary=Accept-Language']) {
      const [a, b] = [await served(path), await served(path)];
      assert.ok(b.served > a.served && b.cache === 'miss', `${path}: ${JSON.stringify([a, b])}`);
    }
  });
});
