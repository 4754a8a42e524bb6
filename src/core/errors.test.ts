import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ERROR_CATALOGUE, YggError } from './errors.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

describe('error catalogue', () => {
  for (const [code, spec] of Object.entries(ERROR_CATALOGUE)) {
    it(`${code} is documented in docs/errors.md with its status`, () => {
      const row = doc.split('\n').find((l) => new RegExp(`^\\|\\s*\`${code}\`\\s*\\|`).test(l));
      assert.ok(row, `${code} has no row in docs/errors.md`);
      assert.equal(row.split('|')[2]!.trim(), spec.status === 0 ? '—' : String(spec.status));
    });
  }

  it('documents no code that does not exist', () => {
    const documented = [...doc.matchAll(/^\|\s*`(YGG_ERR_\w+)`\s*\|/gm)].map((m) => m[1]);
    assert.deepEqual(documented.sort(), Object.keys(ERROR_CATALOGUE).sort());
  });

  it('serialises to the {error:{code,message}} body with Retry-After seconds kept apart', () => {
    const err = new YggError('YGG_ERR_CAPACITY', 'full', { retryAfterSeconds: 2 });
    assert.deepEqual(err.toBody(), { error: { code: 'YGG_ERR_CAPACITY', message: 'full' } });
    assert.equal(err.status, 503);
    assert.equal(err.retryAfterSeconds, 2);
  });
});
