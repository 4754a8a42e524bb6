// Prints the README's configuration table from the option schema (run: npx tsx scripts/config-table.ts).

import { AGENT_OPTIONS } from '../src/agent/config.js';
import { PLATFORM_OPTIONS } from '../src/core/config.js';

const fmt = (v: unknown) => (v === '' ? '(empty)' : `\`${String(v)}\``);
const rows = (table: Record<string, { default: unknown; allowed: string; doc: string }>) =>
  Object.entries(table)
    .map(([name, d]) => `| \`${name}\` | ${fmt(d.default)} | ${d.allowed} | ${d.doc} |`)
    .join('\n');

console.log('| Variable | Default | Allowed | What it does |\n|---|---|---|---|');
console.log(rows(PLATFORM_OPTIONS));
console.log('\nReference agent (set by the runtime for each instance):\n');
console.log('| Variable | Default | Allowed | What it does |\n|---|---|---|---|');
console.log(rows(AGENT_OPTIONS));
