#!/usr/bin/env node
// Copies the production node_modules an image needs, and nothing else, into a build-context folder.
// Usage: node docker/prod-modules.mjs <installed node_modules> <out node_modules> [entry.js ...]
// With entry files (the agent image: dist/agent/main.js), only the packages their import graph reaches
// are copied: relative imports followed through dist/, bare specifiers resolved node-style, then each
// package's dependencies (and its optional and peer dependencies when installed). Without entry files
// (the controller image) every package is. Either way files that never run are left out: TypeScript
// sources and declarations, source maps, Markdown other than licences, @types/ and .bin/.
import { cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';

const [from, to, ...entries] = process.argv.slice(2);
if (!from || !to) {
  process.stderr.write('usage: prod-modules.mjs <node_modules> <out> [entry.js ...]\n');
  process.exit(2);
}
const src = resolve(from);
const out = resolve(to);
const builtins = new Set(builtinModules);
const SPEC = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)(['"])([^'"\n]+)\1/g;

const packageName = (spec) => {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
};

/** Bare package names imported by the graph of relative imports from `files`. */
function importedPackages(files) {
  const seen = new Set();
  const packages = new Set();
  const queue = files.map((f) => resolve(f));
  while (queue.length > 0) {
    const file = queue.pop();
    if (seen.has(file) || !existsSync(file)) continue;
    seen.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(SPEC)) {
      const spec = m[2];
      if (spec.startsWith('.') || spec.startsWith('/')) queue.push(resolve(dirname(file), spec));
      else if (!spec.startsWith('node:') && !builtins.has(spec)) packages.add(packageName(spec));
    }
  }
  return packages;
}

/** Node-style lookup of `name` from the package folder `fromDir` (nested node_modules first). */
function locate(name, fromDir) {
  let dir = fromDir;
  while (dir.startsWith(src)) {
    const candidate = join(dir === src ? src : join(dir, 'node_modules'), name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === src) break;
    // climb out of ".../node_modules/<pkg>" or ".../node_modules/@scope/<pkg>"
    dir = dirname(dir);
    if (basename(dir).startsWith('@')) dir = dirname(dir);
    if (basename(dir) === 'node_modules') dir = dirname(dir);
    if (!dir.startsWith(src)) dir = src;
  }
  return undefined;
}

function closure(roots) {
  const keep = new Set();
  const queue = [...roots].map((name) => ({ name, from: src, optional: false }));
  while (queue.length > 0) {
    const { name, from, optional } = queue.pop();
    const dir = locate(name, from);
    if (!dir) {
      if (optional) continue;
      throw new Error(
        `package ${name} (needed by ${relative(src, from) || 'the entry files'}) is not installed`,
      );
    }
    if (keep.has(dir)) continue;
    keep.add(dir);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    for (const dep of Object.keys(pkg.dependencies ?? {}))
      queue.push({ name: dep, from: dir, optional: false });
    // optional and peer dependencies: kept when installed
    for (const dep of Object.keys({ ...pkg.optionalDependencies, ...pkg.peerDependencies }))
      queue.push({ name: dep, from: dir, optional: true });
  }
  return keep;
}

const skipFile = (name) =>
  /\.(?:[cm]?ts|map)$/.test(name) || (/\.(?:md|markdown)$/i.test(name) && !/^licen[cs]e/i.test(name));
const isTypes = (rel) => rel === '@types' || rel.startsWith(`@types${sep}`);

rmSync(out, { recursive: true, force: true });
if (entries.length === 0) {
  cpSync(src, out, {
    recursive: true,
    filter: (p) => {
      const rel = relative(src, p);
      return !skipFile(basename(p)) && !isTypes(rel) && rel !== '.bin' && !rel.startsWith(`.bin${sep}`);
    },
  });
  process.stdout.write(`every package → ${out}\n`);
} else {
  const keep = [...closure(importedPackages(entries))].filter((d) => !isTypes(relative(src, d))).sort();
  for (const dir of keep) {
    cpSync(dir, join(out, relative(src, dir)), {
      recursive: true,
      // a nested node_modules holds other packages: those in the closure are copied on their own
      filter: (p) => !skipFile(basename(p)) && !relative(dir, p).split(sep).includes('node_modules'),
    });
  }
  process.stdout.write(`${keep.length} packages → ${out}\n`);
}
