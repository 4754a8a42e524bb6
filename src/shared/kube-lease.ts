// Leader election on a coordination.k8s.io/v1 Lease, the pure part (time is an argument). As
// client-go's leaderelection does, expiry is judged by when this process first saw the record as it
// is (holder and renew time), never by comparing clocks with the writer: a record unchanged for a
// whole lease is expired, whatever its renewTime says.

export interface LeaseRecord {
  holder: string | null;
  /** leaseTransitions: how many times the holder changed. */
  transitions: number;
  /** renewTime as written (only compared for change). */
  renewTime: string | null;
}

/** The record as last seen, and when it was first seen like that (ms). */
export interface Observed {
  record: LeaseRecord;
  since: number;
}

export type LeaseMove =
  | { kind: 'create' }
  | { kind: 'renew' }
  | { kind: 'take'; transitions: number }
  | { kind: 'held'; holder: string };

/** Remembers when a record was first seen: a new holder or renew time restarts the clock. */
export function observe(prev: Observed | undefined, record: LeaseRecord, now: number): Observed {
  const same =
    prev !== undefined && prev.record.holder === record.holder && prev.record.renewTime === record.renewTime;
  return same ? { record, since: prev.since } : { record, since: now };
}

/** What `me` may do with the Lease (undefined record: there is none yet). */
export function leaseMove(
  me: string,
  observed: Observed | undefined,
  now: number,
  leaseMs: number,
): LeaseMove {
  if (!observed) return { kind: 'create' };
  const { record } = observed;
  if (record.holder === me) return { kind: 'renew' };
  const vacant = record.holder === null || record.holder === '';
  if (vacant || now - observed.since >= leaseMs) return { kind: 'take', transitions: record.transitions + 1 };
  return { kind: 'held', holder: record.holder! };
}
