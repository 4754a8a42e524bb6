import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SlotView } from './instance.js';
import { type ReconcilePlan, reconcile } from './reconcile.js';
import { type Death, planRestart, type RestartPlan, wasKilled } from './restart-backoff.js';

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
    {
      name: 'a slot being restarted on request is never the victim',
      desired: 1,
      slots: [slot('agent-1', 'ready', { inflight: 5 }), slot('agent-2', 'starting', { keep: true })],
      want: { drain: ['agent-1'] },
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

describe('planRestart', () => {
  const base = 1000;
  const max = 60_000;
  const table: Array<{ name: string; death: Death; want: RestartPlan }> = [
    {
      name: 'first crash at start-up restarts at once',
      death: { crashesBefore: 0, readyForMs: undefined, killed: false },
      want: { crashes: 1, delayMs: 0 },
    },
    {
      name: 'second crash waits RESTART_BACKOFF_MS',
      death: { crashesBefore: 1, readyForMs: undefined, killed: false },
      want: { crashes: 2, delayMs: 1000 },
    },
    {
      name: 'third crash doubles it',
      death: { crashesBefore: 2, readyForMs: undefined, killed: true },
      want: { crashes: 3, delayMs: 2000 },
    },
    {
      name: 'the backoff stops at RESTART_BACKOFF_MAX_MS',
      death: { crashesBefore: 50, readyForMs: undefined, killed: false },
      want: { crashes: 51, delayMs: 60_000 },
    },
    {
      name: 'an exit soon after becoming ready is a crash',
      death: { crashesBefore: 2, readyForMs: 3000, killed: false },
      want: { crashes: 3, delayMs: 2000 },
    },
    {
      name: 'a kill of a ready instance is not a crash, even soon after ready',
      death: { crashesBefore: 2, readyForMs: 500, killed: true },
      want: { crashes: 0, delayMs: 0 },
    },
    {
      name: 'an exit after running a while is not a crash loop',
      death: { crashesBefore: 5, readyForMs: 10_000, killed: false },
      want: { crashes: 0, delayMs: 0 },
    },
  ];
  for (const row of table) {
    it(row.name, () => assert.deepEqual(planRestart(row.death, base, max), row.want));
  }

  const kills: Array<[{ code: number | null; signal: string | null }, boolean]> = [
    [{ code: null, signal: 'SIGKILL' }, true],
    [{ code: null, signal: 'SIGTERM' }, true],
    [{ code: 137, signal: null }, true],
    [{ code: 143, signal: null }, true],
    [{ code: null, signal: 'SIGSEGV' }, false],
    [{ code: 1, signal: null }, false],
    [{ code: 0, signal: null }, false],
  ];
  for (const [exit, want] of kills) {
    it(`wasKilled(${JSON.stringify(exit)}) = ${want}`, () => assert.equal(wasKilled(exit), want));
  }
});
