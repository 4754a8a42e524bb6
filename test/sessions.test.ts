// SESSION_MODE=dedicated and WARM_INSTANCES (issue 13), on real instances: the reference agent on
// DRIVER=process, and the same file on containers with TEST_DRIVER=docker (test/docker-sessions.test.ts).
// Two sessions get two instances and neither can reach the other's; a burst of new sessions never
// overshoots MAX_INSTANCES (the rest get 503 YGG_ERR_CAPACITY with Retry-After at once); a new session
// takes a warm instance and the pool refills; an idle session's instance is paused (no CPU at all for a
// second) and its next request resumes it with its state; an idle session ends (410); the admin API
// lists and ends sessions; paused/resuming show in status, events and metrics.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { io } from 'socket.io-client';
import { addKey } from '../src/auth/keys.js';
import type { Platform } from '../src/platform.js';
import { sessionTag } from '../src/sessions/session-tag.js';
import { bootPlatform, killInstance, runKey, waitFor } from './helpers/platform.js';

const authFile = join(mkdtempSync(join(tmpdir(), 'ygg-sessions-')), 'auth.json');

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

async function call(url: string, session?: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, {
    method: 'POST',
    body: '{}',
    ...init,
    headers: {
      'content-type': 'application/json',
      ...(session ? { 'x-session-id': session } : {}),
      ...((init.headers as Record<string, string>) ?? {}),
    },
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: res.status, headers: res.headers, body };
}

/** The live feed's greeting to a key (its events and instances). */
function feedHello(url: string, token: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = io(url, {
      path: '/_yggdrasil/socket.io',
      transports: ['websocket'],
      reconnection: false,
      auth: { token },
    });
    s.once('hello', (hello: unknown) => {
      s.close();
      resolve(hello);
    });
    s.once('connect_error', (err) => {
      s.close();
      reject(err);
    });
  });
}

const codeOf = (a: Answer) => (a.body.error as { code?: string } | undefined)?.code;
const requestsOf = (a: Answer) => (a.body.session as { requests: number }).requests;
const instanceOf = (a: Answer) => a.headers.get('x-yggdrasil-instance') ?? '';

function stateOf(p: Platform, id: string): string | undefined {
  return p.controller.status().instances.find((i) => i.id === id)?.state;
}

/** Live instances (anything but draining and stopped) right now. */
function live(p: Platform): number {
  return p.controller.status().instances.filter((i) => i.state !== 'draining' && i.state !== 'stopped')
    .length;
}

async function cpuSeconds(p: Platform, id: string): Promise<number> {
  const u = await p.driver.usage(id);
  assert.ok(u, `usage of ${id}`);
  return u.cpuSeconds;
}

