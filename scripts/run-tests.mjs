#!/usr/bin/env node
// Runs the test suites on node:test (its summary is what CI reads), with tsx for TypeScript.
// Usage: node scripts/run-tests.mjs unit|integration|all [file-filter]
//        node scripts/run-tests.mjs files <test file>...
// node:test fails a file on an unhandled rejection or an uncaught exception, also one raised by work
// a test left running after it ended ("generated asynchronous activity after the test ended"):
// test/runner.test.ts checks that this runner keeps that behaviour.
// Unit tests live beside their source (src/**/*.test.ts); integration tests under test/.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const which = process.argv[2] ?? 'all';
const filter = process.argv[3];

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out.sort();
}

const files = [];
if (which === 'unit' || which === 'all') files.push(...walk(join(root, 'src')));
if (which === 'integration' || which === 'all') files.push(...walk(join(root, 'test')));
if (which === 'files') files.push(...process.argv.slice(3));
const selected = filter && which !== 'files' ? files.filter((f) => f.includes(filter)) : files;
if (selected.length === 0) {
  console.error(`no test files for "${which}"${filter ? ` matching "${filter}"` : ''}`);
  process.exit(1);
}
const args = [
  '--import',
  'tsx',
  '--test',
  '--test-reporter=spec',
  `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`,
];
const result = spawnSync(process.execPath, [...args, ...selected], { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
