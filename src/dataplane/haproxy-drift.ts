// Pure: where HAProxy's servers differ from what the controller programmed, read from `show stat`.
// A command that failed half-way, one HAProxy lost, or a person at the Runtime API can leave a ready
// instance in maintenance (it takes no traffic) or a free slot serving. Only servers programmed
// before the reading began are judged (a reading taken while a command ran says nothing of it).

/** What the data plane believes of one server. */
export interface Programmed {
  state: 'ready' | 'draining';
  /** When its last command was done (ms). */
  at: number;
}

export interface StatRow {
  server: string;
  status: string;
}

export interface Drift {
  /** Ready here, in maintenance or missing there: to be programmed again. */
  lost: string[];
  /** Draining here, or not ours, yet taking traffic there: to be put back in maintenance. */
  stray: string[];
}

const inMaintenance = (status: string) => status.startsWith('MAINT');

/**
 * `rows`: the agents backend's server rows of a `show stat` asked at `askedAt`; `slotIds`: the
 * template's slots (any of them not programmed must be in maintenance).
 */
export function driftOf(
  programmed: ReadonlyMap<string, Programmed>,
  rows: readonly StatRow[],
  askedAt: number,
  isSlot: (id: string) => boolean,
): Drift {
  const seen = new Map(rows.map((r) => [r.server, r.status]));
  const lost: string[] = [];
  const stray: string[] = [];
  for (const [id, p] of programmed) {
    if (p.at >= askedAt) continue;
    const status = seen.get(id);
    if (p.state === 'ready' && (status === undefined || inMaintenance(status))) lost.push(id);
    if (p.state === 'draining' && status !== undefined && !inMaintenance(status)) stray.push(id);
  }
  for (const [id, status] of seen) {
    if (!programmed.has(id) && isSlot(id) && !inMaintenance(status)) stray.push(id);
  }
  return { lost, stray };
}
