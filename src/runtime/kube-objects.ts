// DRIVER=kubernetes, the pure part: the agents' Deployment and headless Service as this driver creates
// them, the replicas as the pool sees them (from the Deployment, its pods and the Service's
// EndpointSlices), and how a scale-down victim is honoured on a given server. No I/O.
import { createHash } from 'node:crypto';
import { cpuQuantity, memoryQuantity } from '../core/quantity.js';
import type { Replica, ReplicaCondition, ReplicaSnapshot } from './driver.js';

export const AGENT_PORT = 8080;
/** Label every object of a pool carries; its value is DOCKER_OWNER (the pool's owner). */
export const POOL_LABEL = 'yggdrasil.dev/pool';
/** The ReplicaSet controller removes the pods with the lowest cost first (beta and on from 1.22). */
export const DELETION_COST = 'controller.kubernetes.io/pod-deletion-cost';
/** The cost given to a chosen victim (others have none, i.e. 0). */
export const VICTIM_COST = '-1000';
/** The annotation of a Deployment this driver made: the fingerprint of its pod template. */
export const TEMPLATE_HASH = 'yggdrasil.dev/template-hash';

export interface AgentObjectOptions {
  name: string;
  owner: string;
  image: string;
  env: Record<string, string>;
  replicas: number;
  healthPath: string;
  cpuLimit: number;
  memoryLimitBytes: number;
  cpuReservation: number;
  memoryReservationBytes: number;
  /** terminationGracePeriodSeconds: the agent's drain time after SIGTERM. */
  graceSeconds: number;
}

export function poolLabels(o: Pick<AgentObjectOptions, 'name' | 'owner'>): Record<string, string> {
  return {
    'app.kubernetes.io/name': o.name,
    'app.kubernetes.io/managed-by': 'yggdrasil',
    [POOL_LABEL]: o.owner,
  };
}

/** The agents' Deployment: hardened as the Docker driver's containers (non-root, read-only, no capabilities). */
export function agentDeployment(o: AgentObjectOptions): Record<string, unknown> {
  const labels = poolLabels(o);
  const env = { ...o.env, PORT: String(AGENT_PORT), AGENT_HOST: '0.0.0.0' };
  const template = {
    metadata: { labels },
    spec: {
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: o.graceSeconds,
      securityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001 },
      containers: [
        {
          name: 'agent',
          image: o.image,
          imagePullPolicy: 'IfNotPresent',
          ports: [{ containerPort: AGENT_PORT, name: 'http' }],
          env: Object.entries(env).map(([name, value]) => ({ name, value })),
          resources: {
            limits: { cpu: cpuQuantity(o.cpuLimit), memory: memoryQuantity(o.memoryLimitBytes) },
            requests: {
              cpu: cpuQuantity(o.cpuReservation),
              ...(o.memoryReservationBytes > 0 ? { memory: memoryQuantity(o.memoryReservationBytes) } : {}),
            },
          },
          readinessProbe: {
            httpGet: { path: o.healthPath, port: 'http' },
            periodSeconds: 1,
            failureThreshold: 2,
          },
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ['ALL'] },
          },
          volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
        },
      ],
      volumes: [{ name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } }],
    },
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: o.name, labels, annotations: { [TEMPLATE_HASH]: templateHash(template) } },
    spec: {
      replicas: o.replicas,
      selector: { matchLabels: { [POOL_LABEL]: o.owner, 'app.kubernetes.io/name': o.name } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template,
    },
  };
}

/** The pod template's fingerprint, kept on the Deployment this driver made (a restart compares it). */
export function templateHash(template: unknown): string {
  return createHash('sha256').update(JSON.stringify(template)).digest('hex').slice(0, 16);
}

/**
 * What a controller that starts over an existing Deployment changes in it. One this driver made
 * (it has TEMPLATE_HASH) takes the whole pod template of the configuration now when that differs
 * (env, limits, probe, image: a rolling update); one applied from manifests (deploy/kubernetes/, no
 * hash) is the user's: only AGENT_IMAGE is rolled out, the rest stays as written.
 */
export function adoptPlan(
  existing: { hash: string | undefined; image: string | undefined },
  ours: { hash: string; image: string },
): 'none' | 'template' | 'image' {
  if (existing.hash !== undefined) return existing.hash === ours.hash ? 'none' : 'template';
  return existing.image !== undefined && existing.image !== ours.image ? 'image' : 'none';
}

