// Scale 1 → 5 → 1 on each runtime: the process driver, Docker Engine, Docker Swarm and Kubernetes, through the
// same control plane the platform uses (createPoolControl), with the limits moved as PUT /scaling
// moves them. Times: until 5 are ready, then until 1 is left (the others drained and gone).
// Run alone: npx tsx bench/engines.ts [--quick]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadPlatformConfig } from '../src/core/config.js';
import { createLogger } from '../src/core/logger.js';
import { createDriver, createPoolControl } from '../src/roles/parts.js';
import { startKubeEnv } from '../test/helpers/kube/env.js';
import { KUBE_BIN_DIR } from '../test/helpers/services.js';
import { runSwarmRollout } from './rollout.js';
import type { BenchSection } from './section.js';
import { median } from './stats.js';

type Kind = 'process' | 'docker' | 'swarm' | 'kubernetes';
const KINDS: Kind[] = ['process', 'docker', 'swarm', 'kubernetes'];

function available(kind: Kind): boolean {
  if (kind === 'process') return true;
  if (kind === 'kubernetes') {
    try {
      execFileSync('etcd', ['--version'], { stdio: 'ignore' });
      return (
        existsSync(join(KUBE_BIN_DIR, 'kube-apiserver')) &&
        existsSync(join(KUBE_BIN_DIR, 'kube-controller-manager'))
      );
    } catch {
      return false;
    }
  }
  try {
    execFileSync('docker', ['image', 'inspect', 'yggdrasil/agent:latest'], { stdio: 'ignore' });
    if (kind === 'docker') return true;
    return (
      execFileSync('docker', ['info', '--format', '{{.Swarm.LocalNodeState}}'], {
        encoding: 'utf8',
      }).trim() === 'active'
    );
  } catch {
    return false;
  }
}

async function until(check: () => boolean, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (!check()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
    await sleep(20);
  }
  return performance.now() - t0;
}

async function scaleRun(
  kind: Kind,
  extra: Record<string, string> = {},
): Promise<{ upMs: number; downMs: number }> {
  const owner = `ygg-bench-${randomBytes(3).toString('hex')}`;
  const cfg = loadPlatformConfig(
    {
      DRIVER: kind,
      DOCKER_OWNER: owner,
      DOCKER_NETWORK: owner,
      MIN_INSTANCES: '1',
      MAX_INSTANCES: '5',
      LOG_LEVEL: 'silent',
      AGENT_MEMORY_LIMIT: '128m',
      AGENT_MEMORY_RESERVATION: '32m',
      AGENT_CPU_RESERVATION: '0.05',
      HEALTH_CHECK_INTERVAL: '1000',
      STOP_GRACE_MS: '2000',
      DRAIN_TIMEOUT_MS: '2000',
      STARTUP_PROBE_INTERVAL_MS: '20',
      ...extra,
    },
    undefined,
  );
  const logger = createLogger('silent');
  const driver = await createDriver(cfg, { logger });
  const pool = createPoolControl(cfg, driver, logger);
  try {
    await pool.start();
    await pool.waitForReady(1, 120_000);
    const live = () => pool.status().instances.filter((i) => i.state !== 'stopped').length;
    pool.setScalingLimits({ minInstances: 5, maxInstances: 5 }, 'bench');
    const upMs = await until(() => pool.readyCount() >= 5, 180_000);
    pool.setScalingLimits({ minInstances: 1, maxInstances: 1 }, 'bench');
    const downMs = await until(() => live() === 1 && pool.readyCount() === 1, 180_000);
    return { upMs, downMs };
  } finally {
    await pool.stop();
    if (kind === 'docker') {
      const { DockerDriver } = await import('../src/runtime/docker-driver.js');
      await (driver as InstanceType<typeof DockerDriver>).down().catch(() => {});
    }
  }
}

