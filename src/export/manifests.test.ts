import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ExportConfig, exportManifests } from './manifests.js';

const base: ExportConfig = {
  AGENT_IMAGE: 'yggdrasil/agent:latest',
  AGENT_ENV: '',
  AGENT_HEALTH_PATH: '/health',
  AGENT_CPU_LIMIT: 0.5,
  AGENT_MEMORY_LIMIT: 512 * 1024 * 1024,
  AGENT_CPU_RESERVATION: 0.25,
  AGENT_MEMORY_RESERVATION: 256 * 1024 * 1024,
  MAX_CONCURRENCY: 80,
  MIN_INSTANCES: 1,
  MAX_INSTANCES: 10,
  REQUEST_TIMEOUT_MS: 300_000,
  SESSION_AFFINITY: true,
  TARGET_UTILIZATION: 0.7,
  TARGET_CPU: 0.7,
  STABLE_WINDOW_MS: 60_000,
  PANIC_WINDOW_MS: 6000,
  SCALE_TO_ZERO_GRACE_MS: 30_000,
};

// biome-ignore lint/suspicious/noExplicitAny: reading into plain manifest objects
const annotations = (d: any) => d.spec.template.metadata.annotations as Record<string, string>;

describe('exportManifests', () => {
  const table: Array<{
    name: string;
    target: 'knative' | 'cloudrun' | 'kubernetes' | 'compose';
    over: Partial<ExportConfig>;
    check: (e: ReturnType<typeof exportManifests>) => void;
  }> = [
    {
      name: 'knative: the KPA settings from the autoscaler options',
      target: 'knative',
      over: {},
      check: (e) => {
        const a = annotations(e.documents[0]);
        assert.equal(a['autoscaling.knative.dev/target-utilization-percentage'], '70');
        assert.equal(a['autoscaling.knative.dev/window'], '60s');
        assert.equal(a['autoscaling.knative.dev/panic-window-percentage'], '10');
        assert.equal(a['autoscaling.knative.dev/scale-to-zero-pod-retention-period'], undefined);
        assert.match(e.notes.join('\n'), /no session affinity/);
      },
    },
    {
      name: 'knative: MIN_INSTANCES=0 keeps the last pod SCALE_TO_ZERO_GRACE_MS',
      target: 'knative',
      over: { MIN_INSTANCES: 0, SESSION_AFFINITY: false, TARGET_CPU: 0 },
      check: (e) => {
        const a = annotations(e.documents[0]);
        assert.equal(a['autoscaling.knative.dev/min-scale'], '0');
        assert.equal(a['autoscaling.knative.dev/scale-to-zero-pod-retention-period'], '30s');
        assert.deepEqual(e.notes, []);
      },
    },
    {
      name: 'cloudrun: limits only (Cloud Run has no requests), session affinity on',
      target: 'cloudrun',
      over: {},
      check: (e) => {
        // biome-ignore lint/suspicious/noExplicitAny: a plain manifest object
        const c = (e.documents[0] as any).spec.template.spec.containers[0];
        assert.deepEqual(c.resources, { limits: { cpu: '500m', memory: '512Mi' } });
        assert.equal(annotations(e.documents[0])['run.googleapis.com/sessionAffinity'], 'true');
      },
    },
    {
      name: 'kubernetes: no HPA when TARGET_CPU is off or MIN = MAX',
      target: 'kubernetes',
      over: { TARGET_CPU: 0 },
      check: (e) =>
        assert.deepEqual(
          e.documents.map((d) => d.kind),
          ['Deployment', 'Service'],
        ),
    },
    {
      name: 'kubernetes: MIN_INSTANCES=0 keeps one replica and says so',
      target: 'kubernetes',
      over: { MIN_INSTANCES: 0, MAX_INSTANCES: 1 },
      check: (e) => {
        // biome-ignore lint/suspicious/noExplicitAny: a plain manifest object
        assert.equal((e.documents[0] as any).spec.replicas, 1);
        assert.match(e.notes.join('\n'), /cannot scale to zero/);
      },
    },
    {
      name: 'compose: AGENT_ENV names pass through, values stay out',
      target: 'compose',
      over: { AGENT_ENV: 'A_KEY,B_KEY' },
      check: (e) => {
        // biome-ignore lint/suspicious/noExplicitAny: a plain manifest object
        assert.deepEqual((e.documents[0] as any).services['yggdrasil-agent'].environment, ['A_KEY', 'B_KEY']);
      },
    },
  ];
  for (const t of table)
    it(t.name, () => t.check(exportManifests(t.target, { ...base, ...t.over }, 'yggdrasil-agent')));
});
