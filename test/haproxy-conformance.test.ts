// The conformance suites once more with DATAPLANE=haproxy (TEST_DATAPLANE, see test/helpers/platform.ts):
// real clients (curl, undici, ws, socket.io, FastAPI and httpx) and the edge (pipelining, malformed
// requests, 100-continue, forwarding headers, timeouts) through HAProxy. What the README's table says
// HAProxy lacks is skipped there with that reason, and counted here: a new gap fails this test.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requireService } from './helpers/services.js';
import { runTestFile } from './helpers/spawn.js';

const SUITES: Array<{ file: string; skipped: number }> = [
  { file: 'test/conformance/clients.test.ts', skipped: 0 },
  // TRUSTED_PROXIES, the issued session cookie, CLIENT_BODY_TIMEOUT_MS on bodies, the breaker's rules.
  { file: 'test/conformance/edge.test.ts', skipped: 4 },
];

describe('conformance on DATAPLANE=haproxy', { skip: requireService('haproxy') }, () => {
  for (const { file, skipped } of SUITES) {
    it(`${file} passes through HAProxy`, { timeout: 600_000 }, () => {
      const r = runTestFile(file, { TEST_DATAPLANE: 'haproxy' }, 580_000);
      assert.equal(r.status, 0, `${file} failed through HAProxy (${r.failures} failures)`);
      assert.ok(r.passes > 0, 'the child run executed tests');
      assert.equal(r.skipped, skipped, 'the rows HAProxy lacks, and no more');
    });
  }
});
