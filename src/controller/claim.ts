// Pure: which instance a new dedicated session gets. A warm one (ready, nobody's) at once; else one of
// the warm pool still starting (it is closer to ready than a new one); else a new slot, but only while
// the live instances (starting ones included) are fewer than MAX_INSTANCES, so a burst of new sessions
// can never overshoot it. No I/O; the controller carries the answer out.
import { type InstanceState, isLive, slotNumber } from './instance.js';

export interface ClaimSlot {
  id: string;
  state: InstanceState;
  /** The session that owns it; undefined for the warm pool. */
  owner?: string;
}

export type Claim = { kind: 'warm' | 'starting' | 'new'; id: string } | undefined;

export function pickClaim(slots: readonly ClaimSlot[], maxInstances: number): Claim {
  const free = slots.filter((s) => s.owner === undefined);
  const byNumber = (a: ClaimSlot, b: ClaimSlot) => slotNumber(a.id) - slotNumber(b.id);
  const ready = free.filter((s) => s.state === 'ready').sort(byNumber)[0];
  if (ready) return { kind: 'warm', id: ready.id };
  const starting = free.filter((s) => s.state === 'starting').sort(byNumber)[0];
  if (starting) return { kind: 'starting', id: starting.id };
  const live = slots.filter((s) => isLive(s.state)).length;
  if (live >= maxInstances) return undefined;
  return { kind: 'new', id: freeSlotIds(slots, 1)[0]! };
}

/** The lowest `count` agent-<n> ids no slot holds (draining and stopping slots still hold theirs). */
export function freeSlotIds(slots: readonly { id: string; state: InstanceState }[], count: number): string[] {
  const taken = new Set(slots.filter((s) => s.state !== 'stopped').map((s) => slotNumber(s.id)));
  const out: string[] = [];
  for (let n = 1; out.length < count; n++) if (!taken.has(n)) out.push(`agent-${n}`);
  return out;
}
