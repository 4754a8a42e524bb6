// `yggdrasil export`: the same configuration as another platform's manifests. Pure: a configuration
// in, plain objects out (the CLI prints them as YAML), each with the notes a user must read (what the
// target cannot express). Knative and Cloud Run speak serving.knative.dev/v1; the mapping follows
// Knative's autoscaling annotations and Cloud Run's documented ones.
import type { PlatformConfig } from '../core/config.js';
import { parseEnvNames } from '../core/env-file.js';
import { cpuQuantity, memoryQuantity } from '../core/quantity.js';

export const EXPORT_TARGETS = ['knative', 'cloudrun', 'kubernetes', 'compose'] as const;
export type ExportTarget = (typeof EXPORT_TARGETS)[number];

export interface Exported {
  /** The documents, in order (one YAML document each). */
  documents: Array<Record<string, unknown>>;
  /** What the target cannot express, or what the user must provide (printed as comments). */
  notes: string[];
}

export type ExportConfig = Pick<
  PlatformConfig,
  | 'AGENT_IMAGE'
  | 'AGENT_ENV'
  | 'AGENT_HEALTH_PATH'
  | 'AGENT_CPU_LIMIT'
  | 'AGENT_MEMORY_LIMIT'
  | 'AGENT_CPU_RESERVATION'
  | 'AGENT_MEMORY_RESERVATION'
  | 'MAX_CONCURRENCY'
  | 'MIN_INSTANCES'
  | 'MAX_INSTANCES'
  | 'REQUEST_TIMEOUT_MS'
  | 'SESSION_AFFINITY'
  | 'TARGET_UTILIZATION'
  | 'TARGET_CPU'
  | 'STABLE_WINDOW_MS'
  | 'PANIC_WINDOW_MS'
  | 'SCALE_TO_ZERO_GRACE_MS'
>;

/** The port the agent image listens on (docker/agent.Dockerfile). */
const AGENT_PORT = 8080;
/** Cloud Run's longest request timeout (3600 s). */
const CLOUD_RUN_MAX_TIMEOUT_S = 3600;

const cpu = cpuQuantity;
const mem = memoryQuantity;
const seconds = (ms: number) => `${Math.max(1, Math.round(ms / 1000))}s`;
const timeoutSeconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

/** Variables AGENT_ENV names, taken from a Secret the user creates (never a value of this machine). */
function secretEnv(cfg: ExportConfig, secret: string) {
  return parseEnvNames(cfg.AGENT_ENV).map((name) => ({
    name,
    valueFrom: { secretKeyRef: { name: secret, key: name } },
  }));
}

function resources(cfg: ExportConfig) {
  return {
    limits: { cpu: cpu(cfg.AGENT_CPU_LIMIT), memory: mem(cfg.AGENT_MEMORY_LIMIT) },
    requests: {
      cpu: cpu(cfg.AGENT_CPU_RESERVATION),
      ...(cfg.AGENT_MEMORY_RESERVATION > 0 ? { memory: mem(cfg.AGENT_MEMORY_RESERVATION) } : {}),
    },
  };
}

function envNote(cfg: ExportConfig, secret: string): string[] {
  const names = parseEnvNames(cfg.AGENT_ENV);
  return names.length === 0
    ? []
    : [
        `AGENT_ENV names ${names.join(', ')}: create the Secret "${secret}" with those keys (no value of this machine is exported).`,
      ];
}

function knativeService(
  cfg: ExportConfig,
  name: string,
  annotations: Record<string, string>,
  cloudRun: boolean,
) {
  const secret = `${name}-env`;
  const env = secretEnv(cfg, secret);
  const container: Record<string, unknown> = {
    image: cfg.AGENT_IMAGE,
    ports: [{ containerPort: AGENT_PORT }],
    ...(env.length > 0 ? { env } : {}),
    resources: cloudRun ? { limits: resources(cfg).limits } : resources(cfg),
    readinessProbe: { httpGet: { path: cfg.AGENT_HEALTH_PATH } },
  };
  return {
    apiVersion: 'serving.knative.dev/v1',
    kind: 'Service',
    metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'yggdrasil-export' } },
    spec: {
      template: {
        metadata: { annotations },
        spec: {
          containerConcurrency: cfg.MAX_CONCURRENCY,
          timeoutSeconds: cloudRun
            ? Math.min(CLOUD_RUN_MAX_TIMEOUT_S, timeoutSeconds(cfg.REQUEST_TIMEOUT_MS))
            : timeoutSeconds(cfg.REQUEST_TIMEOUT_MS),
          containers: [container],
        },
      },
    },
  };
}

