import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Bucket,
  histogramQuantile,
  type RequestTotals,
  Ring,
  RollingTotals,
  windowStats,
} from './stats.js';

const INF = Number.POSITIVE_INFINITY;
const b = (...pairs: Array<[number, number]>): Bucket[] => pairs.map(([le, count]) => ({ le, count }));

describe('histogramQuantile', () => {
  const table: Array<{ name: string; q: number; buckets: Bucket[]; want: number | null }> = [
    { name: 'no buckets', q: 0.95, buckets: [], want: null },
    { name: 'no observations', q: 0.95, buckets: b([0.1, 0], [INF, 0]), want: null },
    {
      name: 'all in the first bucket interpolates from 0',
      q: 0.5,
      buckets: b([0.1, 10], [INF, 10]),
      want: 0.05,
    },
    {
      name: 'interpolates inside the holding bucket',
      q: 0.95,
      buckets: b([0.1, 50], [0.2, 100], [INF, 100]),
      want: 0.19,
    },
    {
      name: 'quantile in +Inf answers the highest finite bound',
      q: 0.95,
      buckets: b([0.1, 10], [0.2, 20], [INF, 100]),
      want: 0.2,
    },
    { name: 'only +Inf', q: 0.5, buckets: b([INF, 5]), want: null },
    {
      name: 'empty lower buckets are skipped',
      q: 0.5,
      buckets: b([0.01, 0], [0.1, 0], [1, 4], [INF, 4]),
      want: 0.55,
    },
  ];
  for (const row of table) {
    it(row.name, () => {
      const got = histogramQuantile(row.q, row.buckets);
      if (row.want === null) assert.equal(got, null);
      else assert.ok(got !== null && Math.abs(got - row.want) < 1e-9, `got ${got}, want ${row.want}`);
    });
  }
});

const totals = (at: number, requests: number, errors: number, fast: number): RequestTotals => ({
  at,
  requests,
  errors,
  // `fast` requests took <= 10 ms, the rest <= 1 s.
  buckets: b([0.01, fast], [1, requests], [INF, requests]),
});

describe('windowStats', () => {
  const table: Array<{ name: string; older: RequestTotals; newer: RequestTotals; want: unknown }> = [
    {
      name: 'idle window',
      older: totals(0, 10, 0, 10),
      newer: totals(1000, 10, 0, 10),
      want: { requestsPerSecond: 0, errorRatio: null, p95LatencyMs: null },
    },
    {
      name: '100 requests in 2 s, 5 errors, all fast',
      older: totals(0, 0, 0, 0),
      newer: totals(2000, 100, 5, 100),
      want: { requestsPerSecond: 50, errorRatio: 0.05, p95LatencyMs: 9.5 },
    },
    {
      name: 'only the window counts, not the totals before it',
      older: totals(0, 1000, 0, 0),
      newer: totals(1000, 1100, 0, 100),
      want: { requestsPerSecond: 100, errorRatio: 0, p95LatencyMs: 9.5 },
    },
    {
      name: 'a counter that went down counts as nothing',
      older: totals(0, 50, 1, 50),
      newer: totals(1000, 3, 0, 3),
      want: { requestsPerSecond: 0, errorRatio: null, p95LatencyMs: null },
    },
  ];
  for (const row of table) {
    it(row.name, () => {
      const got = windowStats(row.older, row.newer);
      const rounded = {
        ...got,
        p95LatencyMs: got.p95LatencyMs === null ? null : +got.p95LatencyMs.toFixed(6),
      };
      assert.deepEqual(rounded, row.want);
    });
  }
});

describe('RollingTotals', () => {
  it('measures over the last window and forgets older samples', () => {
    const r = new RollingTotals(2000);
    assert.deepEqual(r.push(totals(0, 0, 0, 0)), {
      requestsPerSecond: 0,
      errorRatio: null,
      p95LatencyMs: null,
    });
    assert.equal(r.push(totals(1000, 10, 0, 10)).requestsPerSecond, 10);
    assert.equal(r.push(totals(2000, 30, 0, 30)).requestsPerSecond, 15);
    // The sample at 0 is now outside the 2 s window: 1000 → 3000 only.
    assert.equal(r.push(totals(3000, 30, 0, 30)).requestsPerSecond, 10);
    assert.equal(r.push(totals(5000, 30, 0, 30)).requestsPerSecond, 0);
  });

  it('refuses a window that is not positive', () => {
    assert.throws(() => new RollingTotals(0), /windowMs=0/);
  });
});

describe('Ring', () => {
  it('keeps the last `capacity` items in order', () => {
    const r = new Ring<number>(3);
    for (let i = 1; i <= 5; i++) r.push(i);
    assert.deepEqual(r.toArray(), [3, 4, 5]);
  });
});
