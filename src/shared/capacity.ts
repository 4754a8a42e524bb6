// MAX_CONCURRENCY across several routers: each instance's capacity is split among the live routers
// (Knative splits capacity across its activators the same way), so that together they never put more
// than MAX_CONCURRENCY requests on one agent. Pure: the routers' reports come in as arguments.
//
// The invariant: for every instance, the sum over routers of max(share applied, requests in flight)
// stays ≤ MAX_CONCURRENCY. Lowering a share is always safe (in-flight requests above it finish, none
// is granted until under it). Raising is where routers could overlap, so a router raises only when
// every other live router reports the same view (the same set of routers, so the targets of that view
// sum to the total) and only into the room the others' reports leave.

/** What one router last said about itself (its heartbeat). */
export interface RouterReport {
  id: string;
  /** The routers it saw, as viewKey() of them: shares it applied were computed for this view. */
  view: string;
  /** Share applied per instance (what it may grant at most). */
  shares: Record<string, number>;
  /** Requests it has in flight per instance. */
  inflight: Record<string, number>;
}

/** A stable name of a set of routers. */
export function viewKey(routers: readonly string[]): string {
  return [...routers].sort().join(',');
}

/** A small stable hash of a string (FNV-1a), so the ±1 of each split falls on different routers. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * This router's target share of one instance's capacity: the total split evenly over the routers,
 * the remainder going to routers chosen by the instance's id (so with 3 routers and 80 slots they
 * get 27/27/26, a different one holding 26 for each instance). The targets of one view sum to `total`.
 */
export function targetShare(total: number, routers: readonly string[], me: string, instance: string): number {
  const sorted = [...routers].sort();
  const n = sorted.length;
  const at = sorted.indexOf(me);
  if (n === 0 || at === -1) return 0;
  const base = Math.floor(total / n);
  const extra = total % n;
  const position = (at - (hash(instance) % n) + n) % n;
  return base + (position < extra ? 1 : 0);
}

export interface ShareInput {
  /** MAX_CONCURRENCY. */
  total: number;
  me: string;
  /** The live routers as this router sees them (itself included). */
  routers: readonly string[];
  /** The latest report of each other live router (missing: not heard yet). */
  others: readonly RouterReport[];
  /** The share applied now (0 for an instance this router has not served yet). */
  current: number;
  instance: string;
  /** This router may not raise now (it has just reconnected to the shared state, say). */
  holdRaises?: boolean;
}

/**
 * The share to apply to one instance now: the target at once when it is lower; otherwise raised
 * only when every other live router reports this view, and only into the room their shares and
 * in-flight requests leave.
 */
export function nextShare(input: ShareInput): number {
  const target = targetShare(input.total, input.routers, input.me, input.instance);
  if (target <= input.current) return target;
  if (input.holdRaises) return input.current;
  const view = viewKey(input.routers);
  const othersLive = input.routers.filter((r) => r !== input.me);
  let used = 0;
  for (const id of othersLive) {
    const r = input.others.find((o) => o.id === id);
    if (!r || r.view !== view) return input.current;
    used += Math.max(r.shares[input.instance] ?? 0, r.inflight[input.instance] ?? 0);
  }
  return Math.max(input.current, Math.min(target, input.total - used));
}
