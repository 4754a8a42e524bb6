import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AccessQuestion, bearerOf, decideAccess } from './policy.js';

const admin = { name: 'ops', role: 'admin' as const };
const reader = { name: 'grafana', role: 'read' as const };
const client = { name: 'tenant-a', role: 'client' as const };

describe('decideAccess', () => {
  const base: AccessQuestion = {
    need: 'read',
    mode: 'auto',
    anyKey: true,
    adminKey: true,
    presented: 'none',
  };
  const table: Array<{ name: string; q: Partial<AccessQuestion>; want: string }> = [
    { name: '/health is always open', q: { need: 'open', mode: 'always' }, want: 'ok' },
    { name: 'read, auto, no key exists: open', q: { anyKey: false, adminKey: false }, want: 'ok' },
    { name: 'read, auto, keys exist, none sent: 401', q: {}, want: 'YGG_ERR_UNAUTHORIZED' },
    { name: 'read, auto, a read key: ok', q: { presented: reader }, want: 'ok grafana' },
    { name: 'read, auto, an admin key: ok', q: { presented: admin }, want: 'ok ops' },
    { name: 'read, a client key: 403', q: { presented: client }, want: 'YGG_ERR_FORBIDDEN' },
    { name: 'read, an invalid key: 401', q: { presented: 'invalid' }, want: 'YGG_ERR_UNAUTHORIZED' },
    { name: 'read, never: open even with keys', q: { mode: 'never' }, want: 'ok' },
    {
      name: 'read, always, no key exists: 401',
      q: { mode: 'always', anyKey: false, adminKey: false },
      want: 'YGG_ERR_UNAUTHORIZED',
    },
    {
      name: 'admin, no admin key exists: 403 not configured',
      q: { need: 'admin', adminKey: false },
      want: 'YGG_ERR_AUTH_NOT_CONFIGURED',
    },
    {
      name: 'admin, mode never does not open it',
      q: { need: 'admin', mode: 'never', adminKey: false, anyKey: false },
      want: 'YGG_ERR_AUTH_NOT_CONFIGURED',
    },
    { name: 'admin, none sent: 401', q: { need: 'admin' }, want: 'YGG_ERR_UNAUTHORIZED' },
    { name: 'admin, a read key: 403', q: { need: 'admin', presented: reader }, want: 'YGG_ERR_FORBIDDEN' },
    { name: 'admin, an admin key: ok', q: { need: 'admin', presented: admin }, want: 'ok ops' },
  ];
  for (const row of table) {
    it(row.name, () => {
      const v = decideAccess({ ...base, ...row.q });
      const shown = v.ok ? `ok${v.principal ? ` ${v.principal.name}` : ''}` : v.error.code;
      assert.equal(shown, row.want);
    });
  }
});

describe('bearerOf', () => {
  const table: Array<[string | undefined, string | undefined]> = [
    ['Bearer ygg_abc', 'ygg_abc'],
    ['bearer  ygg_abc ', 'ygg_abc'],
    ['Basic dXNlcjpwYXNz', undefined],
    ['Bearer', undefined],
    ['Bearer a b', undefined],
    [undefined, undefined],
  ];
  for (const [h, want] of table) it(`${JSON.stringify(h)} → ${want}`, () => assert.equal(bearerOf(h), want));
});
