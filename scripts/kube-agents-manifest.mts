// Prints deploy/kubernetes/agents.yaml from the driver itself:
//   node --import tsx scripts/kube-agents-manifest.mts > deploy/kubernetes/agents.yaml

import { stringify } from 'yaml';
import { loadPlatformConfig } from '../src/core/config.js';
import { createLogger } from '../src/core/logger.js';
import { kubernetesOptions } from '../src/roles/parts.js';
import { agentManifests } from '../src/runtime/kubernetes-driver.js';

const cfg = loadPlatformConfig({
  DRIVER: 'kubernetes',
  DOCKER_OWNER: 'yggdrasil',
  LOG_LEVEL: 'info',
} as never);
const m = agentManifests(kubernetesOptions(cfg, createLogger('silent')), 1);
// Without the driver's template hash: a Deployment applied from here is the user's (the controller
// rolls only AGENT_IMAGE out to it, never its own env or resources over the file's).
delete (m.deployment.metadata as { annotations?: unknown }).annotations;
process.stdout.write(
  "# The agents' Deployment and headless Service, exactly as the controller creates them when they are\n# missing (DRIVER=kubernetes, DOCKER_OWNER=yggdrasil, defaults otherwise): apply it to start with\n# your own image and resources; the controller adopts it and scales it. Its replicas field is the\n# controller's to change. test/kubernetes-manifests.test.ts keeps it equal to the driver's.\n" +
    stringify(m.deployment, { aliasDuplicateObjects: false }) +
    '---\n' +
    stringify(m.service, { aliasDuplicateObjects: false }),
);
