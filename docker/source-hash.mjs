#!/usr/bin/env node
// Prints a hash of what goes into the agent and controller images: dist/**/*.js, package.json,
// package-lock.json and the files under docker/ that shape the images. scripts/build-images.sh
// stores it as the label io.yggdrasil.source-hash; test/images.test.ts rebuilds an image whose
// label differs, so a test never runs an image of older code.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const walk = (dir) =>
  existsSync(dir)
    ? readdirSync(dir).flatMap((name) => {
        const p = join(dir, name);
        return statSync(p).isDirectory() ? walk(p) : p.endsWith('.js') ? [p] : [];
      })
    : [];
const files = [
  ...walk(join(root, 'dist')),
  ...['package.json', 'package-lock.json', 'docker/agent.Dockerfile', 'docker/controller.Dockerfile']
    .map((f) => join(root, f))
    .filter((f) => existsSync(f)),
  join(root, 'docker/prod-modules.mjs'),
]
  .map((f) => relative(root, f))
  .sort();
const hash = createHash('sha256');
for (const f of files)
  hash
    .update(f)
    .update('\0')
    .update(readFileSync(join(root, f)))
    .update('\0');
process.stdout.write(`${hash.digest('hex').slice(0, 16)}\n`);
