// A short chaos run in the test suite (the 60 s one is in `npm run bench`): a random ready agent is
// SIGKILLed every 500 ms under an open-loop load of POSTs and GETs. No request may go unanswered, no
// POST may run twice, and the pool may never sit at 0 ready instances.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runChaos } from '../../bench/chaos.js';

describe('chaos', () => {
  it('kills every 500 ms under load: nothing lost, no POST twice, never 0 ready', async () => {
    const r = await runChaos({ seconds: 6, killEveryMs: 500, rate: 300, instances: 3 });
    console.log(
      `# chaos: ${r.sent} sent, ${r.kills} kills, statuses ${JSON.stringify(r.statuses)}, ${r.lost} lost, ` +
        `${r.duplicatedPosts} POSTs twice, ${Math.round(r.zeroReadyMs)} ms at 0 ready, refill median ${r.refillMedianMs} ms`,
    );
    assert.ok(r.kills >= 8, `only ${r.kills} kills: nothing was tested`);
    assert.equal(r.lost, 0, 'requests got no HTTP answer');
    assert.equal(r.duplicatedPosts, 0, 'a POST ran twice');
    assert.equal(r.inconsistentPosts, 0, 'a POST answered 200 did not run exactly once');
    assert.equal(r.zeroReadyMs, 0, 'the pool had no ready instance');
    // Only requests in flight at a killed agent may fail (502): a few per kill, never most of the load.
    const failed = r.sent - (r.statuses[200] ?? 0);
    assert.deepEqual(
      Object.keys(r.statuses).filter((s) => s !== '200' && s !== '502'),
      [],
    );
    assert.ok(failed < r.sent * 0.05, `${failed} of ${r.sent} failed`);
  });
});