export async function run(opts: { quick: boolean }): Promise<BenchSection[]> {
  const runs = opts.quick ? 1 : 3;
  const kinds = KINDS.filter(available);
  const rows: BenchSection['rows'] = [];
  const figures: Record<string, number> = {};
  for (const kind of kinds) {
    const results = [];
    for (let i = 0; i < runs; i++) {
      if (kind !== 'kubernetes') {
        results.push(await scaleRun(kind));
        continue;
      }
      // A control plane of its own for each run; the names deploy/kubernetes/rbac.yaml grants.
      const kube = await startKubeEnv();
      try {
        results.push(
          await scaleRun(kind, {
            KUBECONFIG: kube.kubeconfig,
            KUBE_NAMESPACE: kube.namespace,
            DOCKER_OWNER: 'yggdrasil',
          }),
        );
      } finally {
        await kube.stop();
      }
    }
    const up = Math.round(median(results.map((r) => r.upMs)));
    const down = Math.round(median(results.map((r) => r.downMs)));
    rows.push({ runtime: kind, runs, '1 → 5 ready (median ms)': up, '5 → 1 (median ms)': down });
    figures[`${kind}UpMs`] = up;
    figures[`${kind}DownMs`] = down;
  }
  const scale: BenchSection = {
    title: 'Scale 1 → 5 → 1 on each runtime',
    rows,
    notes: [
      'The platform’s control plane (createPoolControl) with MIN/MAX_INSTANCES moved to 5, then to 1, as PUT /scaling does; no router, no load. Up: until 5 answer their health checks (process, Docker) or Swarm reports 5 healthy tasks. Down: until one instance is left (the others drained, DRAIN_TIMEOUT_MS=2000, and stopped).',
      'Swarm’s figures include its task scheduling and its health checks (the image’s HEALTHCHECK, every 10 s at most): a task counts as ready when Docker says healthy.',
      'Kubernetes: a real kube-apiserver and kube-controller-manager (1.20, built from Debian’s source) with etcd, and a hollow node (test/helpers/kube/hollow-node.ts) that runs each pod as a reference-agent process and probes its readiness every second. The figure is the control plane’s path (scale subresource → ReplicaSet → pods → readiness → EndpointSlice → the driver’s informers), without image pulls or container starts; the same pods on a real kubelet add those.',
      ...(kinds.length < KINDS.length
        ? [
            `Not measured here: ${KINDS.filter((k) => !kinds.includes(k)).join(', ')} (no dockerd, image or swarm; for kubernetes, etcd-server and .ci/build-kubernetes).`,
          ]
        : []),
    ],
    figures,
  };
  // The rollout has its own test (test/swarm-rollout.test.ts): the quick bench leaves it out.
  if (opts.quick || !kinds.includes('swarm')) return [scale];
  const r = await runSwarmRollout({
    DOCKER_OWNER: `ygg-bench-${randomBytes(3).toString('hex')}`,
    DOCKER_NETWORK: 'yggdrasil',
  });
  const rollout: BenchSection = {
    title: 'Rolling update of AGENT_IMAGE under load (Swarm)',
    rows: [
      {
        tasks: 2,
        requests: r.total,
        failed: r.failed,
        'rolled out in (ms)': r.rolledMs,
        'served by old and new tasks': r.servedOld && r.servedNew ? 'yes' : 'no',
      },
    ],
    notes: [
      'The platform on 2 Swarm tasks is restarted with a new AGENT_IMAGE (a second tag of the agent image); it adopts the service and changes the image, and Swarm rolls it out start-first, one task at a time. 8 closed-loop clients POST /process (50 ms of work) through the new platform’s router from before the rollout until both tasks run the new image and are ready, and 1 s more (bench/rollout.ts, also run by test/swarm-rollout.test.ts). The issue’s goal: 0 failed.',
    ],
    figures: { swarmRolloutMs: r.rolledMs, swarmRolloutRequests: r.total, swarmRolloutFailed: r.failed },
  };
  return [scale, rollout];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await run({ quick: process.argv.includes('--quick') }), null, 2));
}
