// A controller that cannot reach Redis at start stands by with no pool seen yet: its status still has
// every field the page and the live feed read (a defect: the feed threw "reading 'depth'" on every
// tick, seen in a Swarm stack whose controllers started before Redis).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../src/runtime/free-port.js';
import { startRole } from './helpers/roles.js';

describe('a standby that has not reached Redis yet', () => {
  it('answers /status with the queue and autoscaler fields, and its live feed does not fail', {
    timeout: 30_000,
  }, async () => {
    const dead = await freePort(); // nothing listens there
    const c = await startRole('controller', 'lonely', {
      REDIS_URL: `redis://127.0.0.1:${dead}`,
      LOG_LEVEL: 'warn',
    });
    try {
      const s = (await (await fetch(`${c.url}/status`)).json()) as Record<string, unknown>;
      assert.equal(s.standby, true);
      assert.deepEqual(Object.keys(s.queue as object).sort(), ['depth', 'max', 'timeoutMs']);
      assert.ok(s.autoscaler, 'autoscaler field');
      await sleep(2500); // two ticks of the feed
      const failures = c.proc
        .stdout()
        .concat(c.proc.stderr())
        .split('\n')
        .filter((l) => l.includes('live-feed') && l.includes('"level":40'));
      assert.deepEqual(failures, []);
    } finally {
      await c.stop();
    }
  });
});
