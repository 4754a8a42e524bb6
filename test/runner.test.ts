// The test runner (scripts/run-tests.mjs) fails a run when a test leaves behind work that rejects or
// throws after it ended, even though the test itself passed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const root = new URL('..', import.meta.url).pathname;

function runFile(source: string) {
  const dir = mkdtempSync(join(tmpdir(), 'ygg-runner-'));
  try {
    const file = join(dir, 'sample.test.mjs');
    writeFileSync(file, source);
    // Without the parent's NODE_TEST_CONTEXT, or node:test would take the run for a nested one.
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const r = spawnSync(process.execPath, ['scripts/run-tests.mjs', 'files', file], {
      cwd: root,
      encoding: 'utf8',
      env,
    });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the test runner', () => {
  for (const [what, late] of [
    ['an unhandled rejection', "Promise.reject(new Error('late rejection'))"],
    ['an uncaught exception', "{ throw new Error('late throw'); }"],
  ] as const) {
    it(`fails the run on ${what} after a test ended`, () => {
      const r = runFile(
        `import { it } from 'node:test';\nit('passes, but leaves a timer', () => { setTimeout(() => ${late}, 20); });\nit('waits', () => new Promise((r) => setTimeout(r, 100)));\n`,
      );
      assert.equal(r.status, 1, r.out);
      assert.match(r.out, /generated asynchronous activity after the test ended/);
    });
  }

  it('passes a clean file', () => {
    const r = runFile(`import { it } from 'node:test';\nit('ok', () => {});\n`);
    assert.equal(r.status, 0, r.out);
  });
});