/** A headless Service: nothing but the selector the EndpointSlice controller publishes endpoints for. */
export function agentService(o: Pick<AgentObjectOptions, 'name' | 'owner'>): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: o.name, labels: poolLabels(o) },
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: false,
      selector: { [POOL_LABEL]: o.owner, 'app.kubernetes.io/name': o.name },
      ports: [{ name: 'http', port: AGENT_PORT, targetPort: 'http' }],
    },
  };
}

/** The parts of the API objects read here (v1 and v1beta1 EndpointSlices agree on them). */
export interface PodView {
  metadata?: {
    name?: string;
    uid?: string;
    deletionTimestamp?: Date | string;
    creationTimestamp?: Date | string;
  };
  spec?: { nodeName?: string };
  status?: { phase?: string; podIP?: string; containerStatuses?: Array<{ restartCount?: number }> };
}
export interface SliceView {
  ports?: Array<{ name?: string; port?: number }> | null;
  /** null in a slice with no endpoint yet. */
  endpoints?: Array<{
    addresses: string[];
    conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
    targetRef?: { kind?: string; name?: string; uid?: string };
  }> | null;
}

/**
 * The pool as the engine runs it: one replica per pod, its endpoint and condition from the
 * EndpointSlices (ready → ready; terminating → terminating, as is a pod being deleted; anything else
 * starting). A pod no slice lists yet has no endpoint.
 */
export function snapshotOf(
  desired: number,
  pods: readonly PodView[],
  slices: readonly SliceView[],
): ReplicaSnapshot {
  const byUid = new Map<string, { ip: string; port: number; ready: boolean; terminating: boolean }>();
  for (const s of slices) {
    const port = s.ports?.find((p) => p.name === 'http')?.port ?? s.ports?.[0]?.port ?? AGENT_PORT;
    for (const e of s.endpoints ?? []) {
      const uid = e.targetRef?.uid;
      const ip = e.addresses[0];
      if (!uid || !ip) continue;
      const c = e.conditions ?? {};
      byUid.set(uid, { ip, port, ready: c.ready === true, terminating: c.terminating === true });
    }
  }
  const replicas: Replica[] = [];
  for (const p of pods) {
    const name = p.metadata?.name;
    const uid = p.metadata?.uid;
    // A pod that ended (evicted, completed) is not a replica: the ReplicaSet has replaced it.
    if (!name || !uid || p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
    const e = byUid.get(uid);
    const deleting = p.metadata?.deletionTimestamp !== undefined && p.metadata.deletionTimestamp !== null;
    let condition: ReplicaCondition = 'starting';
    if (deleting || e?.terminating) condition = 'terminating';
    else if (e?.ready) condition = 'ready';
    // A terminating pod leaves the slices (without the terminating condition): drain it where it was.
    const ip = e?.ip ?? (condition === 'terminating' ? p.status?.podIP : undefined);
    const created = p.metadata?.creationTimestamp;
    replicas.push({
      id: name,
      incarnation: uid,
      endpoint: ip ? { host: ip, port: e?.port ?? AGENT_PORT } : undefined,
      condition,
      meta: {
        pod: name,
        ...(p.spec?.nodeName ? { node: p.spec.nodeName } : {}),
        ...(ip ? { ip } : {}),
        restarts: p.status?.containerStatuses?.[0]?.restartCount ?? 0,
        startedAt: created ? new Date(created).getTime() : 0,
      },
    });
  }
  replicas.sort((a, b) => Number(a.meta.startedAt) - Number(b.meta.startedAt) || a.id.localeCompare(b.id));
  return { desired, replicas };
}

/** The server's minor version from /version ("20", "21+"), NaN when it cannot be read. */
export function serverMinor(version: { major?: string; minor?: string }): number {
  if (version.major !== '1') return Number.NaN;
  return Number.parseInt(version.minor ?? '', 10);
}

/**
 * How a scale-down victim is honoured: from 1.22 (PodDeletionCost beta, on by default) the victim
 * gets a low pod-deletion-cost and the ReplicaSet controller removes it first; older servers ignore
 * the annotation (1.21 has it only behind an alpha gate), so the victim pod is deleted (gracefully) before the count is
 * lowered, and the ReplicaSet then removes the replacement it may have begun, never another replica.
 */
export function victimPlan(minor: number): 'annotate' | 'delete' {
  return Number.isFinite(minor) && minor >= 22 ? 'annotate' : 'delete';
}
