// The router and autoscaler tests once more with DRIVER=docker: the same assertions on containers.
// Runs them in a child test process with TEST_DRIVER=docker (see test/helpers/platform.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { ensureImages } from './helpers/docker.js';
import { requireService } from './helpers/services.js';

const skip = requireService('docker');
const root = new URL('..', import.meta.url).pathname;

describe('router and autoscaler on DRIVER=docker', { skip }, () => {
  for (const file of ['test/router.test.ts', 'test/autoscale.test.ts']) {
    it(`${file} passes on containers`, { timeout: 600_000 }, () => {
      ensureImages();
      // A fresh test runner, not a subtest of this one.
      const { NODE_TEST_CONTEXT: _, ...env } = process.env;
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', file], {
        cwd: root,
        env: { ...env, TEST_DRIVER: 'docker' },
        encoding: 'utf8',
        timeout: 600_000,
      });
      const failures = (r.stdout.match(/^# fail (\d+)/m) ?? [])[1];
      const passes = Number((r.stdout.match(/^# pass (\d+)/m) ?? [])[1] ?? 0);
      if (r.status !== 0)
        console.log(
          r.stdout
            .split('\n')
            .filter((l) => /not ok|Error|assert/i.test(l))
            .join('\n'),
        );
      assert.equal(r.status, 0, `${file} failed on docker (${failures} failures)`);
      assert.ok(passes > 0, 'the child run executed tests');
    });
  }
});
