// Keeps docs/live-feed.md true: every event type the controller emits and every field of the feed's
// payloads (src/observability/protocol.ts) is documented.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LIVE_EVENTS } from '../../src/observability/protocol.js';
import { ROOT } from './prom-server.js';

const doc = readFileSync(join(ROOT, 'docs/live-feed.md'), 'utf8');
const source = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/** The members of `export type Name = | 'a' | 'b'` in a source file. */
function unionMembers(text: string, name: string): string[] {
  const m = new RegExp(`export type ${name} =([^;]+);`).exec(text);
  assert.ok(m, `no type ${name}`);
  return [...m[1]!.matchAll(/'([\w-]+)'/g)].map((x) => x[1]!);
}

/** The field names of `export interface Name { ... }` (one level). */
function fields(text: string, name: string): string[] {
  const m = new RegExp(`export interface ${name}[^{]*\\{([\\s\\S]*?)\\n\\}`).exec(text);
  assert.ok(m, `no interface ${name}`);
  return [...m[1]!.matchAll(/^ {2}(\w+)\??:/gm)].map((x) => x[1]!);
}

describe('docs/live-feed.md', () => {
  it('documents every Socket.IO event the server sends', () => {
    for (const name of Object.values(LIVE_EVENTS))
      assert.match(doc, new RegExp(`^## \`${name}\`$`, 'm'), name);
  });

  it('documents every controller event type', () => {
    const types = unionMembers(source('src/core/events.ts'), 'EventType');
    assert.ok(types.length >= 9);
    for (const t of types) assert.match(doc, new RegExp(`^\\| \`${t}\` \\|`, 'm'), `event type ${t}`);
  });

  it('documents every field of hello, stats and their instances', () => {
    const protocol = source('src/observability/protocol.ts');
    for (const iface of ['LiveHello', 'LiveStats', 'LiveInstance'])
      for (const f of fields(protocol, iface)) assert.match(doc, new RegExp(`\`${f}\``), `${iface}.${f}`);
  });
});
