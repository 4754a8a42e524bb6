import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ClaimSlot, freeSlotIds, pickClaim } from './claim.js';

const slot = (id: string, state: ClaimSlot['state'], owner?: string): ClaimSlot => ({
  id,
  state,
  ...(owner ? { owner } : {}),
});

describe('pickClaim', () => {
  const table: Array<[string, ClaimSlot[], number, ReturnType<typeof pickClaim>]> = [
    ['an empty pool under MAX: a new slot', [], 3, { kind: 'new', id: 'agent-1' }],
    [
      'a warm instance first, the lowest',
      [slot('agent-2', 'ready'), slot('agent-1', 'ready', 's1'), slot('agent-3', 'ready')],
      5,
      { kind: 'warm', id: 'agent-2' },
    ],
    [
      'a warm one still starting before a new one',
      [slot('agent-1', 'ready', 's1'), slot('agent-2', 'starting')],
      5,
      { kind: 'starting', id: 'agent-2' },
    ],
    [
      'owned ones are never claimed; a new one takes the lowest free id',
      [slot('agent-1', 'ready', 's1'), slot('agent-3', 'paused', 's2')],
      5,
      { kind: 'new', id: 'agent-2' },
    ],
    [
      'starting, paused and failed instances count toward MAX',
      [slot('agent-1', 'starting', 's1'), slot('agent-2', 'paused', 's2'), slot('agent-3', 'failed', 's3')],
      3,
      undefined,
    ],
    [
      'draining ones do not count (they are going), but keep their id',
      [slot('agent-1', 'draining'), slot('agent-2', 'ready', 's2')],
      2,
      { kind: 'new', id: 'agent-3' },
    ],
    ['a failed warm slot is not handed out', [slot('agent-1', 'failed')], 1, undefined],
  ];
  for (const [name, slots, max, want] of table) {
    it(name, () => assert.deepEqual(pickClaim(slots, max), want));
  }
});

describe('freeSlotIds', () => {
  it('skips ids held by any slot that is not stopped', () => {
    assert.deepEqual(
      freeSlotIds([slot('agent-1', 'draining'), slot('agent-2', 'stopped'), slot('agent-3', 'ready')], 3),
      ['agent-2', 'agent-4', 'agent-5'],
    );
  });
});
