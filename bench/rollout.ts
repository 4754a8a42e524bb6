// A rolling update of AGENT_IMAGE on DRIVER=swarm under load (issue 12's goal: 0 failed requests).
// A platform on image A reaches 2 tasks; it is restarted (the first leaves the service to Swarm, as a
// killed controller would) with AGENT_IMAGE = B, adopts the service and changes its image; Swarm rolls
// it out start-first, one task at a time, while 8 closed-loop clients POST /process through the new
// platform's router. Shared by the bench (engines section) and test/swarm-rollout.test.ts.
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { Agent, request } from 'undici';
import type { Platform } from '../src/platform.js';
import { bootPlatform, waitFor } from '../test/helpers/platform.js';

export interface RolloutResult {
  total: number;
  failed: number;
  statuses: Record<string, number>;
  /** From the new platform's start of load until both tasks run the new image and are ready. */
  rolledMs: number;
  /** Some requests were served by the old tasks, and some by the new ones. */
  servedOld: boolean;
  servedNew: boolean;
}

interface Task {
  ID: string;
  DesiredState: string;
  Status: { State: string };
  Spec: { ContainerSpec: { Image: string } };
}

const NEXT = 'yggdrasil/agent:rollout-test';

export async function runSwarmRollout(owner: {
  DOCKER_OWNER: string;
  DOCKER_NETWORK: string;
}): Promise<RolloutResult> {
  const docker = new Docker({ version: 'v1.41' });
  const service = `${owner.DOCKER_OWNER}-agents`;
  const dispatcher = new Agent({ connections: 16 });
  const config = (image: string) => ({
    DRIVER: 'swarm',
    ...owner,
    AGENT_IMAGE: image,
    MIN_INSTANCES: '2',
    MAX_INSTANCES: '2',
    AGENT_MEMORY_LIMIT: '256m',
    LOG_LEVEL: 'warn',
  });
  const running = async () =>
    ((await docker.listTasks({ filters: { service: [service] } })) as unknown as Task[]).filter(
      (t) => t.DesiredState === 'running' && t.Status.State === 'running',
    );
  await docker.getImage('yggdrasil/agent:latest').tag({ repo: 'yggdrasil/agent', tag: 'rollout-test' });
  let p: Platform | undefined;
  try {
    p = await bootPlatform(config('yggdrasil/agent:latest'));
    await p.controller.waitForReady(2, 120_000);
    const old = (await running()).map((t) => t.ID);
    await p.controller.abandon();
    await p.stop();
    p = await bootPlatform(config(NEXT));
    await p.controller.waitForReady(1, 60_000);

    const statuses: Record<string, number> = {};
    const served = new Set<string>();
    let loading = true;
    const lb = p.lbUrl;
    const workers = Array.from({ length: 8 }, async () => {
      while (loading) {
        let key: string;
        try {
          const res = await request(`${lb}/process`, {
            method: 'POST',
            body: JSON.stringify({ workMs: 50 }),
            headers: { 'content-type': 'application/json' },
            dispatcher,
          });
          await res.body.dump();
          key = String(res.statusCode);
          served.add(String(res.headers['x-yggdrasil-instance']));
        } catch (err) {
          key = (err as { code?: string }).code ?? 'error';
        }
        statuses[key] = (statuses[key] ?? 0) + 1;
      }
    });
    const t0 = Date.now();
    const platform = p;
    await waitFor(
      'two running tasks of the new image, none of the old',
      async () => {
        const now = await running();
        return (
          now.length === 2 &&
          now.every((t) => t.Spec.ContainerSpec.Image.startsWith(NEXT) && !old.includes(t.ID)) &&
          platform.controller.readyCount() === 2
        );
      },
      180_000,
      250,
    );
    const rolledMs = Date.now() - t0;
    await sleep(1000); // the new tasks serve
    loading = false;
    await Promise.all(workers);
    const total = Object.values(statuses).reduce((a, b) => a + b, 0);
    return {
      total,
      failed: total - (statuses['200'] ?? 0),
      statuses,
      rolledMs,
      servedOld: [...served].some((id) => old.includes(id)),
      servedNew: [...served].some((id) => !old.includes(id)),
    };
  } finally {
    await p?.stop().catch(() => {});
    await dispatcher.close();
    for (const s of await docker.listServices({ filters: { name: [service] } }))
      await docker
        .getService(s.ID)
        .remove()
        .catch(() => {});
    await docker
      .getImage(NEXT)
      .remove()
      .catch(() => {});
  }
}
