// Keeps the README true: its configuration table is the schema's, and its quick start is the two commands.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { AGENT_OPTIONS } from '../src/agent/config.js';
import { PLATFORM_OPTIONS } from '../src/core/config.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  scripts: Record<string, string>;
};

describe('README', () => {
  for (const [name, def] of Object.entries({ ...PLATFORM_OPTIONS, ...AGENT_OPTIONS })) {
    it(`documents ${name} with its default`, () => {
      const row = readme.split('\n').find((l) => new RegExp(`^\\|\\s*\`${name}\`\\s*\\|`).test(l));
      assert.ok(row, `README has no row for ${name}`);
      const shown = def.default === '' ? '(empty)' : `\`${String(def.default)}\``;
      assert.equal(row.split('|')[2]!.trim(), shown, `${name}'s default in README`);
    });
  }

  it('has the two-command quick start', () => {
    assert.match(readme, /```bash\nnpm install && npm start\n```/);
    assert.match(readme, /```bash\nnpm test\n```/);
  });

  it('names only npm scripts that exist', () => {
    for (const m of readme.matchAll(/npm run ([\w:-]+)/g)) {
      assert.ok(pkg.scripts[m[1]!], `README mentions npm run ${m[1]} but package.json has no such script`);
    }
  });

  it('.ci/run runs exactly npm test', () => {
    const ci = readFileSync(new URL('../.ci/run', import.meta.url), 'utf8');
    assert.match(ci, /^npm test$/m);
  });
});
