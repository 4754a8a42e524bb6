import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SlotView } from './instance.js';
import { type ReconcilePlan, reconcile } from './reconcile.js';
import { restartDelay } from './restart-backoff.js';

const slot = (id: string, state: SlotView['state'], extra: Partial<SlotView> = {}): SlotView => ({
  id,
  state,
  inflight: 0,
  sessions: 0,
  ...extra,
});
const empty: ReconcilePlan = { create: [], restart: [], drain: [], remove: [] };

describe('reconcile', () => {
  const table: Array<{
    name: string;
    desired: number;
    slots: SlotView[];
    now?: number;
    want: Partial<ReconcilePlan>;
  }> = [
    {
      name: 'empty pool creates agent-1..n',
      desired: 3,
      slots: [],
      want: { create: ['agent-1', 'agent-2', 'agent-3'] },
    },
    { name: 'steady state does nothing', desired: 1, slots: [slot('agent-1', 'ready')], want: {} },
    {
      name: 'fills the lowest free ids',
      desired: 3,
      slots: [slot('agent-2', 'ready')],
      want: { create: ['agent-1', 'agent-3'] },
    },
    {
      name: 'a draining slot keeps its id but does not count',
      desired: 1,
      slots: [slot('agent-1', 'draining')],
      want: { create: ['agent-2'] },
    },
    {
      name: 'a stopped slot frees its id',
      desired: 1,
      slots: [slot('agent-1', 'stopped')],
      want: { create: ['agent-1'] },
    },
    {
      name: 'a failed slot counts as live and waits for its backoff',
      desired: 1,
      slots: [slot('agent-1', 'failed', { nextRestartAt: 2000 })],
      now: 1000,
      want: {},
    },
    {
      name: 'a failed slot restarts once its backoff elapsed',
      desired: 1,
      slots: [slot('agent-1', 'failed', { nextRestartAt: 1000 })],
      now: 1000,
      want: { restart: ['agent-1'] },
    },
    {
      name: 'scale-down drains the ready slot with the fewest sessions, then in-flight',
      desired: 1,
      slots: [
        slot('agent-1', 'ready', { sessions: 2, inflight: 0 }),
        slot('agent-2', 'ready', { sessions: 0, inflight: 5 }),
      ],
      want: { drain: ['agent-2'] },
    },
    {
      name: 'scale-down ties go to the highest id',
      desired: 1,
      slots: [slot('agent-1', 'ready'), slot('agent-2', 'ready'), slot('agent-3', 'ready')],
      want: { drain: ['agent-3', 'agent-2'] },
    },
    {
      name: 'scale-down removes failed and starting slots before ready ones',
      desired: 1,
      slots: [
        slot('agent-1', 'ready'),
        slot('agent-2', 'starting'),
        slot('agent-3', 'failed', { nextRestartAt: 0 }),
      ],
      want: { remove: ['agent-3', 'agent-2'] },
    },
    {
      name: 'a failed slot chosen for removal is not restarted',
      desired: 0,
      slots: [slot('agent-1', 'failed', { nextRestartAt: 0 })],
      want: { remove: ['agent-1'] },
    },
    {
      name: 'scale to zero drains everything',
      desired: 0,
      slots: [slot('agent-1', 'ready'), slot('agent-2', 'ready', { inflight: 1 })],
      want: { drain: ['agent-1', 'agent-2'] },
    },
  ];
  for (const row of table) {
    it(row.name, () => {
      assert.deepEqual(reconcile({ desired: row.desired, slots: row.slots, now: row.now ?? 0 }), {
        ...empty,
        ...row.want,
      });
    });
  }
});

describe('restartDelay', () => {
  const table = [
    { crashes: 0, want: 0 },
    { crashes: 1, want: 1000 },
    { crashes: 2, want: 2000 },
    { crashes: 4, want: 8000 },
    { crashes: 10, want: 60_000 },
    { crashes: 1000, want: 60_000 },
  ];
  for (const { crashes, want } of table) {
    it(`${crashes} crashes → ${want} ms`, () => assert.equal(restartDelay(crashes, 1000, 60_000), want));
  }
});
