import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { YggError } from '../core/errors.js';
import { nextLimits } from './scaling-limits.js';

describe('nextLimits', () => {
  const current = { minInstances: 1, maxInstances: 10 };
  const table: Array<{ name: string; body: unknown; want: string }> = [
    { name: 'both', body: { minInstances: 2, maxInstances: 4 }, want: '2..4' },
    { name: 'only max', body: { maxInstances: 3 }, want: '1..3' },
    { name: 'only min, to zero', body: { minInstances: 0 }, want: '0..10' },
    {
      name: 'min above max',
      body: { minInstances: 5, maxInstances: 2 },
      want: 'minInstances=5 > maxInstances=2',
    },
    {
      name: 'min above the current max',
      body: { minInstances: 11 },
      want: 'minInstances=11 > maxInstances=10',
    },
    {
      name: 'max 0',
      body: { maxInstances: 0 },
      want: 'maxInstances=0 is not allowed: expected an integer from 1 to 1000',
    },
    { name: 'a string', body: { minInstances: '3' }, want: 'minInstances="3" is not allowed' },
    { name: 'a fraction', body: { maxInstances: 2.5 }, want: 'maxInstances=2.5 is not allowed' },
    { name: 'an unknown field', body: { replicas: 3 }, want: 'unknown field replicas' },
    { name: 'nothing', body: {}, want: 'nothing to change' },
    { name: 'not an object', body: [1], want: 'must be a JSON object' },
  ];
  for (const row of table) {
    it(row.name, () => {
      const got = nextLimits(current, row.body);
      if (got instanceof YggError) {
        assert.equal(got.code, 'YGG_ERR_VALIDATION');
        assert.ok(got.message.includes(row.want), got.message);
      } else assert.equal(`${got.minInstances}..${got.maxInstances}`, row.want);
    });
  }
});
