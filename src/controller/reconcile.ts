// Pure reconciliation: given the slots and the desired count, decide which slots to create, restart,
// stop or drain. No I/O; `now` is an argument. The controller carries the plan out.
import { freeSlotIds } from './claim.js';
import { isLive, type SlotView, slotNumber } from './instance.js';

export interface ReconcileInput {
  desired: number;
  slots: readonly SlotView[];
  now: number;
}

export interface ReconcilePlan {
  /** New slot ids to start (lowest free agent-<n> first). */
  create: string[];
  /** Failed slots whose backoff has elapsed. */
  restart: string[];
  /** Ready slots to drain then stop. */
  drain: string[];
  /** Starting or failed slots to stop at once (they serve nothing). */
  remove: string[];
}

export function reconcile({ desired, slots, now }: ReconcileInput): ReconcilePlan {
  const plan: ReconcilePlan = { create: [], restart: [], drain: [], remove: [] };
  const live = slots.filter((s) => isLive(s.state));

  if (live.length > desired) {
    // Remove what serves least first: failed, then starting, then ready with fewest sessions and in-flight.
    const rank = (s: SlotView) => (s.state === 'failed' ? 0 : s.state === 'starting' ? 1 : 2);
    const victims = live
      .filter((s) => !s.keep)
      .sort(
        (a, b) =>
          rank(a) - rank(b) ||
          a.sessions - b.sessions ||
          a.inflight - b.inflight ||
          slotNumber(b.id) - slotNumber(a.id),
      )
      .slice(0, live.length - desired);
    for (const v of victims) (v.state === 'ready' ? plan.drain : plan.remove).push(v.id);
  }

  const removed = new Set([...plan.drain, ...plan.remove]);
  for (const s of live) {
    if (s.state === 'failed' && !removed.has(s.id) && (s.nextRestartAt ?? 0) <= now) plan.restart.push(s.id);
  }

  if (live.length < desired) plan.create = freeSlotIds(slots, desired - live.length);
  return plan;
}
