// The cluster to talk to (DRIVER=kubernetes, LEADER_ELECTION=kubernetes): a kubeconfig file when
// KUBECONFIG names one, else client-node's default (KUBECONFIG, ~/.kube/config, the pod's service account).
import { delimiter } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';

export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  // A list of files (KUBECONFIG=a:b, as kubectl takes it) is merged by the default loader.
  if (file && !file.includes(delimiter)) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}
