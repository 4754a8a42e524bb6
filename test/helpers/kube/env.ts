// One Kubernetes test environment: the control plane (cluster.ts), a namespace of its own, the
// controller's RBAC from deploy/kubernetes/rbac.yaml bound to the `yggdrasil` user in that namespace
// (so every test runs with the rights the manifests grant, no more), and a hollow node that runs the
// pods as reference agents on 127.0.0.N.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { referenceAgentCommand } from '../../../src/runtime/process-driver.js';
import { type KubeCluster, startKubeCluster } from './cluster.js';
import { HollowNode } from './hollow-node.js';

export const RBAC_MANIFEST = new URL('../../../deploy/kubernetes/rbac.yaml', import.meta.url).pathname;

export interface KubeEnv {
  cluster: KubeCluster;
  namespace: string;
  /** A kubeconfig for the RBAC-limited `yggdrasil` user, its namespace the test's. */
  kubeconfig: string;
  node: HollowNode;
  stop(): Promise<void>;
}

export async function startKubeEnv(
  opts: { namespace?: string; firstAddress?: number } = {},
): Promise<KubeEnv> {
  const cluster = await startKubeCluster();
  try {
    const namespace = opts.namespace ?? `ygg-${Math.random().toString(36).slice(2, 8)}`;
    const run = async (args: string[], input?: string) => {
      const r = await cluster.kubectl(args, input);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    await run(['create', 'namespace', namespace]);
    await run(['apply', '-n', namespace, '-f', RBAC_MANIFEST]);
    await run([
      'create',
      'rolebinding',
      'yggdrasil-user',
      '-n',
      namespace,
      '--role=yggdrasil-controller',
      '--user=yggdrasil',
    ]);
    const kc = JSON.parse(readFileSync(cluster.yggdrasilKubeconfig, 'utf8')) as {
      contexts: Array<{ context: { namespace: string } }>;
    };
    kc.contexts[0]!.context.namespace = namespace;
    const kubeconfig = join(cluster.dir, `yggdrasil-${namespace}.kubeconfig`);
    writeFileSync(kubeconfig, JSON.stringify(kc));
    const agent = referenceAgentCommand();
    const node = new HollowNode({
      kubeconfig: cluster.adminKubeconfig,
      namespace,
      command: () => ({ file: agent.file, args: agent.args, env: { LOG_LEVEL: 'warn' } }),
      ...(opts.firstAddress ? { firstAddress: opts.firstAddress } : {}),
    });
    await node.start();
    return {
      cluster,
      namespace,
      kubeconfig,
      node,
      async stop() {
        await node.stop().catch(() => {});
        await cluster.stop();
      },
    };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}
