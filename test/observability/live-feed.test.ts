// The live feed (docs/live-feed.md) as a client sees it, on both ports: hello, stats every second,
// lifecycle, scaling and breaker events as they happen, a clean stop; and `yggdrasil events [--follow]`.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import {
  LIVE_FEED_PATH,
  type LiveEvent,
  type LiveHello,
  type LiveStats,
} from '../../src/observability/protocol.js';
import type { Platform } from '../../src/platform.js';
import { bootPlatform, waitFor } from '../helpers/platform.js';
import { run } from '../helpers/spawn.js';
import { ROOT } from './prom-server.js';

interface Client {
  socket: Socket;
  hello: Promise<LiveHello>;
  events: LiveEvent[];
  stats: LiveStats[];
}

function connect(url: string): Client {
  const socket = io(url, { path: LIVE_FEED_PATH, transports: ['websocket'], reconnection: false });
  const c: Client = {
    socket,
    hello: new Promise((resolve) => socket.once('hello', resolve)),
    events: [],
    stats: [],
  };
  socket.on('event', (e: LiveEvent) => c.events.push(e));
  socket.on('stats', (s: LiveStats) => c.stats.push(s));
  return c;
}

const cli = (args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'events', ...args], {}, { cwd: ROOT });

const post = async (url: string, body: unknown) => {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
};