export function exportKnative(cfg: ExportConfig, name: string): Exported {
  const annotations: Record<string, string> = {
    'autoscaling.knative.dev/class': 'kpa.autoscaling.knative.dev',
    'autoscaling.knative.dev/metric': 'concurrency',
    'autoscaling.knative.dev/min-scale': String(cfg.MIN_INSTANCES),
    'autoscaling.knative.dev/max-scale': String(cfg.MAX_INSTANCES),
    'autoscaling.knative.dev/target-utilization-percentage': String(Math.round(cfg.TARGET_UTILIZATION * 100)),
    'autoscaling.knative.dev/window': seconds(cfg.STABLE_WINDOW_MS),
    'autoscaling.knative.dev/panic-window-percentage': String(
      Math.max(1, Math.round((cfg.PANIC_WINDOW_MS / cfg.STABLE_WINDOW_MS) * 100)),
    ),
    ...(cfg.MIN_INSTANCES === 0
      ? { 'autoscaling.knative.dev/scale-to-zero-pod-retention-period': seconds(cfg.SCALE_TO_ZERO_GRACE_MS) }
      : {}),
  };
  return {
    documents: [knativeService(cfg, name, annotations, false)],
    notes: [
      ...(cfg.SESSION_AFFINITY
        ? [
            'SESSION_AFFINITY: Knative Serving has no session affinity; keep a Yggdrasil router in front to pin sessions.',
          ]
        : []),
      ...(cfg.TARGET_CPU > 0
        ? [
            `TARGET_CPU=${cfg.TARGET_CPU}: Knative's KPA scales on concurrency only (CPU needs class hpa.autoscaling.knative.dev instead).`,
          ]
        : []),
      ...envNote(cfg, `${name}-env`),
    ],
  };
}

export function exportCloudRun(cfg: ExportConfig, name: string): Exported {
  const annotations: Record<string, string> = {
    'autoscaling.knative.dev/minScale': String(cfg.MIN_INSTANCES),
    'autoscaling.knative.dev/maxScale': String(cfg.MAX_INSTANCES),
    ...(cfg.SESSION_AFFINITY ? { 'run.googleapis.com/sessionAffinity': 'true' } : {}),
  };
  const timeout = timeoutSeconds(cfg.REQUEST_TIMEOUT_MS);
  return {
    documents: [knativeService(cfg, name, annotations, true)],
    notes: [
      'Cloud Run scales on concurrency and CPU by itself: TARGET_UTILIZATION, the windows and TARGET_CPU have no Cloud Run setting.',
      ...(timeout > CLOUD_RUN_MAX_TIMEOUT_S
        ? [`REQUEST_TIMEOUT_MS=${cfg.REQUEST_TIMEOUT_MS} is past Cloud Run's 3600 s: timeoutSeconds is 3600.`]
        : []),
      ...(cfg.SESSION_AFFINITY
        ? ["SESSION_AFFINITY: Cloud Run's session affinity is a best effort (a cookie), not a pin."]
        : []),
      ...envNote(cfg, `${name}-env`),
    ],
  };
}

