// The leader lease as this controller knows it, and what it may do: pure (time is an argument).
// The lease lives in Redis (scripts.ts); this module decides from the answers and the clock.

export interface LeaseView {
  /** Whether this controller holds the lease (as of its last answer from Redis). */
  leading: boolean;
  /** The term of the lease (the fencing token of every leader write), 0 before any. */
  term: number;
  /** Who holds it, as Redis last said (null: nobody, or not known yet). */
  holder: string | null;
  /** The lease is ours at least until then (the last renewal's send time + the lease). */
  validUntil: number;
  /** The last attempt to reach Redis failed. */
  unreachable: boolean;
}

export const NO_LEASE: LeaseView = {
  leading: false,
  term: 0,
  holder: null,
  validUntil: 0,
  unreachable: false,
};

export type LeaseAnswer =
  | { kind: 'acquired'; term: number; holder: string; sentAt: number }
  | { kind: 'held-by-other'; term: number; holder: string }
  | { kind: 'renewed'; sentAt: number }
  | { kind: 'lost' }
  | { kind: 'unreachable' };

export type LeaseChange = 'elected' | 'deposed' | undefined;

/** The next view after an answer from Redis, and whether leadership changed with it. */
export function nextLease(
  view: LeaseView,
  answer: LeaseAnswer,
  leaseMs: number,
): { view: LeaseView; change: LeaseChange } {
  switch (answer.kind) {
    case 'acquired':
      return {
        view: {
          leading: true,
          term: answer.term,
          holder: answer.holder,
          validUntil: answer.sentAt + leaseMs,
          unreachable: false,
        },
        change: view.leading && view.term === answer.term ? undefined : 'elected',
      };
    case 'renewed':
      return {
        view: { ...view, validUntil: answer.sentAt + leaseMs, unreachable: false },
        change: undefined,
      };
    case 'held-by-other':
      return {
        view: { leading: false, term: answer.term, holder: answer.holder, validUntil: 0, unreachable: false },
        change: view.leading ? 'deposed' : undefined,
      };
    case 'lost':
      return {
        view: { ...view, leading: false, validUntil: 0, unreachable: false },
        change: view.leading ? 'deposed' : undefined,
      };
    case 'unreachable':
      // Still the leader as far as we know, but past validUntil another may have been elected: mayAct
      // turns false (the pool is kept as it is) until a renewal says which it is.
      return { view: { ...view, unreachable: true }, change: undefined };
  }
}

/** The leader may change the pool (start, stop, restart instances) while its lease surely holds. */
export function mayAct(view: LeaseView, now: number): boolean {
  return view.leading && now < view.validUntil;
}

/** The leader may scale only while it reaches Redis (it cannot see the routers' load otherwise). */
export function mayScale(view: LeaseView, now: number): boolean {
  return mayAct(view, now) && !view.unreachable;
}
