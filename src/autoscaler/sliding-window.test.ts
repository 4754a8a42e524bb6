import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SlidingWindow } from './sliding-window.js';

describe('SlidingWindow.average', () => {
  const table: Array<{
    name: string;
    windowMs: number;
    bucketMs: number;
    samples: Array<[at: number, value: number]>;
    now: number;
    want: number | undefined;
  }> = [
    { name: 'no samples → undefined', windowMs: 1000, bucketMs: 100, samples: [], now: 0, want: undefined },
    { name: 'one sample', windowMs: 1000, bucketMs: 100, samples: [[50, 4]], now: 60, want: 4 },
    {
      name: 'samples in one bucket are averaged first',
      windowMs: 1000,
      bucketMs: 100,
      // bucket 0 averages to 2, bucket 1 to 10: the mean of buckets is 6, not the mean of samples (4.67).
      samples: [
        [0, 1],
        [50, 3],
        [150, 10],
      ],
      now: 150,
      want: 6,
    },
    {
      name: 'empty buckets are not counted',
      windowMs: 1000,
      bucketMs: 100,
      samples: [
        [0, 2],
        [900, 4],
      ],
      now: 900,
      want: 3,
    },
    {
      name: 'a bucket that starts exactly windowMs ago is out (half-open window)',
      windowMs: 1000,
      bucketMs: 100,
      samples: [
        [0, 100],
        [500, 2],
      ],
      now: 1000,
      want: 2,
    },
    {
      name: 'the oldest bucket still inside the window counts',
      windowMs: 1000,
      bucketMs: 100,
      samples: [
        [0, 100],
        [500, 2],
      ],
      now: 999,
      want: 51,
    },
    {
      name: 'all samples aged out → undefined',
      windowMs: 1000,
      bucketMs: 100,
      samples: [[0, 5]],
      now: 5000,
      want: undefined,
    },
    {
      name: 'samples after now are not counted',
      windowMs: 1000,
      bucketMs: 100,
      samples: [
        [100, 1],
        [700, 9],
      ],
      now: 300,
      want: 1,
    },
    {
      name: 'a sample older than the window of the newest one is dropped',
      windowMs: 1000,
      bucketMs: 100,
      samples: [
        [5000, 1],
        [3000, 50],
      ],
      now: 5000,
      want: 1,
    },
    {
      name: 'a slot reused after wrap-around forgets its old bucket',
      windowMs: 300,
      bucketMs: 100,
      samples: [
        [0, 100],
        [300, 1],
      ],
      now: 300,
      want: 1,
    },
    {
      name: 'non-finite values are ignored',
      windowMs: 1000,
      bucketMs: 100,
      samples: [
        [0, Number.NaN],
        [0, 3],
      ],
      now: 0,
      want: 3,
    },
  ];
  for (const row of table) {
    it(row.name, () => {
      const w = new SlidingWindow(row.windowMs, row.bucketMs);
      for (const [at, value] of row.samples) w.record(at, value);
      assert.equal(w.average(row.now), row.want);
    });
  }
});

describe('SlidingWindow memory', () => {
  it('stays bounded to one slot per bucket over a long run', () => {
    const w = new SlidingWindow(1000, 100);
    for (let t = 0; t < 1_000_000; t += 50) w.record(t, t % 7);
    const ring = (w as unknown as { ring: unknown[] }).ring;
    assert.equal(ring.length, 10);
    // Only the last second is averaged: buckets 999000..999900 each hold two samples.
    assert.ok(w.average(999_999) !== undefined);
  });
});

describe('SlidingWindow options', () => {
  const table: Array<{ name: string; windowMs: number; bucketMs: number; want: RegExp }> = [
    { name: 'bucketMs 0', windowMs: 1000, bucketMs: 0, want: /bucketMs=0/ },
    { name: 'bucketMs NaN', windowMs: 1000, bucketMs: Number.NaN, want: /bucketMs=NaN/ },
    { name: 'window shorter than a bucket', windowMs: 50, bucketMs: 100, want: /windowMs=50/ },
    { name: 'too many buckets', windowMs: 1e9, bucketMs: 1, want: /at most 100000/ },
  ];
  for (const row of table) {
    it(`refuses ${row.name}`, () => {
      assert.throws(() => new SlidingWindow(row.windowMs, row.bucketMs), {
        name: 'TypeError',
        message: row.want,
      });
    });
  }
});
