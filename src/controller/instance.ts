// Instance slots as the controller sees them. A slot (agent-<n>) keeps its id across restarts, like a
// pod keeps its name; each run of it is an incarnation with its own process or container.

import type { InstanceState } from '../core/pool.js';

export { type InstanceState, isLive } from '../core/pool.js';

export interface SlotView {
  id: string;
  state: InstanceState;
  inflight: number;
  /** Sessions pinned to this instance by the router (0 when affinity is off). */
  sessions: number;
  /** For failed slots: when the backoff allows the next restart (ms since epoch). */
  nextRestartAt?: number;
  /** Never picked to go when scaling down (a slot being restarted on request). */
  keep?: boolean;
}

export function slotNumber(id: string): number {
  const n = Number(id.slice(id.lastIndexOf('-') + 1));
  return Number.isInteger(n) ? n : Number.NaN;
}
