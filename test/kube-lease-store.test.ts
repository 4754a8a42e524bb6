// The leader Lease on a real kube-apiserver, with the controller's RBAC: one holder at a time (two
// campaigns at once: exactly one wins, by resourceVersion), renewals, a release that lets the other
// take it at once, and the fencing term's failures: a term Redis lost ends the holder's term, and a
// Lease won while the term cannot be had is given back (no leader that never leads).
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { loadKubeConfig } from '../src/runtime/kube-config.js';
import { KubeLeaseStore } from '../src/shared/kube-lease-store.js';
import { type KubeEnv, startKubeEnv } from './helpers/kube/env.js';
import { requireService } from './helpers/services.js';

describe('KubeLeaseStore on a real API server', {
  skip: requireService('kubernetes'),
  timeout: 120_000,
}, () => {
  let env: KubeEnv;
  /** Stands in for Redis's term key (the store only calls these two functions). */
  let term = 0;
  let termLost = false;
  let termDown = false;
  // The RBAC allows this one Lease name only (deploy/kubernetes/rbac.yaml): each test starts without it.
  const LEASE = 'yggdrasil-controller';
  const store = (name = LEASE) =>
    new KubeLeaseStore({
      kubeconfig: loadKubeConfig(env.kubeconfig),
      namespace: env.namespace,
      name,
      nextTerm: async () => {
        if (termDown) throw new Error('redis unreachable');
        termLost = false;
        return ++term;
      },
      currentTerm: async () => (termLost ? null : term),
    });
  const holder = async (name = LEASE) => {
    const r = await env.cluster.kubectl([
      'get',
      'lease',
      name,
      '-n',
      env.namespace,
      '-o',
      'jsonpath={.spec.holderIdentity}',
    ]);
    return r.stdout;
  };

  before(async () => {
    env = await startKubeEnv();
  });
  after(async () => {
    await env?.stop();
  });
  beforeEach(async () => {
    await env.cluster.kubectl(['delete', 'lease', LEASE, '-n', env.namespace, '--ignore-not-found']);
  });

  it('the first campaign creates the Lease and wins; the other is told who holds it', async () => {
    const a = store();
    const b = store();
    assert.deepEqual(await a.acquire('a', 5000), [1, 1, 'a']);
    assert.deepEqual(await b.acquire('b', 5000), [0, 1, 'a']);
    assert.equal(await a.renew('a', 1, 5000), 1);
    assert.equal(await b.renew('b', 1, 5000), 0, 'not its Lease');
    assert.equal(await holder(), 'a');
  });

  it('a release lets the other take it at once, in a new term', async () => {
    const a = store();
    const b = store();
    const [, t] = await a.acquire('a', 5000);
    await b.acquire('b', 5000); // b has seen the record
    assert.equal(await a.release('a', t), 1);
    assert.deepEqual(await b.acquire('b', 5000), [1, t + 1, 'b']);
    assert.equal(await holder(), 'b');
  });

  it('two campaigns on an expired Lease at once: exactly one wins', async () => {
    const name = LEASE;
    const first = store(name);
    await first.acquire('gone', 300); // a holder that then stops renewing
    const [x, y] = [store(name), store(name)];
    await Promise.all([x.acquire('x', 300), y.acquire('y', 300)]); // both observe the record
    // The Lease says 1 s (whole seconds): expiry waits for the longer of that and our 300 ms.
    await new Promise((r) => setTimeout(r, 1100));
    const results = await Promise.all([x.acquire('x', 300), y.acquire('y', 300)]);
    const winners = results.filter((r) => r[0] === 1);
    assert.equal(winners.length, 1, JSON.stringify(results));
    assert.equal(await holder(name), winners[0]![2]);
  });

  it('a term Redis lost ends the holder’s term (renew fails); its next campaign takes a new one', async () => {
    const name = LEASE;
    const s = store(name);
    const [, t] = await s.acquire('c', 5000);
    termLost = true;
    assert.equal(await s.renew('c', t, 5000), 0);
    const again = await s.acquire('c', 5000);
    assert.equal(again[0], 1);
    assert.ok(again[1] > t, `term ${again[1]} after ${t}`);
    assert.equal(await s.renew('c', again[1], 5000), 1);
  });

  it('a Lease won while the term cannot be had is given back: the other takes it at once', async () => {
    const name = LEASE;
    const s = store(name);
    const other = store(name);
    termDown = true;
    await assert.rejects(s.acquire('d', 5000), /redis unreachable/);
    termDown = false;
    assert.equal(await holder(name), '', 'released');
    const [won] = await other.acquire('e', 5000);
    assert.equal(won, 1);
  });
});
