// DRIVER=kubernetes against a real kube-apiserver and kube-controller-manager (1.20, built from
// Debian's source), with the RBAC of deploy/kubernetes/rbac.yaml and a hollow node running the pods
// as reference agents on 127.0.0.N: the Deployment is created and scaled through its scale
// subresource, replicas come from the EndpointSlices (v1beta1 on 1.20) with their conditions, a pod
// deleted by hand is replaced, a chosen victim is the pod that goes, someone else's scale is seen,
// and down() leaves nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../src/core/logger.js';
import type { ReplicaSnapshot } from '../src/runtime/driver.js';
import { KubernetesDriver } from '../src/runtime/kubernetes-driver.js';
import { type KubeEnv, startKubeEnv } from './helpers/kube/env.js';
import { waitFor } from './helpers/platform.js';
import { CLI } from './helpers/roles.js';
import { requireService } from './helpers/services.js';
import { run } from './helpers/spawn.js';

describe('KubernetesDriver on a real API server', {
  skip: requireService('kubernetes'),
  timeout: 240_000,
}, () => {
  let env: KubeEnv;
  let driver: KubernetesDriver;
  let last: ReplicaSnapshot = { desired: 0, replicas: [] };
  const seen: ReplicaSnapshot[] = [];

  before(async () => {
    env = await startKubeEnv();
    driver = new KubernetesDriver({
      image: 'yggdrasil/agent:latest',
      owner: 'yggdrasil',
      namespace: env.namespace,
      kubeconfig: env.kubeconfig,
      env: { LOG_LEVEL: 'warn' },
      healthPath: '/health',
      cpuLimit: 0.5,
      memoryLimitBytes: 256 * 1024 * 1024,
      cpuReservation: 0.1,
      memoryReservationBytes: 64 * 1024 * 1024,
      graceSeconds: 5,
      logger: createLogger('silent'),
    });
    driver.watch((s) => {
      last = s;
      seen.push(s);
    });
  });
  after(async () => {
    await driver?.close();
    await env?.stop();
  });

  const ready = () => last.replicas.filter((r) => r.condition === 'ready' && r.endpoint);

  it('scale(2) creates the Deployment: two ready replicas, each answering /health at its pod IP', async () => {
    await driver.scale(2);
    await waitFor('2 ready replicas', () => ready().length === 2, 60_000, 100);
    assert.equal(last.desired, 2);
    assert.ok(
      seen.some((s) => s.replicas.some((r) => r.condition === 'starting')),
      'seen starting first',
    );
    const hosts = new Set(ready().map((r) => r.endpoint!.host));
    assert.equal(hosts.size, 2, 'one address per pod');
    for (const r of ready()) {
      assert.match(r.endpoint!.host, /^127\.0\.0\.\d+$/);
      const res = await fetch(`http://${r.endpoint!.host}:${r.endpoint!.port}/health`);
      assert.equal(res.status, 200);
    }
    const dep = await env.cluster.kubectl([
      'get',
      'deployment',
      'yggdrasil-agents',
      '-n',
      env.namespace,
      '-o',
      'json',
    ]);
    const spec = JSON.parse(dep.stdout).spec.template.spec;
    assert.equal(spec.securityContext.runAsUser, 10001);
    assert.equal(spec.containers[0].securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(spec.containers[0].securityContext.capabilities.drop, ['ALL']);
    assert.equal(spec.automountServiceAccountToken, false);
  });

  it('a pod deleted by hand is reported terminating, and the ReplicaSet replaces it', async () => {
    const victim = ready()[0]!;
    const others = ready().map((r) => r.id);
    const r = await env.cluster.kubectl(['delete', 'pod', victim.id, '-n', env.namespace, '--wait=false']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(
      'the deleted pod terminating',
      () => seen.some((s) => s.replicas.some((x) => x.id === victim.id && x.condition === 'terminating')),
      30_000,
      50,
    );
    await waitFor(
      'a new pod ready in its place',
      () =>
        ready().length === 2 &&
        ready().some((x) => !others.includes(x.id)) &&
        !last.replicas.some((x) => x.id === victim.id),
      60_000,
      100,
    );
  });

  it('scale(1) with a chosen victim removes that pod, not the one the ReplicaSet would pick', async () => {
    // The ReplicaSet removes the newest ready pod first; choose the oldest.
    const [oldest, newest] = [...ready()].sort((a, b) => Number(a.meta.startedAt) - Number(b.meta.startedAt));
    await driver.scale(1, { preferVictims: [oldest!.id] });
    await waitFor(
      'one replica left',
      () => last.desired === 1 && last.replicas.length === 1 && ready().length === 1,
      60_000,
      100,
    );
    assert.equal(ready()[0]!.id, newest!.id, `kept ${ready()[0]!.id}, asked to remove ${oldest!.id}`);
  });

  it('a scale by someone else (kubectl scale) is the snapshot’s desired count', async () => {
    const r = await env.cluster.kubectl([
      'scale',
      'deployment/yggdrasil-agents',
      '-n',
      env.namespace,
      '--replicas=3',
    ]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('desired 3 and 3 ready', () => last.desired === 3 && ready().length === 3, 60_000, 100);
  });

  it('without a victim the ReplicaSet picks: scale(1) of 3 keeps the oldest (what the hint overrode above)', async () => {
    const oldest = [...ready()].sort((a, b) => Number(a.meta.startedAt) - Number(b.meta.startedAt))[0]!;
    await driver.scale(1);
    await waitFor('one replica left', () => last.replicas.length === 1 && ready().length === 1, 60_000, 100);
    assert.equal(ready()[0]!.id, oldest.id);
  });

  it('`yggdrasil down` removes the Deployment, its pods and the Service', async () => {
    const cli = run(process.execPath, [CLI, 'down'], {
      DRIVER: 'kubernetes',
      KUBECONFIG: env.kubeconfig,
      KUBE_NAMESPACE: env.namespace,
      DOCKER_OWNER: 'yggdrasil',
    });
    const { code } = await cli.exited;
    assert.equal(code, 0, cli.stderr());
    assert.equal(cli.stdout().trim(), `removed Deployment and Service ${env.namespace}/yggdrasil-agents`);
    let left = '';
    await waitFor(
      'no Deployment, ReplicaSet, pod or Service',
      async () => {
        const r = await env.cluster.kubectl([
          'get',
          'deployments,replicasets,pods,services',
          '-n',
          env.namespace,
          '-o',
          'name',
        ]);
        left = r.stdout.trim();
        return r.code === 0 && left === '';
      },
      60_000,
      200,
    ).catch(() => assert.fail(`left: ${left}`));
    assert.equal(env.node.pids().size, 0, 'no agent process left on the node');
    assert.equal(await driver.down(), false, 'a second down() finds nothing');
  });
});
