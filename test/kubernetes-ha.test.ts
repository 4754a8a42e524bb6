// Two controllers on DRIVER=kubernetes elect their leader through a coordination.k8s.io Lease
// (LEADER_ELECTION=auto picks it) on a real API server, with the RBAC of deploy/kubernetes/rbac.yaml,
// and fence their writes with Redis's term: one leads and the Lease names it; SIGKILL of the leader
// lets the standby take the Lease within 2 leases, in a higher term, and follow the same pods (none
// new, none lost). The pool runs above MIN_INSTANCES (kubectl scale), and the standby's first list of
// the pods is refused (RBAC) when it takes over: it changes nothing until the list works, then adopts
// the count it finds (not MIN_INSTANCES).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type KubeEnv, RBAC_MANIFEST, startKubeEnv } from './helpers/kube/env.js';
import { waitFor } from './helpers/platform.js';
import { startRedis, type TestRedis } from './helpers/redis.js';
import { type RoleProcess, startRole } from './helpers/roles.js';
import { requireService } from './helpers/services.js';

const LEASE_MS = 2000;

interface Status {
  leadership: { leader: boolean; holder: string | null; term: number; via: string };
  readyInstances: number;
  desiredInstances: number;
  instances: Array<{ id: string; state: string }>;
}

async function status(c: RoleProcess): Promise<Status | undefined> {
  try {
    const res = await fetch(`${c.url}/status`);
    return (await res.json()) as Status;
  } catch {
    return undefined;
  }
}

