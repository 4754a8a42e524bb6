// `npm run test:coverage` as package.json has it, on the unit suite (the whole one takes minutes): it
// prints coverage per source folder and enforces its floors. The script's leading build is left out:
// `npm test` has just built, and rebuilding dist/ would race the other tests' agents started from it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const root = new URL('..', import.meta.url).pathname;
const BUILD = 'npm run build --silent && ';
const script = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    scripts: Record<string, string>;
  }
).scripts['test:coverage']!;

function coverage(floors: { total: number; folder: number }) {
  // Without the parent's NODE_TEST_CONTEXT, or node:test would take the run for a nested one.
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  assert.ok(script.startsWith(BUILD), script);
  // Its own reports: a `npm run test:coverage` of the whole suite may be collecting around this one.
  const dir = mkdtempSync(join(tmpdir(), 'ygg-coverage-'));
  const r = spawnSync('sh', ['-c', script.slice(BUILD.length)], {
    cwd: root,
    encoding: 'utf8',
    timeout: 180_000,
    env: {
      ...env,
      // As npm runs a script: the project's binaries (c8) on the PATH.
      PATH: `${root}node_modules/.bin:${env.PATH ?? ''}`,
      COVERAGE_SUITE: 'unit',
      COVERAGE_DIR: dir,
      // c8 collects in NODE_V8_COVERAGE when it is set (and cleans it first), and Node passes a set
      // one on to every child: give this run its own, or it would wipe a c8 run around it.
      NODE_V8_COVERAGE: join(dir, 'tmp'),
      COVERAGE_FLOOR: String(floors.total),
      COVERAGE_FOLDER_FLOOR: String(floors.folder),
    },
  });
  rmSync(dir, { recursive: true, force: true });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('npm run test:coverage', { timeout: 400_000 }, () => {
  it('prints lines, branches and functions per source folder, and passes its floors', () => {
    const r = coverage({ total: 1, folder: 0 });
    assert.equal(r.status, 0, r.out.slice(-2000));
    assert.match(r.out, /^folder\s+lines\s+branches\s+functions$/m);
    for (const folder of ['src/router', 'src/controller', 'src/autoscaler', 'src/core']) {
      assert.match(r.out, new RegExp(`^${folder}\\s+\\d+\\.\\d %`, 'm'), folder);
    }
    assert.match(r.out, /^total\s+\d+\.\d %/m);
  });

  it('fails under its floor, naming what is under it', () => {
    const r = coverage({ total: 100, folder: 0 });
    assert.equal(r.status, 1);
    assert.match(r.out, /coverage under the floor \(lines\): total \d+\.\d % < 100 %/);
  });
});
