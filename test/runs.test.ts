// Runs that outlive the connection (issue 13), on real processes: a request with
// `Prefer: respond-async` is answered 202 with Location at once; the run goes on after its client
// has gone; a new client reads its SSE answer from /runs/{id}/stream and resumes after Last-Event-ID
// with no gap and no duplicate; GET /runs/{id} gives state and answer; DELETE cancels and the agent
// sees its request aborted; unknown ids are 404 in the error format.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { addKey } from '../src/auth/keys.js';
import type { Platform } from '../src/platform.js';
import { bootPlatform, waitFor } from './helpers/platform.js';

const SSE_AGENT = new URL('./fixtures/sse-agent.mjs', import.meta.url).pathname;

/** Reads an SSE response until `stopAfter` events (then drops the connection) or its end. */
async function readEvents(url: string, headers: Record<string, string> = {}, stopAfter = Infinity) {
  const ac = new AbortController();
  const res = await request(url, { headers, signal: ac.signal });
  const events: Array<{ id: number; event?: string; data: string }> = [];
  let buf = '';
  try {
    for await (const chunk of res.body) {
      buf += chunk.toString();
      let at = buf.indexOf('\n\n');
      while (at !== -1) {
        const block = buf.slice(0, at);
        buf = buf.slice(at + 2);
        const f: Record<string, string> = {};
        for (const line of block.split('\n')) {
          const i = line.indexOf(':');
          f[line.slice(0, i)] = line.slice(i + 1).trim();
        }
        events.push({ id: Number(f.id ?? 0), ...(f.event ? { event: f.event } : {}), data: f.data ?? '' });
        if (events.length >= stopAfter) {
          ac.abort();
          return { status: res.statusCode, events };
        }
        at = buf.indexOf('\n\n');
      }
    }
  } catch (err) {
    if (!ac.signal.aborted) throw err;
  }
  return { status: res.statusCode, events };
}

