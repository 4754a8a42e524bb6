import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Replica } from '../runtime/driver.js';
import { chooseVictims } from './replica-victims.js';

const r = (id: string, condition: Replica['condition'], startedAt = 0): Replica => ({
  id,
  incarnation: id,
  endpoint: { host: '127.0.0.1', port: 1 },
  condition,
  meta: { startedAt },
});

describe('chooseVictims', () => {
  const sessions: Record<string, number> = { a: 3, b: 0, c: 1, d: 0 };
  const inflight: Record<string, number> = { a: 0, b: 5, c: 0, d: 1 };
  const load = { sessions: (id: string) => sessions[id] ?? 0, inflight: (id: string) => inflight[id] ?? 0 };
  const table = [
    { name: 'nothing to remove', replicas: [r('a', 'ready'), r('b', 'ready')], keep: 2, want: [] },
    {
      name: 'a starting replica goes first',
      replicas: [r('a', 'ready'), r('s', 'starting')],
      keep: 1,
      want: ['s'],
    },
    {
      name: 'then the fewest sessions, then the fewest in flight',
      replicas: [r('a', 'ready'), r('b', 'ready'), r('c', 'ready'), r('d', 'ready')],
      keep: 2,
      want: ['d', 'b'],
    },
    {
      name: 'terminating ones are already going: not counted',
      replicas: [r('a', 'ready'), r('b', 'terminating'), r('c', 'ready')],
      keep: 1,
      want: ['c'],
    },
    {
      name: 'ties: the youngest goes',
      replicas: [r('x', 'ready', 100), r('y', 'ready', 200)],
      keep: 1,
      want: ['y'],
    },
    {
      name: 'keep 0: all of them',
      replicas: [r('a', 'ready'), r('s', 'starting')],
      keep: 0,
      want: ['s', 'a'],
    },
  ];
  for (const t of table) it(t.name, () => assert.deepEqual(chooseVictims(t.replicas, t.keep, load), t.want));
});
