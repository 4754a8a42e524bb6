// A rolling update of AGENT_IMAGE on DRIVER=swarm (a real single-node swarm) under load loses no
// request: the platform restarted with a new AGENT_IMAGE adopts the service and changes its image;
// Swarm rolls it out start-first, one task at a time (the new task healthy before the old one stops);
// the old task is terminating for the router (drained) and the agent drains on SIGTERM.
// The run itself is bench/rollout.ts (the bench reports the same figure).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runSwarmRollout } from '../bench/rollout.js';
import { ensureImages, testOwner } from './helpers/docker.js';
import { requireService } from './helpers/services.js';

describe('DRIVER=swarm: a rolling update of AGENT_IMAGE under load', {
  skip: requireService('swarm'),
  timeout: 300_000,
}, () => {
  it('restarted with a new AGENT_IMAGE: every task replaced, no request failed', async () => {
    ensureImages();
    const r = await runSwarmRollout(testOwner());
    console.log(
      `# swarm rolling update: ${r.total} requests, ${r.failed} failed, rolled out in ${r.rolledMs} ms; statuses ${JSON.stringify(r.statuses)}`,
    );
    assert.ok(r.total > 100, `${r.total} requests`);
    assert.equal(r.failed, 0, JSON.stringify(r.statuses));
    assert.ok(r.servedOld, 'the old tasks served during the rollout');
    assert.ok(r.servedNew, 'the new tasks served');
  });
});
