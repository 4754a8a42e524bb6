// The router and autoscaler tests once more with DRIVER=docker: the same assertions on containers.
// Runs them in a child test process with TEST_DRIVER=docker (see test/helpers/platform.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runOnContainers } from './helpers/docker.js';
import { requireService } from './helpers/services.js';

const skip = requireService('docker');

describe('router and autoscaler on DRIVER=docker', { skip }, () => {
  for (const file of ['test/router.test.ts', 'test/autoscale.test.ts']) {
    it(`${file} passes on containers`, { timeout: 600_000 }, async () => {
      const r = await runOnContainers(file);
      assert.equal(r.status, 0, `${file} failed on docker (${r.failures} failures)`);
      assert.ok(r.passes > 0, 'the child run executed tests');
    });
  }
});