export function exportCompose(cfg: ExportConfig, name: string): Exported {
  const env = parseEnvNames(cfg.AGENT_ENV);
  return {
    documents: [
      {
        version: '3.8',
        services: {
          [name]: {
            image: cfg.AGENT_IMAGE,
            ...(env.length > 0 ? { environment: env } : {}),
            expose: [String(AGENT_PORT)],
            read_only: true,
            tmpfs: ['/tmp'],
            cap_drop: ['ALL'],
            security_opt: ['no-new-privileges:true'],
            deploy: {
              replicas: Math.max(1, cfg.MIN_INSTANCES),
              resources: {
                limits: {
                  cpus: String(cfg.AGENT_CPU_LIMIT),
                  memory: `${Math.round(cfg.AGENT_MEMORY_LIMIT / (1024 * 1024))}M`,
                },
                ...(cfg.AGENT_MEMORY_RESERVATION > 0
                  ? {
                      reservations: {
                        memory: `${Math.round(cfg.AGENT_MEMORY_RESERVATION / (1024 * 1024))}M`,
                      },
                    }
                  : {}),
              },
            },
            healthcheck: {
              test: ['CMD', 'node', 'dist/agent/healthcheck.js'],
              interval: '10s',
              timeout: '3s',
            },
          },
        },
      },
    ],
    notes: [
      `Compose runs a fixed ${Math.max(1, cfg.MIN_INSTANCES)} replica(s): no autoscaling, no MAX_CONCURRENCY. For those, run Yggdrasil itself (docker-compose.yml in this repository).`,
      ...(env.length > 0
        ? [
            `AGENT_ENV names ${env.join(', ')}: Compose passes them from the environment docker-compose runs in.`,
          ]
        : []),
    ],
  };
}

export function exportKubernetes(cfg: ExportConfig, name: string): Exported {
  const labels = { 'app.kubernetes.io/name': name, 'app.kubernetes.io/managed-by': 'yggdrasil-export' };
  const env = secretEnv(cfg, `${name}-env`);
  const replicas = Math.max(1, cfg.MIN_INSTANCES);
  return {
    documents: [
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name, labels },
        spec: {
          replicas,
          selector: { matchLabels: { 'app.kubernetes.io/name': name } },
          template: {
            metadata: { labels },
            spec: {
              automountServiceAccountToken: false,
              securityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001 },
              containers: [
                {
                  name: 'agent',
                  image: cfg.AGENT_IMAGE,
                  ports: [{ containerPort: AGENT_PORT, name: 'http' }],
                  ...(env.length > 0 ? { env } : {}),
                  resources: resources(cfg),
                  readinessProbe: { httpGet: { path: cfg.AGENT_HEALTH_PATH, port: 'http' } },
                  livenessProbe: {
                    httpGet: { path: cfg.AGENT_HEALTH_PATH, port: 'http' },
                    failureThreshold: 3,
                  },
                  securityContext: {
                    allowPrivilegeEscalation: false,
                    readOnlyRootFilesystem: true,
                    capabilities: { drop: ['ALL'] },
                  },
                  volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
                },
              ],
              volumes: [{ name: 'tmp', emptyDir: {} }],
            },
          },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, labels },
        spec: {
          selector: { 'app.kubernetes.io/name': name },
          ports: [{ port: 80, targetPort: 'http', name: 'http' }],
          ...(cfg.SESSION_AFFINITY ? { sessionAffinity: 'ClientIP' } : {}),
        },
      },
      ...(cfg.TARGET_CPU > 0 && cfg.MAX_INSTANCES > replicas
        ? [
            {
              apiVersion: 'autoscaling/v2',
              kind: 'HorizontalPodAutoscaler',
              metadata: { name, labels },
              spec: {
                scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
                minReplicas: replicas,
                maxReplicas: cfg.MAX_INSTANCES,
                metrics: [
                  {
                    type: 'Resource',
                    resource: {
                      name: 'cpu',
                      target: { type: 'Utilization', averageUtilization: Math.round(cfg.TARGET_CPU * 100) },
                    },
                  },
                ],
              },
            },
          ]
        : []),
    ],
    notes: [
      'Plain Kubernetes has no per-pod concurrency limit or request queue: MAX_CONCURRENCY is not enforced (put a Yggdrasil router in front, or export to Knative).',
      ...(cfg.SESSION_AFFINITY
        ? ['SESSION_AFFINITY: a Service pins by client address (ClientIP), not by session id.']
        : []),
      ...(cfg.MIN_INSTANCES === 0
        ? ['MIN_INSTANCES=0: a Deployment cannot scale to zero by itself; it keeps 1 replica.']
        : []),
      ...envNote(cfg, `${name}-env`),
    ],
  };
}

export function exportManifests(target: ExportTarget, cfg: ExportConfig, name: string): Exported {
  switch (target) {
    case 'knative':
      return exportKnative(cfg, name);
    case 'cloudrun':
      return exportCloudRun(cfg, name);
    case 'kubernetes':
      return exportKubernetes(cfg, name);
    case 'compose':
      return exportCompose(cfg, name);
  }
}
