// test/sessions.test.ts and test/run-multitask.test.ts once more with DRIVER=docker: dedicated sessions
// on containers (docker pause and unpause) and the SESSION_MULTITASK policies, each in a child test
// process with TEST_DRIVER=docker (see test/helpers/platform.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runOnContainers } from './helpers/docker.js';
import { requireService } from './helpers/services.js';

const skip = requireService('docker');

describe('dedicated sessions and run policies on DRIVER=docker', { skip }, () => {
  for (const [file, least] of [
    ['test/sessions.test.ts', 10],
    ['test/run-multitask.test.ts', 3],
  ] as const) {
    it(`${file} passes on containers`, { timeout: 600_000 }, async () => {
      const r = await runOnContainers(file);
      assert.equal(r.status, 0, `${file} failed on docker (${r.failures} failures)`);
      assert.ok(r.passes >= least, `the child run executed the tests (${r.passes} passed)`);
    });
  }
});
