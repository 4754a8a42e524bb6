// The cluster to talk to (DRIVER=kubernetes, LEADER_ELECTION=kubernetes): a kubeconfig file when
// KUBECONFIG names one, else client-node's default (KUBECONFIG, ~/.kube/config, the pod's service
// account; config.ts refuses the start when none of them is there). And what every caller of the API
// needs alike: the status of a failed call, and the merge-patch content type.
import { delimiter } from 'node:path';
import { KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';

export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  // A list of files (KUBECONFIG=a:b, as kubectl takes it) is merged by the default loader.
  if (file && !file.includes(delimiter)) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}

/** The HTTP status of a client-node ApiException, if that is what `err` is. */
export function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Request options for a JSON merge patch (RFC 7386): maps merge, arrays are replaced whole. */
export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
