import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pickTwoChoices } from './balancer.js';

const seq = (...values: number[]) => {
  let i = 0;
  return () => values[i++ % values.length]!;
};

describe('pickTwoChoices', () => {
  const load = (c: { load: number }) => c.load;
  const a = { id: 'a', load: 3 };
  const b = { id: 'b', load: 1 };
  const c = { id: 'c', load: 80 };
  const table = [
    { name: 'no candidates', cands: [], rand: seq(0), limit: 80, want: undefined },
    { name: 'one candidate with room', cands: [a], rand: seq(0), limit: 80, want: 'a' },
    { name: 'one full candidate', cands: [c], rand: seq(0), limit: 80, want: undefined },
    { name: 'less loaded of the two sampled', cands: [a, b], rand: seq(0, 0), limit: 80, want: 'b' },
    {
      name: 'tie keeps the first sample',
      cands: [a, { id: 'd', load: 3 }],
      rand: seq(0.6, 0),
      limit: 80,
      want: 'd',
    },
    {
      name: 'both sampled full falls back to a scan',
      cands: [c, { id: 'e', load: 80 }, b],
      rand: seq(0, 0),
      limit: 80,
      want: 'b',
    },
    {
      name: 'everything full',
      cands: [c, { id: 'e', load: 90 }],
      rand: seq(0, 0),
      limit: 80,
      want: undefined,
    },
  ];
  for (const row of table) {
    it(row.name, () => assert.equal(pickTwoChoices(row.cands, load, row.limit, row.rand)?.id, row.want));
  }

  it('never samples the same candidate twice', () => {
    for (const r of [0, 0.3, 0.5, 0.99]) {
      const picked = pickTwoChoices([a, b], load, 80, seq(r, r));
      assert.equal(picked?.id, 'b', `random ${r} must compare a with b`);
    }
  });
});
