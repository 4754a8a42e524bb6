// deploy/kubernetes/: every manifest is accepted by a real kube-apiserver (server-side dry run: its
// schema and admission, not a linter's guess), agents.yaml is exactly what the driver creates, the
// secure-by-default promises hold (only the controller has a service-account token; no public
// Service; everything non-root, read-only, without capabilities), and a Deployment applied from
// agents.yaml is adopted and scaled by the driver with no more rights than rbac.yaml grants.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { loadPlatformConfig } from '../src/core/config.js';
import { createLogger } from '../src/core/logger.js';
import { createDriver, kubernetesOptions } from '../src/roles/parts.js';
import type { ReplicaSnapshot } from '../src/runtime/driver.js';
import { TEMPLATE_HASH } from '../src/runtime/kube-objects.js';
import { agentManifests, type KubernetesDriver } from '../src/runtime/kubernetes-driver.js';
import { type KubeEnv, startKubeEnv } from './helpers/kube/env.js';
import { waitFor } from './helpers/platform.js';
import { requireService } from './helpers/services.js';

const DIR = new URL('../deploy/kubernetes/', import.meta.url).pathname;
type Doc = {
  kind: string;
  metadata: { name: string };
  spec?: Record<string, unknown> & { template?: { spec: PodSpec }; type?: string };
};
type PodSpec = {
  automountServiceAccountToken?: boolean;
  serviceAccountName?: string;
  securityContext?: { runAsNonRoot?: boolean };
  containers: Array<{
    name: string;
    securityContext?: {
      readOnlyRootFilesystem?: boolean;
      allowPrivilegeEscalation?: boolean;
      capabilities?: { drop?: string[] };
    };
  }>;
};

const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();
const docs: Doc[] = files.flatMap((f) =>
  parseAllDocuments(readFileSync(join(DIR, f), 'utf8')).map((d) => d.toJS() as Doc),
);
const byName = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name);

async function driverFor(env: Record<string, string>): Promise<KubernetesDriver> {
  const cfg = loadPlatformConfig({
    DRIVER: 'kubernetes',
    DOCKER_OWNER: 'yggdrasil',
    LOG_LEVEL: 'info',
    ...env,
  });
  return (await createDriver(cfg, { logger: createLogger('silent') })) as KubernetesDriver;
}

