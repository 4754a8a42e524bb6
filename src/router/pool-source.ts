// What the router needs from the control plane, declared here by the router that uses it: the pool's
// members as they change, and a few requests back. The controller in the same process provides it
// (platform.ts), or the shared state in Redis does for a router running on its own (shared/).
import type { InstanceState, PoolMember, PoolOutlook } from '../core/pool.js';

export interface PoolSource {
  /** Calls `listener` at once with the current members, then on every change. */
  onMembers(listener: (members: readonly PoolMember[]) => void): void;
  /** An instance by id whatever its state (for /agent/{id}/… routes), or undefined. */
  lookup(id: string): { state: InstanceState } | undefined;
  /** Whether capacity may come when none is ready (fail fast with YGG_ERR_NO_INSTANCES otherwise). */
  outlook(): PoolOutlook;
  /** A request waits and no instance is ready (scale from zero): ask for one now. */
  demand(): void;
  /** Asks for a new incarnation of an instance that stays bad. */
  replace(instance: string, reason: string): void;
  /** A health check of a suspect instance now (false: it failed; undefined: no verdict). */
  probe(instance: string): Promise<boolean | undefined>;
}
