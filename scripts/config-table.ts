// Writes the README's configuration tables from the option schema: npx tsx scripts/config-table.ts --write
// (without --write it prints them). test/docs.test.ts checks the README against the schema.
import { readFileSync, writeFileSync } from 'node:fs';
import { AGENT_OPTIONS } from '../src/agent/config.js';
import { PLATFORM_OPTIONS } from '../src/core/config.js';

const fmt = (v: unknown) => (v === '' ? '(empty)' : `\`${String(v)}\``);
const rows = (table: Record<string, { default: unknown; allowed: string; doc: string }>) =>
  Object.entries(table)
    .map(([name, d]) => `| \`${name}\` | ${fmt(d.default)} | ${d.allowed} | ${d.doc} |`)
    .join('\n');
const head = '| Variable | Default | Allowed | What it does |\n|---|---|---|---|';
const text = `${head}\n${rows(PLATFORM_OPTIONS)}\n\nReference agent (set by the runtime for each instance):\n\n${head}\n${rows(AGENT_OPTIONS)}`;

if (process.argv.includes('--write')) {
  const path = new URL('../README.md', import.meta.url);
  const readme = readFileSync(path, 'utf8');
  const start = readme.indexOf('<!-- config-table:start');
  const end = readme.indexOf('<!-- config-table:end -->');
  if (start === -1 || end === -1) throw new Error('README.md has no config-table markers');
  const open = readme.indexOf('\n', start) + 1;
  writeFileSync(path, `${readme.slice(0, open)}${text}\n${readme.slice(end)}`);
} else {
  console.log(text);
}
