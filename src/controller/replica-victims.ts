// Which replicas should go first when a replica pool scales down: pure. Replicas not serving yet go
// first (nothing to drain), then the ready ones with the fewest pinned sessions, then the fewest
// requests in flight, then the youngest (the longest-running have proved themselves).
import type { Replica } from '../runtime/driver.js';

export interface VictimLoad {
  sessions(id: string): number;
  inflight(id: string): number;
}

export function chooseVictims(replicas: readonly Replica[], keep: number, load: VictimLoad): string[] {
  const live = replicas.filter((r) => r.condition !== 'terminating');
  const excess = live.length - Math.max(0, keep);
  if (excess <= 0) return [];
  const rank = (r: Replica) => (r.condition === 'starting' ? 0 : 1);
  const started = (r: Replica) => Number(r.meta.startedAt ?? 0);
  return [...live]
    .sort(
      (a, b) =>
        rank(a) - rank(b) ||
        load.sessions(a.id) - load.sessions(b.id) ||
        load.inflight(a.id) - load.inflight(b.id) ||
        started(b) - started(a) ||
        a.id.localeCompare(b.id),
    )
    .slice(0, excess)
    .map((r) => r.id);
}
