// SESSION_MULTITASK (issue 13): a request of a session while one of its runs is active waits its turn
// (enqueue), is refused with 409 (reject) or cancels the run (interrupt). On the reference agent, so
// the same file runs on containers (test/docker-sessions.test.ts runs it with TEST_DRIVER=docker).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { request } from 'undici';
import type { Platform } from '../src/platform.js';
import { bootPlatform, waitFor } from './helpers/platform.js';

describe('SESSION_MULTITASK: a request of a session while one of its runs is active', {
  timeout: 120_000,
}, () => {
  const boot = (policy: string) =>
    bootPlatform({
      MIN_INSTANCES: '1',
      MAX_INSTANCES: '1',
      SESSION_MULTITASK: policy,
    });
  const run = async (p: Platform, path: string, session: string) => {
    // The reference agent: GET /stream (events), POST /process (JSON after workMs).
    const stream = path.startsWith('/stream');
    const res = await request(`${p.lbUrl}${path}`, {
      method: stream ? 'GET' : 'POST',
      headers: { prefer: 'respond-async', 'x-session-id': session, 'content-type': 'application/json' },
      ...(stream ? {} : { body: '{"workMs":10}' }),
    });
    const body = (await res.body.json()) as { run?: { id: string; state: string }; error?: { code: string } };
    return { status: res.statusCode, ...body };
  };
  type View = {
    state: string;
    startedAt: string | null;
    finishedAt: string | null;
    error: { code: string } | null;
  };
  const view = async (p: Platform, id: string) =>
    ((await (await request(`${p.lbUrl}/runs/${id}`)).body.json()) as { run: View }).run;
  const finished = (p: Platform, id: string) =>
    waitFor(
      'the run finished',
      async () => {
        const v = await view(p, id);
        return v.finishedAt ? v : undefined;
      },
      20_000,
      50,
    );

  it('enqueue (default): the second run waits its turn; a plain request of the session waits too', async () => {
    const p = await boot('enqueue');
    try {
      await p.controller.waitForReady(1, 20_000);
      const a = await run(p, '/stream?n=10&ms=60', 's1');
      const b = await run(p, '/process', 's1');
      assert.deepEqual([a.status, b.status, b.run?.state], [202, 202, 'queued']);
      const plain = await request(`${p.lbUrl}/api/plain`, { headers: { 'x-session-id': 's1' } });
      await plain.body.dump();
      const plainAnsweredAt = Date.now();
      const [va, vb] = [await finished(p, a.run!.id), await finished(p, b.run!.id)];
      assert.equal(va.state, 'done');
      assert.equal(vb.state, 'done');
      assert.ok(Date.parse(vb.startedAt!) >= Date.parse(va.finishedAt!), 'b started after a finished');
      assert.equal(plain.statusCode, 200);
      assert.ok(plainAnsweredAt >= Date.parse(vb.finishedAt!), 'the plain request waited for both runs');
      // Another session is not held up.
      const other = await run(p, '/process', 's2');
      assert.equal((await finished(p, other.run!.id)).state, 'done');
    } finally {
      await p.stop();
    }
  });

  it('reject: 409 YGG_ERR_RUN_ACTIVE for a second run and for a plain request of the session', async () => {
    const p = await boot('reject');
    try {
      await p.controller.waitForReady(1, 20_000);
      const a = await run(p, '/stream?n=20&ms=50', 's1');
      const b = await run(p, '/process', 's1');
      assert.deepEqual([a.status, b.status, b.error?.code], [202, 409, 'YGG_ERR_RUN_ACTIVE']);
      const plain = await request(`${p.lbUrl}/api/plain`, { headers: { 'x-session-id': 's1' } });
      assert.equal(plain.statusCode, 409);
      await plain.body.dump();
      assert.equal((await finished(p, a.run!.id)).state, 'done', 'the active run was not touched');
    } finally {
      await p.stop();
    }
  });

  it('interrupt: the active run is cancelled and the new one goes ahead', async () => {
    const p = await boot('interrupt');
    try {
      await p.controller.waitForReady(1, 20_000);
      const a = await run(p, '/stream?n=1000&ms=20', 's1');
      await waitFor('a running', async () => (await view(p, a.run!.id)).state === 'running', 10_000, 20);
      const b = await run(p, '/process', 's1');
      assert.equal(b.status, 202);
      const va = await finished(p, a.run!.id);
      assert.deepEqual([va.state, va.error?.code], ['cancelled', 'YGG_ERR_RUN_CANCELLED']);
      assert.equal((await finished(p, b.run!.id)).state, 'done');
    } finally {
      await p.stop();
    }
  });
});