describe('controllers on DRIVER=kubernetes: leader election through a Lease', {
  skip: requireService('kubernetes') || requireService('redis'),
  timeout: 180_000,
}, () => {
  let env: KubeEnv;
  let redis: TestRedis;
  const controllers: RoleProcess[] = [];

  before(async () => {
    [env, redis] = await Promise.all([startKubeEnv(), startRedis()]);
    const common = {
      DRIVER: 'kubernetes',
      KUBECONFIG: env.kubeconfig,
      KUBE_NAMESPACE: env.namespace,
      DOCKER_OWNER: 'yggdrasil',
      REDIS_URL: redis.url,
      LEADER_LEASE_MS: String(LEASE_MS),
      MIN_INSTANCES: '1',
      MAX_INSTANCES: '3',
      // No autoscaler decision within the test (its first comes a minute after an election): the
      // count set by hand below stays, so adoption can be told from a reset to MIN_INSTANCES.
      SCALE_INTERVAL_MS: '60000',
    };
    controllers.push(await startRole('controller', 'ctl-a', common));
    controllers.push(await startRole('controller', 'ctl-b', common));
  });
  after(async () => {
    for (const c of controllers) await c.stop();
    await redis?.stop();
    await env?.stop();
  });

  const lease = async () => {
    const r = await env.cluster.kubectl([
      'get',
      'lease',
      'yggdrasil-controller',
      '-n',
      env.namespace,
      '-o',
      'json',
    ]);
    return r.code === 0
      ? (JSON.parse(r.stdout) as { spec: { holderIdentity: string; leaseTransitions: number } })
      : undefined;
  };
  const pods = async () =>
    (await env.cluster.kubectl(['get', 'pods', '-n', env.namespace, '-o', 'name'])).stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .sort();

  const replicas = async () => {
    const r = await env.cluster.kubectl([
      'get',
      'deployment',
      'yggdrasil-agents',
      '-n',
      env.namespace,
      '-o',
      'jsonpath={.spec.replicas}',
    ]);
    return Number(r.stdout);
  };
  /** The Role's pods rule (rules[3] of rbac.yaml) without list and watch, or as shipped again. */
  const podsListable = async (yes: boolean) => {
    const r = yes
      ? await env.cluster.kubectl(['apply', '-n', env.namespace, '-f', RBAC_MANIFEST])
      : await env.cluster.kubectl([
          'patch',
          'role',
          'yggdrasil-controller',
          '-n',
          env.namespace,
          '--type=json',
          '-p',
          JSON.stringify([
            { op: 'test', path: '/rules/3/resources', value: ['pods'] },
            { op: 'replace', path: '/rules/3/verbs', value: ['patch', 'delete'] },
          ]),
        ]);
    assert.equal(r.code, 0, r.stderr);
  };

  let leader: RoleProcess;
  let standby: RoleProcess;
  let firstTerm = 0;

  it('one leads, the Lease names it, and its pool reaches MIN_INSTANCES', async () => {
    await waitFor(
      'a leader',
      async () => {
        const [a, b] = await Promise.all(controllers.map(status));
        return a && b && a.leadership.leader !== b.leadership.leader;
      },
      30_000,
      100,
    ).catch(async (err) => {
      const seen = await Promise.all(controllers.map(status));
      throw new Error(
        `${(err as Error).message}: ${JSON.stringify(seen.map((s) => s?.leadership))}\n${controllers.map((c) => c.proc.stderr().slice(-1500)).join('\n')}`,
      );
    });
    const [a] = await Promise.all(controllers.map(status));
    [leader, standby] = a!.leadership.leader
      ? [controllers[0]!, controllers[1]!]
      : [controllers[1]!, controllers[0]!];
    const s = (await status(leader))!;
    assert.equal(s.leadership.via, `Lease ${env.namespace}/yggdrasil-controller`);
    firstTerm = s.leadership.term;
    assert.ok(firstTerm >= 1);
    assert.equal((await lease())?.spec.holderIdentity, leader.id);
    await waitFor(
      '1 ready pod (MIN_INSTANCES)',
      async () => (await status(leader))?.readyInstances === 1,
      60_000,
      200,
    );
    // Someone scales the Deployment by hand: the leader takes the count (within 1..3).
    const scaled = await env.cluster.kubectl([
      'scale',
      'deployment',
      'yggdrasil-agents',
      '-n',
      env.namespace,
      '--replicas=3',
    ]);
    assert.equal(scaled.code, 0, scaled.stderr);
    await waitFor('3 ready pods', async () => (await status(leader))?.readyInstances === 3, 60_000, 200);
    const sb = (await status(standby))!;
    assert.equal(sb.leadership.leader, false);
    assert.equal(sb.leadership.holder, leader.id, 'the standby names the leader');
  });

  it('SIGKILL of the leader: the standby takes the Lease within 2 leases, in a higher term, with the same pods', async () => {
    const before = await pods();
    assert.equal(before.length, 3);
    await podsListable(false);
    const killedAt = Date.now();
    leader.kill('SIGKILL');
    await leader.proc.exited;
    await waitFor(
      'the standby leads',
      async () => (await status(standby))?.leadership.leader === true,
      4 * LEASE_MS,
      20,
    );
    const tookMs = Date.now() - killedAt;
    console.log(`# kubernetes Lease failover: ${tookMs} ms (lease ${LEASE_MS} ms)`);
    assert.ok(tookMs <= 2 * LEASE_MS + 500, `took ${tookMs} ms`);
    const s = (await status(standby))!;
    assert.ok(s.leadership.term > firstTerm, `term ${s.leadership.term} after ${firstTerm}`);
    const l = (await lease())!;
    assert.equal(l.spec.holderIdentity, standby.id);
    assert.ok(l.spec.leaseTransitions >= 1);
    // It leads but cannot list the pods: it says so, and leaves the Deployment as it is.
    await waitFor(
      'the new leader to report the refused list',
      () => /reading the Kubernetes pool failed \(attempt 2\)/.test(standby.proc.stdout()),
      30_000,
      100,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; its log ends: ${standby.proc.stdout().slice(-2500)}`);
    });
    assert.equal(await replicas(), 3, 'a pool it could not read is not set back to MIN_INSTANCES');
    await podsListable(true);
    await waitFor(
      'the new leader sees 3 ready pods',
      async () => (await status(standby))?.readyInstances === 3,
      30_000,
      100,
    );
    assert.equal(await replicas(), 3, 'adopted at the count it found');
    assert.equal((await status(standby))?.desiredInstances, 3);
    assert.deepEqual(await pods(), before, 'the same pods: none new, none lost');
  });
});