describe('deploy/kubernetes manifests', () => {
  it('has the controller, routers, Redis, agents, RBAC and config', () => {
    assert.deepEqual(files, [
      'agents.yaml',
      'config.yaml',
      'controller.yaml',
      'network-policy.yaml',
      'rbac.yaml',
      'redis.yaml',
      'routers.yaml',
    ]);
    for (const [kind, name] of [
      ['Deployment', 'yggdrasil-controller'],
      ['Deployment', 'yggdrasil-router'],
      ['Service', 'yggdrasil-router'],
      ['Deployment', 'yggdrasil-agents'],
      ['Role', 'yggdrasil-controller'],
      ['ConfigMap', 'yggdrasil-config'],
    ])
      assert.ok(byName(kind!, name!), `${kind} ${name}`);
  });

  it('agents.yaml is what the driver creates (regenerate: node --import tsx scripts/kube-agents-manifest.mts)', async () => {
    // No cluster needed: what the driver would create for the default configuration.
    const cfg = loadPlatformConfig({ DRIVER: 'kubernetes', DOCKER_OWNER: 'yggdrasil', LOG_LEVEL: 'info' });
    const m = agentManifests(kubernetesOptions(cfg, createLogger('silent')), 1);
    const { annotations, ...metadata } = m.deployment.metadata as { annotations: Record<string, string> };
    assert.match(annotations[TEMPLATE_HASH] ?? '', /^[0-9a-f]{16}$/, 'the driver marks what it creates');
    // The file's has no hash: applied from there it is the user's (only AGENT_IMAGE is rolled out to it).
    assert.deepEqual(byName('Deployment', 'yggdrasil-agents'), { ...m.deployment, metadata });
    assert.deepEqual(byName('Service', 'yggdrasil-agents'), m.service);
  });

  it('secure by default: a token only for the controller, no public Service, every pod hardened', () => {
    for (const d of docs.filter((x) => x.kind === 'Deployment')) {
      const pod = d.spec!.template!.spec;
      if (d.metadata.name === 'yggdrasil-controller')
        assert.equal(pod.serviceAccountName, 'yggdrasil-controller');
      else assert.equal(pod.automountServiceAccountToken, false, `${d.metadata.name} mounts no token`);
      assert.equal(pod.securityContext?.runAsNonRoot, true, `${d.metadata.name} runs as non-root`);
      for (const c of pod.containers) {
        assert.equal(
          c.securityContext?.readOnlyRootFilesystem,
          true,
          `${d.metadata.name}/${c.name} read-only`,
        );
        assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
        assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL']);
      }
    }
    for (const s of docs.filter((x) => x.kind === 'Service'))
      assert.ok(
        !['LoadBalancer', 'NodePort'].includes(String(s.spec?.type)),
        `${s.metadata.name} is not public`,
      );
  });

  describe('on a real API server', { skip: requireService('kubernetes'), timeout: 180_000 }, () => {
    let env: KubeEnv;
    before(async () => {
      env = await startKubeEnv();
    });
    after(async () => {
      await env?.stop();
    });

    it('kubectl apply --dry-run=server accepts every manifest', async () => {
      const r = await env.cluster.kubectl(['apply', '--dry-run=server', '-n', env.namespace, '-f', DIR]);
      assert.equal(r.code, 0, r.stderr);
      const created = r.stdout.trim().split('\n');
      assert.equal(created.length, docs.length, r.stdout);
    });

    it('the README’s two commands create every object (a namespace no node serves: the pods stay pending)', async () => {
      const ns = await env.cluster.kubectl(['create', 'namespace', 'yggdrasil']);
      assert.equal(ns.code, 0, ns.stderr);
      const r = await env.cluster.kubectl(['apply', '-n', 'yggdrasil', '-f', DIR]);
      assert.equal(r.code, 0, r.stderr);
      const got = await env.cluster.kubectl([
        'get',
        'deployments,services,configmaps,roles,rolebindings,serviceaccounts,networkpolicies',
        '-n',
        'yggdrasil',
        '-o',
        'name',
      ]);
      // `-o name` prints <resource>[.<group>]/<name>: each manifest's own kind and name, exactly.
      const resource: Record<string, string> = {
        Deployment: 'deployment.apps',
        Service: 'service',
        ConfigMap: 'configmap',
        Role: 'role.rbac.authorization.k8s.io',
        RoleBinding: 'rolebinding.rbac.authorization.k8s.io',
        ServiceAccount: 'serviceaccount',
        NetworkPolicy: 'networkpolicy.networking.k8s.io',
      };
      const lines = new Set(got.stdout.trim().split('\n'));
      for (const d of docs) {
        const want = `${resource[d.kind] ?? d.kind.toLowerCase()}/${d.metadata.name}`;
        assert.ok(
          lines.has(want),
          `${d.kind} ${d.metadata.name} created (${want}); got ${[...lines].join(', ')}`,
        );
      }
    });

    it('a Deployment applied from agents.yaml is adopted and scaled by the driver, with rbac.yaml’s rights', async () => {
      const r = await env.cluster.kubectl(['apply', '-n', env.namespace, '-f', join(DIR, 'agents.yaml')]);
      assert.equal(r.code, 0, r.stderr);
      const d = await driverFor({ KUBECONFIG: env.kubeconfig, KUBE_NAMESPACE: env.namespace });
      let last: ReplicaSnapshot = { desired: 0, replicas: [] };
      d.watch((s) => {
        last = s;
      });
      try {
        await waitFor(
          'the applied replica, ready',
          () => last.replicas.some((x) => x.condition === 'ready'),
          60_000,
          100,
        );
        await d.scale(2);
        await waitFor(
          '2 ready',
          () => last.replicas.filter((x) => x.condition === 'ready').length === 2,
          60_000,
          100,
        );
        assert.equal(last.desired, 2);
        assert.equal(await d.down(), true);
      } finally {
        await d.close();
      }
    });
  });
});
