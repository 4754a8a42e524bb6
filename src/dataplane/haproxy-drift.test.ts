import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { driftOf, type Programmed } from './haproxy-drift.js';

const isSlot = (id: string) => /^agent-\d+$/.test(id);
const prog = (entries: Array<[string, Programmed['state'], number]>) =>
  new Map(entries.map(([id, state, at]) => [id, { state, at }]));

describe('driftOf', () => {
  const cases: Array<{
    name: string;
    programmed: Map<string, Programmed>;
    rows: Array<[string, string]>;
    want: { lost: string[]; stray: string[] };
  }> = [
    {
      name: 'in line: ready ones up (or down by health), the free slots in maintenance',
      programmed: prog([
        ['agent-1', 'ready', 0],
        ['agent-2', 'ready', 0],
      ]),
      rows: [
        ['agent-1', 'UP'],
        ['agent-2', 'DOWN 1/2'],
        ['agent-3', 'MAINT'],
      ],
      want: { lost: [], stray: [] },
    },
    {
      name: 'a ready one found in maintenance is lost',
      programmed: prog([['agent-1', 'ready', 0]]),
      rows: [['agent-1', 'MAINT']],
      want: { lost: ['agent-1'], stray: [] },
    },
    {
      name: 'a ready one HAProxy does not have is lost',
      programmed: prog([['agent-9', 'ready', 0]]),
      rows: [],
      want: { lost: ['agent-9'], stray: [] },
    },
    {
      name: 'programmed after the reading began: not judged',
      programmed: prog([['agent-1', 'ready', 100]]),
      rows: [['agent-1', 'MAINT']],
      want: { lost: [], stray: [] },
    },
    {
      name: 'a free slot taking traffic is stray',
      programmed: prog([]),
      rows: [
        ['agent-4', 'UP'],
        ['agent-5', 'MAINT (resolution)'],
      ],
      want: { lost: [], stray: ['agent-4'] },
    },
    {
      name: 'a draining one back up is stray; one in maintenance is in line',
      programmed: prog([
        ['agent-1', 'draining', 0],
        ['agent-2', 'draining', 0],
      ]),
      rows: [
        ['agent-1', 'UP'],
        ['agent-2', 'MAINT'],
      ],
      want: { lost: [], stray: ['agent-1'] },
    },
    {
      name: 'a server that is not a slot and not ours is left alone',
      programmed: prog([]),
      rows: [['router', 'UP']],
      want: { lost: [], stray: [] },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const rows = c.rows.map(([server, status]) => ({ server, status }));
      assert.deepEqual(driftOf(c.programmed, rows, 50, isSlot), c.want);
    });
  }
});
