// The reference agent as a real process: its contract (health, process, api echo, metrics), strict
// validation (400/413), session counting, and its SIGTERM drain.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../src/runtime/free-port.js';
import { referenceAgentCommand } from '../src/runtime/process-driver.js';
import { json, waitFor } from './helpers/platform.js';
import { run, type Spawned } from './helpers/spawn.js';

async function startAgent(env: Record<string, string> = {}): Promise<{ url: string; proc: Spawned }> {
  const port = await freePort();
  const cmd = referenceAgentCommand();
  const proc = run(cmd.file, cmd.args, {
    PORT: String(port),
    AGENT_ID: 'agent-7',
    LOG_LEVEL: 'warn',
    ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor('the agent to listen', () =>
    fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    ),
  );
  return { url, proc };
}

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(`${url}/process`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });

describe('reference agent', () => {
  let a: { url: string; proc: Spawned };
  before(async () => {
    a = await startAgent({ MAX_BODY_BYTES: '1024' });
  });
  after(async () => {
    a.proc.child.kill('SIGKILL');
    await a.proc.exited;
  });

  it('GET /health answers status, agentId, inflight and uptime', async () => {
    const body = await json(await fetch(`${a.url}/health`));
    assert.equal(body.status, 'ok');
    assert.equal(body.agentId, 'agent-7');
    assert.equal(body.inflight, 0);
    assert.equal(typeof body.uptimeSeconds, 'number');
  });

  it('POST /process echoes input and counts the requests of a session (header or cookie)', async () => {
    for (let n = 1; n <= 3; n++) {
      const res = await post(a.url, JSON.stringify({ input: { n } }), { 'x-session-id': 'alpha' });
      assert.equal(res.status, 200);
      const body = await json<{ output: { echo: unknown }; session: { id: string; requests: number } }>(res);
      assert.deepEqual(body.output.echo, { n });
      assert.deepEqual(body.session, { id: 'alpha', requests: n });
    }
    const viaCookie = await json<{ session: unknown }>(
      await post(a.url, '{}', { cookie: 'x=1; ygg_session=alpha' }),
    );
    assert.deepEqual(viaCookie.session, { id: 'alpha', requests: 4 });
    const anonymous = await json<{ session: unknown }>(await post(a.url, '{}'));
    assert.deepEqual(anonymous.session, { id: null, requests: 0 });
  });

  it('POST /process with fail:true answers 500 with a JSON error', async () => {
    const res = await post(a.url, JSON.stringify({ fail: true }));
    assert.equal(res.status, 500);
    assert.equal((await json<{ error: { code: string } }>(res)).error.code, 'YGG_ERR_AGENT_FAILURE');
  });

  const bad = [
    { name: 'malformed JSON', body: '{"input": ', code: 'YGG_ERR_INVALID_JSON' },
    { name: 'workMs above 600000', body: '{"workMs": 600001}', code: 'YGG_ERR_VALIDATION', field: 'workMs' },
    { name: 'negative cpuMs', body: '{"cpuMs": -1}', code: 'YGG_ERR_VALIDATION', field: 'cpuMs' },
    { name: 'cpuMs above 10000', body: '{"cpuMs": 10001}', code: 'YGG_ERR_VALIDATION', field: 'cpuMs' },
    { name: 'fractional workMs', body: '{"workMs": 1.5}', code: 'YGG_ERR_VALIDATION', field: 'workMs' },
    { name: 'fail not a boolean', body: '{"fail": "yes"}', code: 'YGG_ERR_VALIDATION', field: 'fail' },
    { name: 'unknown field', body: '{"input": 1, "wrk": 5}', code: 'YGG_ERR_VALIDATION', field: 'wrk' },
    { name: 'array body', body: '[1,2]', code: 'YGG_ERR_VALIDATION' },
  ];
  for (const row of bad) {
    it(`400 for ${row.name}`, async () => {
      const res = await post(a.url, row.body);
      assert.equal(res.status, 400);
      const body = await json<{ error: { code: string; message: string } }>(res);
      assert.equal(body.error.code, row.code);
      if (row.field) assert.match(body.error.message, new RegExp(row.field));
    });
  }

  it('413 for a body over MAX_BODY_BYTES, declared or chunked', async () => {
    const big = JSON.stringify({ input: 'x'.repeat(2000) });
    const res = await post(a.url, big);
    assert.equal(res.status, 413);
    assert.equal((await json<{ error: { code: string } }>(res)).error.code, 'YGG_ERR_BODY_TOO_LARGE');
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(big));
        c.close();
      },
    });
    const chunked = await fetch(`${a.url}/process`, {
      method: 'POST',
      body: stream,
      duplex: 'half',
      headers: { 'content-type': 'application/json' },
    } as RequestInit);
    assert.equal(chunked.status, 413);
  });

  it('GET and POST /api/* answer a JSON echo; unknown routes 404, wrong methods 405', async () => {
    const get = await json(await fetch(`${a.url}/api/test`));
    assert.deepEqual([get.ok, get.method, get.path], [true, 'GET', '/api/test']);
    const postRes = await json(await fetch(`${a.url}/api/x`, { method: 'POST', body: 'hello' }));
    assert.deepEqual([postRes.method, postRes.bytes], ['POST', 5]);
    assert.equal((await fetch(`${a.url}/nope`)).status, 404);
    assert.equal((await fetch(`${a.url}/process`)).status, 405);
  });

  it('GET /metrics exposes requests, in-flight, latency, CPU and memory', async () => {
    const text = await (await fetch(`${a.url}/metrics`)).text();
    assert.match(text, /yggdrasil_agent_requests_total\{route="process",code="200",agent_id="agent-7"\} \d+/);
    assert.match(text, /yggdrasil_agent_requests_total\{route="process",code="400",agent_id="agent-7"\} \d+/);
    assert.match(text, /yggdrasil_agent_inflight_requests\{agent_id="agent-7"\} 0/);
    assert.match(text, /yggdrasil_agent_request_duration_seconds_bucket/);
    assert.match(text, /process_cpu_seconds_total/);
    assert.match(text, /process_resident_memory_bytes/);
  });
});

describe('reference agent shutdown', () => {
  it('on SIGTERM stops accepting, finishes in-flight requests, exits 0', async () => {
    const a = await startAgent();
    const inflight = post(a.url, JSON.stringify({ workMs: 600, input: 'last' }));
    await waitFor(
      'the request to be in flight',
      async () => (await json(await fetch(`${a.url}/health`))).inflight === 1,
    );
    a.proc.child.kill('SIGTERM');
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.equal((await json<{ output: { echo: string } }>(res)).output.echo, 'last');
    const { code } = await a.proc.exited;
    assert.equal(code, 0);
    await assert.rejects(fetch(`${a.url}/health`), 'no longer accepting');
  });
});
