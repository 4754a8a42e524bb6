import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stallThreshold, stallVerdict, TtfbWindow } from './stall.js';

const windowOf = (values: number[], size?: number) => {
  const w = new TtfbWindow(size);
  for (const v of values) w.add(v);
  return w;
};

describe('TtfbWindow', () => {
  it('is empty at first', () => assert.equal(new TtfbWindow().summary(), undefined));
  it('gives p99 and max of what it holds', () => {
    const w = windowOf(Array.from({ length: 100 }, (_, i) => i + 1));
    assert.deepEqual(w.summary(), { p99: 100, max: 100 });
    const w2 = windowOf([...new Array(990).fill(10), ...new Array(10).fill(500)]);
    assert.deepEqual(w2.summary(), { p99: 500, max: 500 });
  });
  it('forgets the oldest samples beyond its size', () => {
    const w = windowOf([1000, 1, 2, 3], 3);
    assert.deepEqual([w.size, w.summary()?.max], [3, 3]);
  });
});

describe('stallThreshold', () => {
  const opts = { minStallMs: 2000 };
  const table: Array<{ name: string; samples: number[]; want: number }> = [
    { name: 'too few answers: 10 × the minimum', samples: [5, 5, 5], want: 20_000 },
    { name: 'a fast pool: the minimum', samples: new Array(100).fill(30), want: 2000 },
    { name: 'a slow pool: 10 × its p99', samples: new Array(100).fill(1000), want: 10_000 },
    {
      name: 'a rare long answer: twice the longest seen',
      samples: [...new Array(200).fill(20), 4000],
      want: 8000,
    },
  ];
  for (const row of table)
    it(row.name, () => assert.equal(stallThreshold(windowOf(row.samples), opts), row.want));
});

describe('stallVerdict', () => {
  const table: Array<{
    name: string;
    waiting: number[];
    lastResponseAt?: number;
    now: number;
    threshold?: number;
    want: 'ok' | 'suspect' | 'lone' | 'stalled';
  }> = [
    { name: 'nothing waiting', waiting: [], now: 10_000, want: 'ok' },
    { name: 'one request past the threshold is a suspect', waiting: [0], now: 3000, want: 'suspect' },
    { name: 'one request past twice the threshold: lone', waiting: [0], now: 4000, want: 'lone' },
    { name: 'two requests past the threshold, no answer', waiting: [0, 500], now: 3000, want: 'stalled' },
    { name: 'two waiting, one not long enough yet', waiting: [0, 1500], now: 3000, want: 'suspect' },
    { name: 'waiting, none long enough', waiting: [1500, 1600], now: 3000, want: 'ok' },
    {
      name: 'an answer started within the threshold: making progress',
      waiting: [0, 100, 200],
      lastResponseAt: 2000,
      now: 3000,
      want: 'ok',
    },
    {
      name: 'the last answer is older than the threshold',
      waiting: [1000, 1100],
      lastResponseAt: 900,
      now: 3200,
      want: 'stalled',
    },
    { name: 'detection off (threshold 0)', waiting: [0, 0, 0], now: 10_000, threshold: 0, want: 'ok' },
  ];
  for (const row of table) {
    it(row.name, () => {
      const got = stallVerdict(
        { waitingSince: row.waiting, lastResponseAt: row.lastResponseAt },
        row.now,
        row.threshold ?? 2000,
      );
      assert.equal(got, row.want);
    });
  }
});
