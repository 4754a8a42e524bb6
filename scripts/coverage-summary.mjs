#!/usr/bin/env node
// The end of `npm run test:coverage`: reads c8's coverage-summary.json, prints line, branch
// and function coverage per source folder (src/router, src/controller, …) and in total, and exits 1
// when the total or a folder falls under its floor.
import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

/** Floors in % of lines: the whole of src/, and any one folder. */
const TOTAL_FLOOR = Number(process.env.COVERAGE_FLOOR ?? 90);
const FOLDER_FLOOR = Number(process.env.COVERAGE_FOLDER_FLOOR ?? 75);

const root = new URL('..', import.meta.url).pathname;
// COVERAGE_DIR: where c8 wrote its reports (the script's --reports-dir), coverage/ by default.
const dir = resolve(root, process.env.COVERAGE_DIR ?? 'coverage');
const summary = JSON.parse(readFileSync(join(dir, 'coverage-summary.json'), 'utf8'));
const kinds = ['lines', 'branches', 'functions'];
const folders = new Map();
for (const [file, s] of Object.entries(summary)) {
  if (file === 'total') continue;
  const rel = relative(root, file);
  const folder = rel.split('/').slice(0, 2).join('/').replace(/\.ts$/, '');
  const f = folders.get(folder) ?? Object.fromEntries(kinds.map((k) => [k, { covered: 0, total: 0 }]));
  for (const k of kinds) {
    f[k].covered += s[k].covered;
    f[k].total += s[k].total;
  }
  folders.set(folder, f);
}
const pct = (c) => (c.total === 0 ? 100 : (100 * c.covered) / c.total);
const rows = [['folder', ...kinds]];
const low = [];
for (const [folder, f] of [...folders].sort()) {
  rows.push([folder, ...kinds.map((k) => `${pct(f[k]).toFixed(1)} %`)]);
  if (pct(f.lines) < FOLDER_FLOOR) low.push(`${folder} ${pct(f.lines).toFixed(1)} % < ${FOLDER_FLOOR} %`);
}
const total = summary.total;
rows.push(['total', ...kinds.map((k) => `${total[k].pct.toFixed(1)} %`)]);
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c])).join('  '));
if (total.lines.pct < TOTAL_FLOOR) low.push(`total ${total.lines.pct.toFixed(1)} % < ${TOTAL_FLOOR} %`);
if (low.length > 0) {
  console.error(`\ncoverage under the floor (lines): ${low.join('; ')}`);
  process.exit(1);
}
console.log(`\nlines: total ≥ ${TOTAL_FLOOR} %, every folder ≥ ${FOLDER_FLOOR} %: ok`);
