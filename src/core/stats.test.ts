import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { median, percentile, round } from './stats.js';

describe('percentile', () => {
  const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted on purpose
  const table = [
    { p: 50, want: 50 },
    { p: 95, want: 95 },
    { p: 99, want: 99 },
    { p: 100, want: 100 },
    { p: 0, want: 1 },
  ];
  for (const { p, want } of table)
    it(`p${p} of 1..100 is ${want}`, () => assert.equal(percentile(xs, p), want));
  it('is NaN on no samples', () => assert.ok(Number.isNaN(percentile([], 50))));
  it('median of one sample is that sample', () => assert.equal(median([7]), 7));
  it('rounds to the given digits', () => assert.equal(round(1.2345, 2), 1.23));
});
