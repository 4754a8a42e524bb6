// The cluster to talk to (DRIVER=kubernetes, LEADER_ELECTION=kubernetes): a kubeconfig file when
// KUBECONFIG names one, else client-node's default (KUBECONFIG, ~/.kube/config, the pod's service
// account). No cluster found is a configuration error naming KUBECONFIG (client-node would fall back
// to http://localhost:8080 without a word). And what every caller of the API needs alike: the status
// of a failed call, and the merge-patch content type.
import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { configError } from '../core/options.js';

/** `file`: KUBECONFIG ('' or undefined: the default places). Throws YGG_ERR_CONFIG when no cluster is found. */
export function loadKubeConfig(file?: string, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const value = file ?? '';
  const missing = kubeconfigMissing(value, env);
  if (missing) throw configError(`KUBECONFIG=${JSON.stringify(value)}: ${missing}`);
  const kc = new KubeConfig();
  try {
    // A list of files (KUBECONFIG=a:b, as kubectl takes it) is merged by the default loader.
    if (value !== '' && !value.includes(delimiter)) kc.loadFromFile(value);
    else kc.loadFromDefault();
  } catch (err) {
    throw configError(
      `KUBECONFIG=${JSON.stringify(value)} is not a kubeconfig file: ${(err as Error).message}`,
    );
  }
  if (!kc.getCurrentCluster()) {
    throw configError(
      `KUBECONFIG=${JSON.stringify(value)} names no current cluster (current-context is not set)`,
    );
  }
  return kc;
}

/** Why no cluster can be found there, or undefined. */
export function kubeconfigMissing(value: string, env: NodeJS.ProcessEnv): string | undefined {
  if (value !== '') {
    const files = value.split(delimiter).filter((f) => f !== '');
    if (files.some(isFile)) return undefined;
    return `${files.length > 1 ? 'none of these files exists' : 'no such file'}: give the kubeconfig file of the cluster`;
  }
  if (isFile(join(homedir(), '.kube', 'config')) || env.KUBERNETES_SERVICE_HOST) return undefined;
  return 'empty, no ~/.kube/config, and not in a pod (KUBERNETES_SERVICE_HOST unset): give the kubeconfig file of the cluster (DRIVER=kubernetes or LEADER_ELECTION=kubernetes)';
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The HTTP status of a client-node ApiException, if that is what `err` is. */
export function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Request options for a JSON merge patch (RFC 7386): maps merge, arrays are replaced whole. */
export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
