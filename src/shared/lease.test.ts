import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type LeaseAnswer, type LeaseView, mayAct, mayScale, NO_LEASE, nextLease } from './lease.js';

const LEASE = 1000;
const leading: LeaseView = { leading: true, term: 3, holder: 'a', validUntil: 2000, unreachable: false };
const standby: LeaseView = { leading: false, term: 3, holder: 'b', validUntil: 0, unreachable: false };

describe('nextLease', () => {
  const table: Array<{
    name: string;
    view: LeaseView;
    answer: LeaseAnswer;
    want: Partial<LeaseView>;
    change?: string;
  }> = [
    {
      name: 'first election',
      view: NO_LEASE,
      answer: { kind: 'acquired', term: 1, holder: 'a', sentAt: 500 },
      want: { leading: true, term: 1, holder: 'a', validUntil: 1500 },
      change: 'elected',
    },
    {
      name: 'a renewal moves validUntil from its send time',
      view: leading,
      answer: { kind: 'renewed', sentAt: 1700 },
      want: { leading: true, term: 3, validUntil: 2700 },
    },
    {
      name: 'the same term acquired again is no new election',
      view: leading,
      answer: { kind: 'acquired', term: 3, holder: 'a', sentAt: 1800 },
      want: { leading: true, term: 3, validUntil: 2800 },
    },
    {
      name: 'a standby sees the holder',
      view: NO_LEASE,
      answer: { kind: 'held-by-other', term: 4, holder: 'b' },
      want: { leading: false, term: 4, holder: 'b' },
    },
    {
      name: 'the renewal refused: deposed',
      view: leading,
      answer: { kind: 'lost' },
      want: { leading: false, validUntil: 0 },
      change: 'deposed',
    },
    {
      name: 'a leader that sees another holder is deposed',
      view: leading,
      answer: { kind: 'held-by-other', term: 4, holder: 'b' },
      want: { leading: false, term: 4, holder: 'b' },
      change: 'deposed',
    },
    {
      name: 'Redis unreachable: still leading, flagged',
      view: leading,
      answer: { kind: 'unreachable' },
      want: { leading: true, term: 3, validUntil: 2000, unreachable: true },
    },
    {
      name: 'a standby takes over',
      view: standby,
      answer: { kind: 'acquired', term: 4, holder: 'a', sentAt: 5000 },
      want: { leading: true, term: 4, validUntil: 6000 },
      change: 'elected',
    },
  ];
  for (const t of table) {
    it(t.name, () => {
      const { view, change } = nextLease(t.view, t.answer, LEASE);
      for (const [k, v] of Object.entries(t.want)) assert.equal(view[k as keyof LeaseView], v, k);
      assert.equal(change, t.change);
    });
  }
});

describe('mayAct and mayScale', () => {
  const table = [
    { name: 'within the lease', view: leading, now: 1999, act: true, scale: true },
    { name: 'the lease may have run out', view: leading, now: 2000, act: false, scale: false },
    {
      name: 'unreachable within the lease',
      view: { ...leading, unreachable: true },
      now: 1500,
      act: true,
      scale: false,
    },
    { name: 'a standby', view: standby, now: 0, act: false, scale: false },
  ];
  for (const t of table) {
    it(t.name, () => {
      assert.equal(mayAct(t.view, t.now), t.act);
      assert.equal(mayScale(t.view, t.now), t.scale);
    });
  }
});