describe('live feed', () => {
  let p: Platform;
  const clients: Client[] = [];
  const open = (url: string) => {
    const c = connect(url);
    clients.push(c);
    return c;
  };

  before(async () => {
    p = await bootPlatform({
      MIN_INSTANCES: '1',
      MAX_INSTANCES: '3',
      // The autoscaler must not undo the tests' own scale-ups.
      SCALE_INTERVAL_MS: '60000',
      BREAKER_FAILURES: '2',
      BREAKER_RESET_MS: '1500',
      BREAKER_COUNT_5XX: 'true',
    });
    await p.controller.waitForReady(1, 15_000);
  });

  after(async () => {
    for (const c of clients) c.socket.close();
    await p?.stop();
  });

  it('greets a client with the pool, the chart history and the recent events', async () => {
    const h = await open(p.controllerUrl).hello;
    assert.equal(h.version, 2);
    assert.equal(h.driver, 'process');
    assert.equal(h.intervalMs, 1000);
    assert.equal(h.windowMs, 5000);
    assert.deepEqual(
      h.stats.instances.map((i) => [i.id, i.state, i.breaker]),
      [['agent-1', 'ready', 'closed']],
    );
    assert.equal(h.stats.readyInstances, 1);
    assert.equal(h.stats.maxInstances, 3);
    assert.ok(h.events.some((e) => e.type === 'instance_ready' && e.instance === 'agent-1'));
    assert.ok(Array.isArray(h.history));
  });

  it('pushes stats every second that count the traffic, on the LB port too', async () => {
    const c = open(p.lbUrl);
    await c.hello;
    for (let i = 0; i < 20; i++) assert.equal(await post(`${p.lbUrl}/process`, { workMs: 20 }), 200);
    await waitFor('stats with traffic', () => c.stats.some((s) => s.requestsPerSecond > 0), 5000);
    await waitFor('three stats', () => c.stats.length >= 3, 5000);
    const busy = c.stats.find((s) => s.requestsPerSecond > 0)!;
    assert.ok(busy.p95LatencyMs !== null && busy.p95LatencyMs >= 20, `p95 ${busy.p95LatencyMs} ms`);
    assert.equal(busy.errorRatio, 0);
    assert.equal(busy.queueDepth, 0);
    const gaps = c.stats.slice(1).map((s, i) => s.at - c.stats[i]!.at);
    for (const g of gaps) assert.ok(g >= 900 && g <= 1500, `stats ${g} ms apart`);
    const agent = busy.instances[0]!;
    assert.deepEqual(Object.keys(agent).sort(), [
      'breaker',
      'cpu',
      'crashLoop',
      'id',
      'inflight',
      'lastFailure',
      'memoryBytes',
      'readyAt',
      'restarts',
      'sessions',
      'state',
    ]);
  });

  it('pushes a scale-up as it happens: scaled, then the new instance starting and ready', async () => {
    const c = open(p.controllerUrl);
    await c.hello;
    p.controller.setDesired(2, 'test');
    await waitFor('agent-2 ready event', () => c.events.some((e) => e.type === 'instance_ready'), 10_000);
    const seq = c.events.map((e) => `${e.type} ${e.instance ?? ''}`.trim());
    assert.deepEqual(seq.slice(0, 3), ['scaled', 'instance_starting agent-2', 'instance_ready agent-2']);
    assert.deepEqual(c.events[0]!.data, { from: 1, to: 2, reason: 'test' });
    await waitFor('stats showing agent-2', () => c.stats.some((s) => s.instances.length === 2), 3000);
  });

  it('pushes circuit breaker changes', async () => {
    const c = open(p.controllerUrl);
    await c.hello;
    for (let i = 0; i < 2; i++)
      assert.equal(await post(`${p.lbUrl}/agent/agent-1/process`, { fail: true }), 500);
    const opened = await waitFor(
      'the breaker to open',
      () => c.events.find((e) => e.type === 'breaker' && e.data?.to === 'open'),
      3000,
    );
    assert.equal(opened.instance, 'agent-1');
    assert.equal(opened.data?.from, 'closed');
    await waitFor(
      'an open breaker in stats',
      () => c.stats.some((s) => s.instances[0]?.breaker === 'open'),
      3000,
    );
    // After BREAKER_RESET_MS one probe decides: a success closes it again.
    // (Balanced requests take the probe; /agent/{id}/… requests bypass the breaker.)
    await waitFor('half-open', () => p.router.breakerStates()['agent-1']?.state === 'half-open', 3000);
    for (let i = 0; i < 40 && p.router.breakerStates()['agent-1']?.state !== 'closed'; i++)
      assert.equal(await post(`${p.lbUrl}/process`, {}), 200);
    await waitFor(
      'the breaker to close',
      () => c.events.find((e) => e.type === 'breaker' && e.data?.to === 'closed'),
      3000,
    );
  });

  it('refuses a page of another site (cross-site WebSocket hijacking)', async () => {
    const socket = io(p.lbUrl, {
      path: LIVE_FEED_PATH,
      transports: ['websocket'],
      reconnection: false,
      extraHeaders: { origin: 'https://evil.example' },
    });
    try {
      const outcome = await new Promise<string>((resolve) => {
        socket.once('hello', () => resolve('connected'));
        socket.once('connect_error', (err) => resolve(`refused: ${err.message}`));
      });
      assert.match(outcome, /^refused/);
    } finally {
      socket.close();
    }
  });

  it('`yggdrasil events` prints the recent events as lines and exits 0', async () => {
    const proc = cli(['--url', p.controllerUrl]);
    const { code } = await proc.exited;
    assert.equal(code, 0, proc.stderr());
    const lines = proc.stdout().trim().split('\n');
    assert.ok(lines.length >= 4, proc.stdout());
    for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\dT[\d:.]+Z {2}\w+ +\S+ +\S/);
    assert.ok(
      lines.some((l) => /scaled +- +desired 1 → 2 \(test\)$/.test(l)),
      proc.stdout(),
    );
    assert.ok(
      lines.some((l) => /instance_ready +agent-2 +agent-2 is ready/.test(l)),
      proc.stdout(),
    );
    const json = cli(['--url', p.controllerUrl, '--json']);
    assert.equal((await json.exited).code, 0);
    const first = JSON.parse(json.stdout().split('\n')[0]!) as { kind: string; type: string; at: number };
    assert.equal(first.kind, 'event');
    assert.ok(first.type && first.at > 0);
  });

  it('`yggdrasil events --follow` keeps printing new events until Ctrl-C', async () => {
    const proc = cli(['--follow', '--url', p.controllerUrl]);
    try {
      await waitFor('the recent events', () => /desired 1 → 2 \(test\)/.test(proc.stdout()), 20_000, 50);
      const asked = Date.now();
      p.controller.setDesired(3, 'cli-test');
      await waitFor('the scale-up lines', () => /instance_ready +agent-3/.test(proc.stdout()), 10_000, 20);
      console.log(`# events --follow: agent-3 ready printed ${Date.now() - asked} ms after setDesired`);
      assert.match(proc.stdout(), /scaled +- +desired 2 → 3 \(cli-test\)\n/);
      assert.match(proc.stdout(), /instance_starting +agent-3 +starting agent-3\n/);
      // Each event once, though the recent ones came with the greeting.
      const scaled = proc.stdout().match(/desired 1 → 2 \(test\)/g) ?? [];
      assert.equal(scaled.length, 1);
    } finally {
      proc.child.kill('SIGINT');
    }
    const { code, signal } = await proc.exited;
    assert.deepEqual({ code, signal }, { code: 0, signal: null });
  });

  it('`yggdrasil events` says in one line that no controller answers, and exits 1', async () => {
    const proc = cli(['--url', 'http://127.0.0.1:1']);
    const { code } = await proc.exited;
    assert.equal(code, 1);
    const lines = proc.stderr().trim().split('\n');
    assert.equal(lines.length, 1, proc.stderr());
    assert.match(lines[0]!, /^yggdrasil: cannot reach the controller at http:\/\/127\.0\.0\.1:1 .*npm start/);
  });

  it('stops promptly with clients connected, which see the drain first', async () => {
    const c = open(p.controllerUrl);
    await c.hello;
    const disconnected = new Promise<string>((r) => c.socket.once('disconnect', r));
    const started = Date.now();
    await p.stop();
    const took = Date.now() - started;
    assert.ok(took < 8000, `stop took ${took} ms`);
    // The connection is closed under it: a client reconnects on its own when the platform is back.
    assert.equal(await disconnected, 'transport close');
    const stopped = c.events.filter((e) => e.type === 'instance_stopped').map((e) => e.instance);
    assert.deepEqual(stopped.sort(), ['agent-1', 'agent-2', 'agent-3']);
  });
});
