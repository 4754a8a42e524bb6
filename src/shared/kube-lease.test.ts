// The Kubernetes Lease decisions as a table: expiry judged by when a record was first seen as it is.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type LeaseRecord, leaseMove, type Observed, observe } from './kube-lease.js';

const rec = (holder: string | null, renewTime: string | null, transitions = 3): LeaseRecord => ({
  holder,
  renewTime,
  transitions,
});

describe('kube-lease', () => {
  it('observe(): the clock restarts when the holder or the renew time changes, not otherwise', () => {
    const a = observe(undefined, rec('a', 't1'), 1000);
    assert.equal(a.since, 1000);
    assert.equal(observe(a, rec('a', 't1'), 5000).since, 1000, 'unchanged');
    assert.equal(observe(a, rec('a', 't2'), 5000).since, 5000, 'renewed');
    assert.equal(observe(a, rec('b', 't1'), 5000).since, 5000, 'new holder');
  });

  const table: Array<[string, Observed | undefined, number, ReturnType<typeof leaseMove>]> = [
    ['no Lease yet: create it', undefined, 0, { kind: 'create' }],
    ['ours: renew', { record: rec('me', 't'), since: 0 }, 100, { kind: 'renew' }],
    [
      'held, seen renewed 1 s ago: held',
      { record: rec('b', 't'), since: 9000 },
      10_000,
      { kind: 'held', holder: 'b' },
    ],
    [
      'held, unchanged for a whole lease: take, one more transition',
      { record: rec('b', 't'), since: 5000 },
      10_000,
      { kind: 'take', transitions: 4 },
    ],
    [
      'vacant (released): take at once',
      { record: rec('', 't'), since: 9999 },
      10_000,
      { kind: 'take', transitions: 4 },
    ],
    [
      'no holder: take',
      { record: rec(null, null, 0), since: 10_000 },
      10_000,
      { kind: 'take', transitions: 1 },
    ],
  ];
  for (const [name, observed, now, want] of table)
    it(name, () => assert.deepEqual(leaseMove('me', observed, now, 5000), want));

  it('a renewTime far in the future (a skewed writer) still expires a lease after it stops changing', () => {
    const seen = observe(undefined, rec('b', '2999-01-01T00:00:00.000Z'), 0);
    assert.deepEqual(leaseMove('me', seen, 4999, 5000), { kind: 'held', holder: 'b' });
    assert.deepEqual(leaseMove('me', seen, 5000, 5000), { kind: 'take', transitions: 4 });
  });
});
