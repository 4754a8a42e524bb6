import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exponentialDelay, fullJitter } from './backoff.js';

describe('exponentialDelay', () => {
  const table: Array<{ name: string; n: number; base: number; cap: number; want: number }> = [
    { name: 'first attempt is the base', n: 1, base: 1000, cap: 60_000, want: 1000 },
    { name: 'second doubles', n: 2, base: 1000, cap: 60_000, want: 2000 },
    { name: 'sixth: 32 s', n: 6, base: 1000, cap: 60_000, want: 32_000 },
    { name: 'seventh is capped', n: 7, base: 1000, cap: 60_000, want: 60_000 },
    { name: 'a huge attempt stays at the cap', n: 10_000, base: 25, cap: 250, want: 250 },
    { name: 'cap below base', n: 1, base: 100, cap: 40, want: 40 },
    { name: 'zero base', n: 5, base: 0, cap: 40, want: 0 },
  ];
  for (const r of table) it(r.name, () => assert.equal(exponentialDelay(r.n, r.base, r.cap), r.want));

  const bad: Array<{ name: string; args: [number, number, number]; want: RegExp }> = [
    { name: 'attempt 0', args: [0, 1, 1], want: /attempt=0/ },
    { name: 'fractional attempt', args: [1.5, 1, 1], want: /attempt=1.5/ },
    { name: 'negative base', args: [1, -1, 1], want: /baseMs=-1/ },
    { name: 'infinite cap', args: [1, 1, Number.POSITIVE_INFINITY], want: /capMs=Infinity/ },
  ];
  for (const r of bad) {
    it(`refuses ${r.name}`, () =>
      assert.throws(() => exponentialDelay(...r.args), { name: 'TypeError', message: r.want }));
  }
});

describe('fullJitter', () => {
  const table: Array<{ name: string; n: number; random: number; want: number }> = [
    { name: 'first retry, middle of the range', n: 1, random: 0.5, want: 12.5 },
    { name: 'random 0 waits not at all', n: 3, random: 0, want: 0 },
    { name: 'second retry doubles the range', n: 2, random: 0.5, want: 25 },
    { name: 'fifth retry is capped at 250', n: 5, random: 0.5, want: 125 },
  ];
  for (const r of table) it(r.name, () => assert.equal(fullJitter(r.n, r.random, 25, 250), r.want));

  it('stays below the cap for random just under 1', () =>
    assert.ok(fullJitter(20, 0.999_999, 25, 250) < 250));

  for (const random of [1, -0.1, Number.NaN]) {
    it(`refuses random=${random}`, () =>
      assert.throws(() => fullJitter(1, random, 25, 250), { name: 'TypeError', message: /random=/ }));
  }
});
