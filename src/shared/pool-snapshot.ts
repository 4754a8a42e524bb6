// The pool as the leading controller publishes it to the routers: members (ready and draining, with
// endpoints), every instance's state (for /agent/{id}/… and the public summary), the outlook, and the
// full status for /status. Read back with a schema: bad data in Redis is refused, never trusted.
import { z } from 'zod';
import { INSTANCE_STATES, type InstanceState, type PoolMember, type PoolOutlook } from '../core/pool.js';

export interface PoolSnapshot {
  /** The leader's term: a snapshot of an older term than one already seen is ignored. */
  term: number;
  /** Increases with every publish within a term. */
  version: number;
  /** When it was made (ms since epoch, the leader's clock). */
  at: number;
  leader: string;
  members: PoolMember[];
  instances: Array<{ id: string; state: InstanceState }>;
  outlook: PoolOutlook;
  readyInstances: number;
  desiredInstances: number;
  minInstances: number;
  maxInstances: number;
  /** The controller's /status (instances with their details, events, autoscaler). */
  status: Record<string, unknown>;
}

const state = z.enum(INSTANCE_STATES as [InstanceState, ...InstanceState[]]);
const count = z.number().int().min(0);

const schema = z.object({
  term: z.number().int().min(1),
  version: count,
  at: z.number(),
  leader: z.string(),
  members: z.array(
    z.object({
      id: z.string().min(1),
      incarnation: z.string().min(1),
      endpoint: z.object({ host: z.string().min(1), port: z.number().int().min(1).max(65535) }),
      state,
    }),
  ),
  instances: z.array(z.object({ id: z.string(), state })),
  outlook: z.enum(['ready', 'starting', 'none']),
  readyInstances: count,
  desiredInstances: count,
  minInstances: count,
  maxInstances: count,
  status: z.record(z.string(), z.unknown()),
});

/** Parses a snapshot from Redis; undefined (with the reason) when it is not one. */
export function parseSnapshot(text: string | null): { snapshot?: PoolSnapshot; error?: string } {
  if (text === null) return {};
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { error: 'the pool snapshot in Redis is not JSON' };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success)
    return { error: `the pool snapshot in Redis is malformed: ${parsed.error.issues[0]?.message}` };
  return { snapshot: parsed.data };
}

/** Whether `next` is newer than `current` (a higher term, or a later version of the same term). */
export function isNewer(next: PoolSnapshot, current: PoolSnapshot | undefined): boolean {
  if (!current) return true;
  return next.term > current.term || (next.term === current.term && next.version > current.version);
}
