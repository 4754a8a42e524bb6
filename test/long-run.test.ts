// A 3-minute run (issue 13), on DRIVER=process and DRIVER=docker at once: the reference agent streams
// 120 events 1.5 s apart (GET /stream), longer apart than REQUEST_TIMEOUT_MS=1000, which would end a
// plain request; started with Prefer: respond-async, its client reads a few events and disconnects,
// twice, and each new client resumes from Last-Event-ID. Together they saw every event 1..120 once,
// in order, and the run ends done.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import type { Platform } from '../src/platform.js';
import { ensureFreshImage, removeOwned, testOwner } from './helpers/docker.js';
import { bootPlatform } from './helpers/platform.js';
import { requireService } from './helpers/services.js';
import { readSse } from './helpers/sse.js';

const EVENTS = 120;
const GAP_MS = 1500;

async function longRun(p: Platform): Promise<void> {
  const started = await request(`${p.lbUrl}/stream?n=${EVENTS}&ms=${GAP_MS}`, {
    headers: { prefer: 'respond-async', 'x-session-id': 'long' },
  });
  assert.equal(started.statusCode, 202);
  const { run } = (await started.body.json()) as { run: { id: string } };
  const stream = `${p.lbUrl}/runs/${run.id}/stream`;
  const seen: number[] = [];
  // First client: five events, then gone. Nobody listens for a minute.
  seen.push(...(await readSse(stream, { stopAfter: 5 })).ids);
  await sleep(60_000);
  // Second client: resumes after what it saw (the backlog replays at once), reads on, goes.
  seen.push(...(await readSse(stream, { lastEventId: seen.at(-1) ?? 0, stopAfter: 50 })).ids);
  await sleep(20_000);
  // Third client: to the end.
  const last = await readSse(stream, { lastEventId: seen.at(-1) ?? 0 });
  seen.push(...last.ids);
  assert.ok(last.ended, 'the stream ended with event: run-end');
  assert.deepEqual(
    seen,
    Array.from({ length: EVENTS }, (_, i) => i + 1),
    'every event once, in order: no gap, no duplicate',
  );
  const view = (await (await request(`${p.lbUrl}/runs/${run.id}`)).body.json()) as {
    run: { state: string; startedAt: string; finishedAt: string };
  };
  assert.equal(view.run.state, 'done');
  const tookMs = Date.parse(view.run.finishedAt) - Date.parse(view.run.startedAt);
  assert.ok(
    tookMs >= (EVENTS - 1) * GAP_MS,
    `the run lasted its ${((EVENTS - 1) * GAP_MS) / 1000} s (${tookMs} ms)`,
  );
}

const RUN_ENV = { MIN_INSTANCES: '1', MAX_INSTANCES: '1', REQUEST_TIMEOUT_MS: '1000' };

describe('a 3-minute run outlives its clients', { timeout: 400_000 }, () => {
  it('on processes and on containers at once', async () => {
    const docker = requireService('docker') === false;
    const owner = testOwner();
    if (docker) ensureFreshImage('agent');
    const platforms: Platform[] = [];
    try {
      const proc = await bootPlatform(RUN_ENV);
      platforms.push(proc);
      const cont = docker ? await bootPlatform({ ...RUN_ENV, DRIVER: 'docker', ...owner }) : undefined;
      if (cont) platforms.push(cont);
      await Promise.all(platforms.map((p) => p.controller.waitForReady(1, 60_000)));
      // A plain request of the same stream is cut by REQUEST_TIMEOUT_MS: the run is not.
      const plain = await request(`${proc.lbUrl}/stream?n=3&ms=${GAP_MS}`);
      assert.equal(plain.statusCode, 200, 'the plain stream began');
      let text = '';
      try {
        for await (const chunk of plain.body) text += chunk.toString();
      } catch {
        // cut mid-body: what came before is kept
      }
      const got = [...text.matchAll(/^id: (\d+)$/gm)].length;
      assert.ok(got >= 1 && got < 3, `the plain stream was cut by REQUEST_TIMEOUT_MS after ${got} event(s)`);
      await Promise.all(platforms.map(longRun));
    } finally {
      await Promise.all(platforms.map((p) => p.stop()));
      if (docker) await removeOwned(owner.DOCKER_OWNER, owner.DOCKER_NETWORK);
    }
  });
});
