// The leader lease as a coordination.k8s.io/v1 Lease (LEADER_ELECTION=kubernetes): who leads is the
// Lease's holderIdentity, written with optimistic concurrency (resourceVersion), so two controllers
// can never both take it. The fencing token is still Redis's term: INCRed by the new leader once the
// Lease is its own (never before, or a failed taker would fence the real leader's writes), and kept
// in the Lease's annotation for the standbys to show. Decisions come from kube-lease.ts.
import { CoordinationV1Api, type KubeConfig, type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import { mergePatch, statusOf } from '../runtime/kube-config.js';
import { type LeaseRecord, leaseMove, type Observed, observe } from './kube-lease.js';
import type { LeaseStore } from './leader-election.js';

export const TERM_ANNOTATION = 'yggdrasil.dev/term';

export interface KubeLeaseStoreOptions {
  kubeconfig: KubeConfig;
  namespace: string;
  name: string;
  /** A fresh fencing token (Redis INCR of the term key). */
  nextTerm: () => Promise<number>;
  /** The term Redis holds now (GET of the term key; null when it has none: Redis lost it). */
  currentTerm: () => Promise<number | null>;
  now?: () => number;
}

function recordOf(l: V1Lease): LeaseRecord {
  const renew = l.spec?.renewTime;
  return {
    holder: l.spec?.holderIdentity ?? null,
    transitions: l.spec?.leaseTransitions ?? 0,
    renewTime: renew ? new Date(renew).toISOString() : null,
  };
}

/** A time read back from the server (a Date or a string) as a MicroTime to write. */
function micro(t: Date | string): V1MicroTime {
  return new V1MicroTime(new Date(t).getTime());
}

function termOf(l: V1Lease | undefined): number {
  return Number(l?.metadata?.annotations?.[TERM_ANNOTATION] ?? 0) || 0;
}

export class KubeLeaseStore implements LeaseStore {
  readonly where: string;
  private readonly api: CoordinationV1Api;
  private readonly now: () => number;
  private observed: Observed | undefined;

  constructor(private readonly opts: KubeLeaseStoreOptions) {
    this.api = opts.kubeconfig.makeApiClient(CoordinationV1Api);
    this.now = opts.now ?? Date.now;
    this.where = `Lease ${opts.namespace}/${opts.name}`;
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      const l = await this.api.readNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace });
      this.observed = observe(this.observed, recordOf(l), this.now());
      return l;
    } catch (err) {
      if (statusOf(err) === 404) {
        this.observed = undefined;
        return undefined;
      }
      throw err;
    }
  }

  private spec(holder: string, leaseMs: number, transitions: number, acquired: boolean, prev?: V1Lease) {
    // MicroTime: the server wants six fractional digits (a Date's toISOString has three).
    const now = new V1MicroTime(this.now());
    return {
      holderIdentity: holder,
      leaseDurationSeconds: Math.max(1, Math.ceil(leaseMs / 1000)),
      leaseTransitions: transitions,
      acquireTime: acquired || !prev?.spec?.acquireTime ? now : micro(prev.spec.acquireTime),
      renewTime: now,
    };
  }

  async acquire(holder: string, leaseMs: number): Promise<[number, number, string]> {
    const { namespace, name } = this.opts;
    const current = await this.read();
    // Expiry by the longer of our lease and the holder's (a standby with a shorter one waits as long).
    const holderMs = (current?.spec?.leaseDurationSeconds ?? 0) * 1000;
    const move = leaseMove(holder, this.observed, this.now(), Math.max(leaseMs, holderMs));
    if (move.kind === 'held') return [0, termOf(current), move.holder];
    try {
      if (move.kind === 'create') {
        await this.api.createNamespacedLease({
          namespace,
          body: { metadata: { name }, spec: this.spec(holder, leaseMs, 0, true) },
        });
      } else {
        // take (expired or vacant), or ours from an earlier life of this holder: a new term either way.
        const transitions = move.kind === 'take' ? move.transitions : (current!.spec?.leaseTransitions ?? 0);
        await this.api.replaceNamespacedLease({
          name,
          namespace,
          body: { ...current!, spec: this.spec(holder, leaseMs, transitions, true, current) },
        });
      }
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
      // Someone else wrote it first: say who, from what the Lease says now.
      const now = await this.read().catch(() => undefined);
      return [0, termOf(now ?? current), now?.spec?.holderIdentity ?? this.observed?.record.holder ?? ''];
    }
    let term: number;
    try {
      term = await this.opts.nextTerm();
    } catch (err) {
      // The Lease is ours but Redis (the fencing term) is out of reach: give the Lease back, or this
      // controller would keep it fresh without ever leading, and no standby could take over.
      await this.release(holder, 0).catch(() => 0);
      throw err;
    }
    await this.annotate(term).catch(() => {});
    return [1, term, holder];
  }

  private async annotate(term: number): Promise<void> {
    await this.api.patchNamespacedLease(
      {
        name: this.opts.name,
        namespace: this.opts.namespace,
        body: { metadata: { annotations: { [TERM_ANNOTATION]: String(term) } } },
      },
      mergePatch,
    );
  }

  async renew(holder: string, term: number, leaseMs: number): Promise<number> {
    const current = await this.read();
    if (!current || current.spec?.holderIdentity !== holder) return 0;
    // Redis lost or moved the term (a restart without persistence): every fenced write would be
    // refused, so this term is over; the next campaign takes a new one.
    if ((await this.opts.currentTerm()) !== term) return 0;
    try {
      await this.api.replaceNamespacedLease({
        name: this.opts.name,
        namespace: this.opts.namespace,
        body: {
          ...current,
          spec: this.spec(holder, leaseMs, current.spec?.leaseTransitions ?? 0, false, current),
        },
      });
      return 1;
    } catch (err) {
      if (statusOf(err) === 409) return 0;
      throw err;
    }
  }

  /** Gives the Lease up (vacant): a standby takes it at its next campaign, without waiting a lease. */
  async release(holder: string, _term: number): Promise<number> {
    const current = await this.read();
    if (!current || current.spec?.holderIdentity !== holder) return 0;
    await this.api.replaceNamespacedLease({
      name: this.opts.name,
      namespace: this.opts.namespace,
      body: {
        ...current,
        spec: { ...this.spec('', 1000, current.spec?.leaseTransitions ?? 0, false, current) },
      },
    });
    return 1;
  }
}
