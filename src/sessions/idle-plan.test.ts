import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type IdleSession, idlePlan, sweepIntervalMs } from './idle-plan.js';

const s = (id: string, over: Partial<IdleSession> = {}): IdleSession => ({
  id,
  state: 'ready',
  inflight: 0,
  lastActiveAt: 0,
  ...over,
});

describe('idlePlan', () => {
  const limits = { pauseMs: 1000, deleteMs: 10_000 };
  const table: Array<[string, IdleSession[], number, string[], string[]]> = [
    ['idle less than the pause time: nothing', [s('a')], 999, [], []],
    ['idle the pause time: paused', [s('a')], 1000, ['a'], []],
    ['a request in flight is never idle', [s('a', { inflight: 1 })], 50_000, [], []],
    ['already paused: not paused again', [s('a', { state: 'paused' })], 5000, [], []],
    ['starting: not paused', [s('a', { state: 'starting' })], 5000, [], []],
    ['idle the delete time: ended, not paused', [s('a')], 10_000, [], ['a']],
    ['a paused session ends too', [s('a', { state: 'paused' })], 10_000, [], ['a']],
    [
      'each by its own last activity',
      [s('a', { lastActiveAt: 0 }), s('b', { lastActiveAt: 9500 }), s('c', { lastActiveAt: 5000 })],
      10_000,
      ['c'],
      ['a'],
    ],
  ];
  for (const [name, sessions, now, pause, end] of table) {
    it(name, () => assert.deepEqual(idlePlan(sessions, now, limits), { pause, end }));
  }

  it('0 turns pausing or ending off', () => {
    assert.deepEqual(idlePlan([s('a')], 1e9, { pauseMs: 0, deleteMs: 0 }), { pause: [], end: [] });
    assert.deepEqual(idlePlan([s('a')], 1e9, { pauseMs: 0, deleteMs: 5 }), { pause: [], end: ['a'] });
    assert.deepEqual(idlePlan([s('a')], 1e9, { pauseMs: 5, deleteMs: 0 }), { pause: ['a'], end: [] });
  });
});

describe('sweepIntervalMs', () => {
  const table: Array<[{ pauseMs: number; deleteMs: number }, number]> = [
    [{ pauseMs: 0, deleteMs: 0 }, 1000],
    [{ pauseMs: 30_000, deleteMs: 1_800_000 }, 1000],
    [{ pauseMs: 400, deleteMs: 3000 }, 100],
    [{ pauseMs: 0, deleteMs: 2000 }, 500],
    [{ pauseMs: 20, deleteMs: 0 }, 25],
  ];
  for (const [limits, ms] of table) {
    it(`${JSON.stringify(limits)} → ${ms} ms`, () => assert.equal(sweepIntervalMs(limits), ms));
  }
});
