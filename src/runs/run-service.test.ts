// RunService on a loopback HTTP server, with a proxy the test controls (no router, no agent): closing
// the service cancels the running run (its sink is destroyed, so the upstream request would abort) and
// the queued one, which then never starts.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../core/logger.js';
import type { RecordingResponse } from './recording-response.js';
import { RunService } from './run-service.js';

describe('RunService.close', () => {
  const started: string[] = [];
  let destroyed = 0;
  const runs = new RunService({
    runTimeoutMs: 60_000,
    retentionMs: 60_000,
    maxBytes: 1024 * 1024,
    maxBodyBytes: 1024,
    queueTimeoutMs: 150,
    logger: createLogger('silent'),
  });
  const proxy = (path: string) => (sink: RecordingResponse) => {
    started.push(path);
    return new Promise<void>((resolve) => {
      sink.once('close', () => {
        destroyed++;
        resolve();
      });
    });
  };
  const server = createServer((req, res) => {
    if (runs.route(req, res, req.url ?? '/')) return;
    void runs.accept(req, res, proxy(req.url ?? '/'), { session: 's1' });
  });
  let url = '';
  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('a plain request of the session waits at most QUEUE_TIMEOUT_MS, and not once its client left', async () => {
    const res = await fetch(`${url}/long`, { method: 'POST', body: '{}' });
    assert.equal(res.status, 202);
    const { run } = (await res.json()) as { run: { id: string } };
    const waited = await runs.sessionTurn('s1', new AbortController().signal);
    assert.equal(waited?.code, 'YGG_ERR_RUN_ACTIVE', 'still running after QUEUE_TIMEOUT_MS: refused');
    assert.match(waited?.message ?? '', /QUEUE_TIMEOUT_MS=150/);
    const gone = new AbortController();
    const turn = runs.sessionTurn('s1', gone.signal);
    gone.abort();
    assert.equal(await turn, undefined, 'the client left: nothing to answer');
    assert.equal(
      await runs.sessionTurn('other', new AbortController().signal),
      undefined,
      'another session goes',
    );
    await fetch(`${url}/runs/${run.id}`, { method: 'DELETE' });
    assert.equal(runs.log.get(run.id)?.state, 'cancelled');
    assert.equal(
      await runs.sessionTurn('s1', new AbortController().signal),
      undefined,
      'its turn once the run ended',
    );
    started.length = 0;
    destroyed = 0;
  });

  it('cancels the running run and the queued one; the queued one never starts', async () => {
    const accept = async (path: string) => {
      const res = await fetch(`${url}${path}`, { method: 'POST', body: '{}' });
      assert.equal(res.status, 202);
      return ((await res.json()) as { run: { id: string; state: string } }).run;
    };
    const a = await accept('/a');
    const b = await accept('/b');
    assert.equal(b.state, 'queued', 'b waits for a (same session, enqueue)');
    await sleep(50);
    assert.deepEqual(started, ['/a']);
    runs.close();
    await sleep(50);
    assert.equal(runs.log.get(a.id)?.state, 'cancelled');
    assert.equal(runs.log.get(b.id)?.state, 'cancelled');
    assert.equal(destroyed, 1, 'the running run was aborted');
    assert.deepEqual(started, ['/a'], 'the queued run never started');
    assert.equal(runs.busy, false);
  });
});