describe('runs that outlive the connection (Prefer: respond-async)', { timeout: 120_000 }, () => {
  let p: Platform;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ygg-runs-'));
    p = await bootPlatform({
      MIN_INSTANCES: '1',
      MAX_INSTANCES: '1',
      AGENT_COMMAND: `env ABORT_LOG=${join(dir, 'aborts')} ${process.execPath} ${SSE_AGENT}`,
      REQUEST_TIMEOUT_MS: '1000', // shorter than the runs below: they are bounded by RUN_TIMEOUT_MS
    });
    await p.controller.waitForReady(1, 20_000);
  });
  after(async () => {
    await p?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (path: string) => {
    const res = await request(`${p.lbUrl}${path}`, {
      method: 'POST',
      headers: { prefer: 'respond-async', 'content-type': 'application/json' },
      body: '{"task":"x"}',
    });
    const body = (await res.body.json()) as { run: { id: string; state: string } };
    return {
      status: res.statusCode,
      location: String(res.headers.location),
      applied: res.headers['preference-applied'],
      body,
    };
  };

  const runOf = async (location: string) =>
    (
      (await (await request(`${p.lbUrl}${location}`)).body.json()) as {
        run: { state: string; answer?: { events?: number } };
      }
    ).run;
  const stateOf = async (location: string) => (await runOf(location)).state;
  const eventsOf = async (location: string) => (await runOf(location)).answer?.events ?? 0;

  it('answers 202 with Location at once; the run streams on after its client left; a new client resumes without gap or duplicate', async () => {
    const r = await start('/stream?n=30&ms=60'); // ~1.8 s, longer than REQUEST_TIMEOUT_MS
    assert.equal(r.status, 202);
    assert.notEqual(await stateOf(r.location), 'done', 'answered before the run ended');
    assert.equal(r.applied, 'respond-async');
    assert.match(r.location, /^\/runs\/[0-9a-f-]{36}$/);
    assert.equal(r.body.run.state, 'queued');
    // The first reader takes 8 events and drops its connection.
    const first = await readEvents(`${p.lbUrl}${r.location}/stream`, {}, 8);
    assert.equal(first.status, 200);
    assert.deepEqual(
      first.events.map((e) => e.id),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    // The run goes on with nobody reading it.
    await waitFor(
      'events recorded with no client',
      async () => (await eventsOf(r.location)) >= 12,
      10_000,
      20,
    );
    // A new client resumes after the last id it saw: 9 … 30, then the run's end.
    const rest = await readEvents(`${p.lbUrl}${r.location}/stream`, { 'last-event-id': '8' });
    const steps = rest.events.filter((e) => e.event === 'step');
    assert.deepEqual(
      steps.map((e) => e.id),
      Array.from({ length: 22 }, (_, i) => i + 9),
    );
    assert.deepEqual(
      steps.map((e) => JSON.parse(e.data).i),
      Array.from({ length: 22 }, (_, i) => i + 9),
      'the agent’s events, in order, its own ids replaced',
    );
    assert.deepEqual(rest.events.at(-1), { id: 0, event: 'run-end', data: '{"state":"done"}' });
    const state = (await (await request(`${p.lbUrl}${r.location}`)).body.json()) as {
      run: { state: string; answer: { status: number; events: number } };
    };
    assert.equal(state.run.state, 'done');
    assert.deepEqual([state.run.answer.status, state.run.answer.events], [200, 30]);
  });

  it('a JSON answer is in GET /runs/{id}; the agent got the request without the Prefer header', async () => {
    const r = await start('/json?ms=200');
    const run = await waitFor(
      'the run done',
      async () => {
        const s = (await (await request(`${p.lbUrl}${r.location}`)).body.json()) as {
          run: { state: string; answer?: { status: number; body: string } };
        };
        return s.run.state === 'done' ? s.run : undefined;
      },
      10_000,
      50,
    );
    assert.equal(run.answer?.status, 200);
    assert.deepEqual(JSON.parse(run.answer!.body), { ok: true, prefer: null });
    const stream = await request(`${p.lbUrl}${r.location}/stream`);
    assert.equal(stream.statusCode, 409);
    assert.equal(
      ((await stream.body.json()) as { error: { code: string } }).error.code,
      'YGG_ERR_RUN_NOT_A_STREAM',
    );
  });

  it('DELETE cancels: the run is cancelled and the agent sees its request aborted', async () => {
    const r = await start('/stream?n=1000&ms=20');
    await waitFor('the run streaming', async () => (await eventsOf(r.location)) >= 3, 10_000, 20);
    const del = await request(`${p.lbUrl}${r.location}`, { method: 'DELETE' });
    const body = (await del.body.json()) as { run: { state: string; error: { code: string } } };
    assert.equal(del.statusCode, 200);
    assert.equal(body.run.state, 'cancelled');
    assert.equal(body.run.error.code, 'YGG_ERR_RUN_CANCELLED');
    await waitFor('the agent saw the abort', () => {
      try {
        return readFileSync(join(dir, 'aborts'), 'utf8').includes('aborted at');
      } catch {
        return false;
      }
    });
  });

  it('an agent that dies in the middle of its answer leaves the run failed (YGG_ERR_UPSTREAM), not done with half an answer', async () => {
    const r = await start('/stream?n=200&ms=50'); // ~10 s
    const runState = async () =>
      (
        (await (await request(`${p.lbUrl}${r.location}`)).body.json()) as {
          run: { state: string; error: { code: string } | null; answer?: { events: number } };
        }
      ).run;
    await waitFor('some events recorded', async () => ((await runState()).answer?.events ?? 0) >= 3, 10_000);
    const pid = Number(p.controller.status().instances.find((i) => i.state === 'ready')?.meta.pid);
    assert.ok(pid > 0, 'the agent has a pid');
    process.kill(pid, 'SIGKILL');
    const run = await waitFor(
      'the run finished',
      async () => {
        const s = await runState();
        return s.state === 'running' ? undefined : s;
      },
      10_000,
    );
    assert.deepEqual([run.state, run.error?.code], ['failed', 'YGG_ERR_UPSTREAM']);
    assert.ok((run.answer?.events ?? 0) < 200, 'the answer was cut');
    await p.controller.waitForReady(1, 20_000); // replaced, for the tests after this one
  });

  it('an agent’s own /runs routes (not a run id) are forwarded to the agent', async () => {
    const res = await request(`${p.lbUrl}/runs/stream`);
    assert.equal(res.statusCode, 404);
    assert.ok(res.headers['x-yggdrasil-instance'], 'answered by an instance');
    assert.equal(((await res.body.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
  });

  it('a Last-Event-ID that is not an event id is 400 YGG_ERR_BAD_REQUEST, not a replay from the start', async () => {
    const r = await start('/json?ms=0');
    for (const bad of ['abc', '-3', '1e2', '0x10', '5, 7']) {
      const res = await request(`${p.lbUrl}${r.location}/stream`, { headers: { 'last-event-id': bad } });
      const body = (await res.body.json()) as { error: { code: string; message: string } };
      assert.deepEqual([res.statusCode, body.error.code], [400, 'YGG_ERR_BAD_REQUEST'], bad);
      assert.match(body.error.message, /Last-Event-ID/);
    }
  });

  it('an unknown run is 404 YGG_ERR_RUN_NOT_FOUND', async () => {
    const res = await request(`${p.lbUrl}/runs/00000000-0000-0000-0000-000000000000`);
    assert.equal(res.statusCode, 404);
    assert.equal(
      ((await res.body.json()) as { error: { code: string } }).error.code,
      'YGG_ERR_RUN_NOT_FOUND',
    );
  });
});

describe('a run passes the client gate before its 202', { timeout: 60_000 }, () => {
  it('CLIENT_AUTH=keys: no key → 401 at once, no run; a client key → 202, and its tenant reaches the agent', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ygg-runs-auth-'));
    const authFile = join(dir, 'auth.json');
    const key = await addKey(authFile, 'acme', 'client');
    const p = await bootPlatform({
      MIN_INSTANCES: '1',
      MAX_INSTANCES: '1',
      CLIENT_AUTH: 'keys',
      AUTH_FILE: authFile,
    });
    try {
      await p.controller.waitForReady(1, 20_000);
      const post = (headers: Record<string, string>, path = '/api/echo') =>
        request(`${p.lbUrl}${path}`, {
          method: 'POST',
          headers: { prefer: 'respond-async', ...headers },
          body: '{}',
        });
      const anon = await post({});
      assert.equal(anon.statusCode, 401, 'refused before any 202');
      assert.equal(
        ((await anon.body.json()) as { error: { code: string } }).error.code,
        'YGG_ERR_UNAUTHORIZED',
      );
      assert.equal(anon.headers.location, undefined, 'no run was made');
      const ok = await post({ authorization: `Bearer ${key}` });
      assert.equal(ok.statusCode, 202);
      const { run } = (await ok.body.json()) as { run: { id: string } };
      const done = await waitFor('the run to finish', async () => {
        const v = (
          (await (await request(`${p.lbUrl}/runs/${run.id}`)).body.json()) as {
            run: { state: string; answer?: { body?: string } };
          }
        ).run;
        return v.state === 'done' ? v : undefined;
      });
      const echoed = JSON.parse(done.answer?.body ?? '{}') as { headers: Record<string, string> };
      assert.equal(echoed.headers['x-yggdrasil-tenant'], 'acme', 'the run ran as the client');
    } finally {
      await p.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