describe('dedicated sessions: an instance per session, paused when idle', { timeout: 180_000 }, () => {
  let p: Platform;
  let admin: string;
  let reader: string;
  before(async () => {
    admin = await addKey(authFile, 'ops', 'admin');
    reader = await addKey(authFile, 'viewer', 'read');
    p = await bootPlatform({
      SESSION_MODE: 'dedicated',
      MAX_INSTANCES: '8',
      WARM_INSTANCES: '1',
      SESSION_IDLE_PAUSE_MS: '600',
      SESSION_IDLE_DELETE_MS: '0',
      AUTH_FILE: authFile,
    });
    await p.controller.waitForReady(1, 60_000);
  });
  after(async () => {
    await p?.stop();
  });

  it('a new session takes the warm instance, and the warm pool refills', async () => {
    const warm = p.controller.status().instances.find((i) => i.state === 'ready');
    assert.ok(warm, 'a warm instance is ready before any session');
    const a = await call(`${p.lbUrl}/process`, 'warm-1');
    assert.equal(a.status, 200);
    assert.equal(instanceOf(a), warm.id, 'the session got the warm instance');
    const started = p.controller.events.recent(100).find((e) => e.type === 'session_started');
    assert.equal(started?.data?.source, 'warm');
    // The pool refills: one more instance, warm (nobody's), ready.
    await waitFor(
      'the warm pool to refill',
      () => p.controller.status().instances.some((i) => i.state === 'ready' && i.session === null),
      60_000,
    );
  });

  it('two sessions get two instances; each keeps its state; neither can reach the other', async () => {
    const a1 = await call(`${p.lbUrl}/process`, 'alice');
    const b1 = await call(`${p.lbUrl}/process`, 'bob');
    const a2 = await call(`${p.lbUrl}/process`, 'alice');
    const b2 = await call(`${p.lbUrl}/process`, 'bob');
    for (const r of [a1, b1, a2, b2]) assert.equal(r.status, 200, JSON.stringify(r.body));
    const ia = instanceOf(a1);
    const ib = instanceOf(b1);
    assert.notEqual(ia, ib, 'two sessions, two instances');
    assert.equal(instanceOf(a2), ia);
    assert.equal(instanceOf(b2), ib);
    assert.deepEqual([requestsOf(a1), requestsOf(a2), requestsOf(b1), requestsOf(b2)], [1, 2, 1, 2]);
    // /agent/{id}/…: a session reaches its own instance, and no other; nobody else reaches either.
    const own = await call(`${p.lbUrl}/agent/${ia}/process`, 'alice');
    assert.equal(own.status, 200);
    assert.equal(requestsOf(own), 3);
    for (const [session, id] of [
      ['alice', ib],
      ['bob', ia],
      [undefined, ia],
      ['mallory', ib],
    ] as const) {
      const r = await call(`${p.lbUrl}/agent/${id}/health`, session, { method: 'GET', body: null });
      assert.equal(r.status, 404, `${session ?? 'no session'} → ${id}`);
      assert.equal(codeOf(r), 'YGG_ERR_UNKNOWN_INSTANCE');
    }
    const status = p.controller.status();
    assert.equal(status.instances.find((i) => i.id === ia)?.session, sessionTag('alice'));
    assert.equal(status.instances.find((i) => i.id === ib)?.session, sessionTag('bob'));
  });

  it('a read key sees sessions by tag, never by id (the id reaches the instance)', async () => {
    const a = await call(`${p.lbUrl}/process`, 'alice');
    assert.equal(a.status, 200);
    const auth = { authorization: `Bearer ${reader}` };
    const views: Record<string, string> = {
      'controller /status': await (await fetch(`${p.controllerUrl}/status`, { headers: auth })).text(),
      'LB /status': await (await fetch(`${p.lbUrl}/status`, { headers: auth })).text(),
      'live feed hello': JSON.stringify(await feedHello(p.controllerUrl, reader)),
    };
    for (const [where, text] of Object.entries(views)) {
      const m = /alice|bob|warm-1/.exec(text);
      assert.equal(
        m,
        null,
        `${where} names no session id: …${text.slice((m?.index ?? 0) - 200, (m?.index ?? 0) + 50)}`,
      );
    }
    assert.ok(views['controller /status']?.includes(sessionTag('alice')), 'the tag is there instead');
    assert.ok(views['live feed hello']?.includes(sessionTag('alice')), 'events carry the tag');
    // The admin's list pairs each id with its tag.
    const list = (await (
      await fetch(`${p.controllerUrl}/sessions`, { headers: { authorization: `Bearer ${admin}` } })
    ).json()) as { sessions: Array<{ session: string; tag: string }> };
    assert.equal(list.sessions.find((s) => s.session === 'alice')?.tag, sessionTag('alice'));
    assert.notEqual(sessionTag('alice'), sessionTag('bob'));
  });

  it('a request naming no session is refused (400): no instance for an anonymous request', async () => {
    const before = live(p);
    const r = await call(`${p.lbUrl}/process`);
    assert.equal(r.status, 400);
    assert.equal(codeOf(r), 'YGG_ERR_SESSION_REQUIRED');
    assert.equal(live(p), before, 'no instance was claimed');
    // The ygg_session cookie names a session as well as the header does.
    const a = await call(`${p.lbUrl}/process`, undefined, { headers: { cookie: 'ygg_session=cookie-1' } });
    const b = await call(`${p.lbUrl}/process`, undefined, { headers: { cookie: 'ygg_session=cookie-1' } });
    assert.equal(a.status, 200);
    assert.equal(instanceOf(b), instanceOf(a));
    assert.equal(requestsOf(b), 2);
  });

  it("a session's instance is not drained on its own (409), and its crash ends the session (410)", async () => {
    const first = await call(`${p.lbUrl}/process`, 'crasher');
    const id = instanceOf(first);
    const drain = await fetch(`${p.controllerUrl}/instances/${id}/drain`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.equal(drain.status, 409);
    assert.equal(((await drain.json()) as { error: { code: string } }).error.code, 'YGG_ERR_INSTANCE_OWNED');
    await killInstance(p, id);
    const after = await call(`${p.lbUrl}/process`, 'crasher');
    assert.equal(after.status, 410, 'its state is gone: the client is told');
    assert.equal(codeOf(after), 'YGG_ERR_SESSION_ENDED');
  });

  it('an idle session is paused (no CPU for a second) and its next request resumes it with its state', async () => {
    const first = await call(`${p.lbUrl}/process`, 'sleeper');
    const id = instanceOf(first);
    // Paused once the driver says so (the event): the state turns `paused` first, so that nothing is
    // sent to it while `docker pause` is under way.
    const since = Date.now();
    await waitFor(
      `${id} to be paused`,
      () =>
        stateOf(p, id) === 'paused' &&
        p.controller.events
          .recent(200)
          .some((e) => e.type === 'instance_paused' && e.instance === id && e.at >= since - 5000),
      10_000,
    );
    const before = await cpuSeconds(p, id);
    await sleep(1000);
    const after = await cpuSeconds(p, id);
    assert.equal(after, before, `a paused instance uses no CPU (${before} → ${after} s)`);
    // Health checks leave it alone: still paused, not failed.
    assert.equal(stateOf(p, id), 'paused');
    const s = p.controller.status().instances.find((i) => i.id === id);
    if (s?.meta.pid !== undefined) {
      const { readFileSync } = await import('node:fs');
      const st = readFileSync(`/proc/${s.meta.pid}/stat`, 'utf8');
      assert.equal(st.slice(st.lastIndexOf(')') + 2)[0], 'T', 'the agent process is stopped (SIGSTOP)');
    }
    const next = await call(`${p.lbUrl}/process`, 'sleeper');
    assert.equal(next.status, 200);
    assert.equal(instanceOf(next), id, 'the same instance');
    assert.equal(requestsOf(next), 2, 'its state survived the pause');
    assert.equal(stateOf(p, id), 'ready');
    const types = p.controller.events.recent(200).map((e) => `${e.type}:${e.instance}`);
    assert.ok(types.includes(`instance_paused:${id}`));
    assert.ok(types.includes(`instance_resumed:${id}`));
    const metrics = await (
      await fetch(`${p.controllerUrl}/metrics`, { headers: { authorization: `Bearer ${admin}` } })
    ).text();
    assert.match(metrics, /yggdrasil_session_resume_seconds_count [1-9]/);
    assert.match(metrics, /yggdrasil_sessions\{state="ready"\} [1-9]/);
  });

  it('a streaming request holds its session: never paused mid-stream', async () => {
    const res = await fetch(`${p.lbUrl}/stream?n=12&ms=100`, { headers: { 'x-session-id': 'streamer' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const text = await res.text(); // 1.2 s: twice the pause time
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    assert.deepEqual(
      ids,
      Array.from({ length: 12 }, (_, i) => i + 1),
    );
    const paused = p.controller.events
      .recent(200)
      .filter((e) => e.type === 'instance_paused' && e.data?.session === sessionTag('streamer'));
    assert.equal(paused.length, 0, 'not paused while its stream was open');
  });

  it('the admin API lists sessions and ends one (its next request gets 410)', async () => {
    const denied = await fetch(`${p.controllerUrl}/sessions/alice`, { method: 'DELETE' });
    assert.equal(denied.status, 401);
    const list = await fetch(`${p.controllerUrl}/sessions`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    const { sessions } = (await list.json()) as {
      sessions: Array<{ session: string; instance: string; state: string }>;
    };
    const alice = sessions.find((s) => s.session === 'alice');
    assert.ok(alice, 'alice is listed');
    assert.match(alice.state, /^(ready|paused)$/);
    const run = p.controller.status().instances.find((i) => i.id === alice.instance);
    assert.ok(run);
    const ended = await fetch(`${p.controllerUrl}/sessions/alice`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.equal(ended.status, 200);
    const gone = await call(`${p.lbUrl}/process`, 'alice');
    assert.equal(gone.status, 410);
    assert.equal(codeOf(gone), 'YGG_ERR_SESSION_ENDED');
    // Its instance stops (the id may be used again by a new warm instance: another run).
    await waitFor(
      `${alice.instance} to stop`,
      () => !p.controller.status().instances.some((i) => runKey(i) === runKey(run)),
      30_000,
    );
    assert.ok(!p.controller.status().instances.some((i) => i.session === sessionTag('alice')));
    const unknown = await fetch(`${p.controllerUrl}/sessions/nobody`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.equal(unknown.status, 404);
  });
});

describe('dedicated sessions at MAX_INSTANCES', { timeout: 180_000 }, () => {
  let p: Platform;
  let admitted: string[] = [];
  before(async () => {
    p = await bootPlatform({
      SESSION_MODE: 'dedicated',
      MAX_INSTANCES: '3',
      WARM_INSTANCES: '0',
      SESSION_IDLE_PAUSE_MS: '0',
      SESSION_IDLE_DELETE_MS: '3000',
    });
  });
  after(async () => {
    await p?.stop();
  });

  it('a burst of new sessions never overshoots MAX_INSTANCES; the rest get 503 at once', async () => {
    let most = 0;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        most = Math.max(most, live(p));
        await sleep(5);
      }
    })();
    const names = Array.from({ length: 10 }, (_, i) => `burst-${i}`);
    const answers = await Promise.all(names.map((n) => call(`${p.lbUrl}/process`, n)));
    admitted = names.filter((_, i) => answers[i]?.status === 200);
    watching = false;
    await watch;
    const ok = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 503);
    assert.equal(ok.length, 3, 'three sessions got an instance');
    assert.equal(refused.length, 7);
    for (const r of refused) {
      assert.equal(codeOf(r), 'YGG_ERR_CAPACITY');
      assert.ok(Number(r.headers.get('retry-after')) >= 1, 'Retry-After');
    }
    assert.equal(new Set(ok.map(instanceOf)).size, 3, 'three distinct instances');
    assert.ok(most <= 3, `never more than MAX_INSTANCES=3 live (saw ${most})`);
  });

  it('an idle session ends after SESSION_IDLE_DELETE_MS: 410, and its instance is free again', async () => {
    const ended = await waitFor(
      'the burst sessions to end',
      () => p.controller.events.recent(200).filter((e) => e.type === 'session_ended').length >= 3,
      20_000,
    );
    assert.ok(ended);
    const again = await call(`${p.lbUrl}/process`, admitted[0]);
    assert.equal(again.status, 410);
    assert.equal(codeOf(again), 'YGG_ERR_SESSION_ENDED');
    await waitFor('the ended sessions to stop their instances', () => live(p) === 0, 30_000);
    const fresh = await call(`${p.lbUrl}/process`, 'newcomer');
    assert.equal(fresh.status, 200, 'a new session gets an instance again');
  });
});

describe('WARM_INSTANCES in shared mode: headroom beyond the desired count', { timeout: 120_000 }, () => {
  let p: Platform;
  before(async () => {
    p = await bootPlatform({ MIN_INSTANCES: '1', MAX_INSTANCES: '3', WARM_INSTANCES: '1' });
  });
  after(async () => {
    await p?.stop();
  });

  it('keeps MIN_INSTANCES + WARM_INSTANCES ready while idle, and serves a burst across them', async () => {
    await p.controller.waitForReady(2, 60_000);
    assert.equal(p.controller.desiredInstances, 2);
    await sleep(1500); // idle: the autoscaler keeps its desired count at MIN, the warm one stays
    assert.equal(p.controller.readyCount(), 2);
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => call(`${p.lbUrl}/process`, undefined, { body: '{"workMs":200}' })),
    );
    assert.ok(answers.every((a) => a.status === 200));
    assert.equal(new Set(answers.map(instanceOf)).size, 2, 'the burst used the warm instance at once');
  });
});
