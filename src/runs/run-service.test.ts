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
    void runs.accept(req, res, proxy(req.url ?? '/'), { session: 's1' });
  });
  let url = '';
  before(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

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
