// The whole platform on DRIVER=kubernetes, against a real kube-apiserver and kube-controller-manager
// with the controller's RBAC and a hollow node: the pool reaches MIN_INSTANCES as a Deployment, the
// router serves from its pods, a pod deleted by hand is replaced and its sessions move with the moved
// header, the autoscaler scales the Deployment on load and back, a restart adopts the running pods,
// and stopping the platform leaves nothing in the namespace.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { Platform } from '../src/platform.js';
import { type KubeEnv, startKubeEnv } from './helpers/kube/env.js';
import { bootPlatform, FAST_AUTOSCALER, waitFor } from './helpers/platform.js';
import { requireService } from './helpers/services.js';

describe('the platform on DRIVER=kubernetes', {
  skip: requireService('kubernetes'),
  timeout: 300_000,
}, () => {
  let env: KubeEnv;
  let p: Platform | undefined;
  let config: Record<string, string>;

  const boot = async (extra: Record<string, string> = {}) =>
    bootPlatform({
      ...config,
      ...extra,
      MIN_INSTANCES: '1',
      MAX_INSTANCES: '3',
      ...FAST_AUTOSCALER,
      DRAIN_TIMEOUT_MS: '3000',
    });

  before(async () => {
    env = await startKubeEnv();
    config = {
      DRIVER: 'kubernetes',
      KUBECONFIG: env.kubeconfig,
      KUBE_NAMESPACE: env.namespace,
      DOCKER_OWNER: 'yggdrasil',
    };
    p = await boot();
    await p.controller.waitForReady(1, 60_000);
  });
  after(async () => {
    await p?.stop();
    await env?.stop();
  });

  const kubectl = async (...args: string[]) => {
    const r = await env.cluster.kubectl([...args, '-n', env.namespace]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const post = async (session?: string) => {
    const res = await request(`${p!.lbUrl}/process`, {
      method: 'POST',
      body: JSON.stringify({ workMs: 200 }),
      headers: { 'content-type': 'application/json', ...(session ? { 'x-session-id': session } : {}) },
    });
    await res.body.dump();
    return {
      status: res.statusCode,
      instance: String(res.headers['x-yggdrasil-instance']),
      moved: res.headers['x-yggdrasil-session-moved'],
    };
  };

  it('a load step scales the Deployment up, and the way back brings it to MIN_INSTANCES', async () => {
    assert.equal(p!.controller.status().driver, 'kubernetes');
    const until = Date.now() + 30_000;
    const served = new Set<string>();
    const statuses: number[] = [];
    // 12 in flight against MAX_CONCURRENCY 4 × 0.5: the autoscaler wants 3 (MAX_INSTANCES).
    await Promise.all(
      Array.from({ length: 12 }, async () => {
        while (Date.now() < until && p!.controller.readyCount() < 3) {
          const r = await post();
          statuses.push(r.status);
          served.add(r.instance);
        }
      }),
    );
    assert.equal(p!.controller.readyCount(), 3, 'three ready pods under load');
    const replicas = JSON.parse(await kubectl('get', 'deployment', 'yggdrasil-agents', '-o', 'json')).spec
      .replicas;
    assert.equal(replicas, 3, 'the Deployment was scaled');
    assert.ok(
      statuses.every((s) => s === 200),
      `every request served: ${statuses.filter((s) => s !== 200)}`,
    );
    await waitFor('back to 1 replica', () => p!.controller.status().instances.length === 1, 60_000, 200);
    const after = JSON.parse(await kubectl('get', 'deployment', 'yggdrasil-agents', '-o', 'json')).spec
      .replicas;
    assert.equal(after, 1);
  });

  it('a pod deleted by hand is replaced; its session moves with the moved header', async () => {
    const first = await post('kube-session');
    assert.equal(first.status, 200);
    await kubectl('delete', 'pod', first.instance, '--wait=false');
    await waitFor(
      'a replacement pod, ready',
      () => {
        const s = p!.controller.status();
        return s.readyInstances === 1 && !s.instances.some((i) => i.id === first.instance);
      },
      60_000,
      100,
    );
    const again = await post('kube-session');
    assert.equal(again.status, 200);
    assert.notEqual(again.instance, first.instance);
    assert.equal(again.moved, '1');
  });

  it('a restart adopts the running pod (the same one serves; no new pod)', async () => {
    const pods = (await kubectl('get', 'pods', '-o', 'name')).trim().split('\n').sort();
    await p!.controller.abandon(); // as a deposed or killed controller leaves it
    await p!.stop();
    p = await boot();
    await p.controller.waitForReady(1, 30_000);
    const now = (await kubectl('get', 'pods', '-o', 'name')).trim().split('\n').sort();
    assert.deepEqual(now, pods);
    const r = await post();
    assert.equal(r.status, 200);
    assert.equal(`pod/${r.instance}`, pods[0]);
  });

  it('a restart with another AGENT_IMAGE rolls the Deployment out under load: new pods, no request failed', async () => {
    const before = (await kubectl('get', 'pods', '-o', 'name')).trim().split('\n');
    await p!.controller.abandon();
    await p!.stop();
    p = await boot({ AGENT_IMAGE: 'yggdrasil/agent:next' });
    await p.controller.waitForReady(1, 30_000);
    const statuses: number[] = [];
    let loading = true;
    const load = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (loading) statuses.push((await post()).status);
      }),
    );
    await waitFor(
      'the template on the new image and its pod ready, the old pod gone',
      async () => {
        const d = JSON.parse(await kubectl('get', 'deployment', 'yggdrasil-agents', '-o', 'json'));
        const pods = (await kubectl('get', 'pods', '-o', 'name')).trim().split('\n');
        return (
          d.spec.template.spec.containers[0].image === 'yggdrasil/agent:next' &&
          !pods.some((x) => before.includes(x)) &&
          p!.controller.readyCount() >= 1 // the load may have scaled it up meanwhile
        );
      },
      60_000,
      200,
    ).catch(async (err) => {
      loading = false;
      const d = JSON.parse(await kubectl('get', 'deployment', 'yggdrasil-agents', '-o', 'json'));
      throw new Error(
        `${(err as Error).message}: image ${d.spec.template.spec.containers[0].image}, pods ${await kubectl('get', 'pods', '-o', 'wide')}, ready ${p!.controller.readyCount()}, before ${before}`,
      );
    });
    await new Promise((r) => setTimeout(r, 500));
    loading = false;
    await load;
    assert.ok(statuses.length > 10, `${statuses.length} requests`);
    assert.deepEqual(
      statuses.filter((s) => s !== 200),
      [],
      'no request failed during the rollout',
    );
  });

  it('stopping the platform leaves nothing in the namespace', async () => {
    await p!.stop();
    p = undefined;
    await waitFor(
      'an empty namespace',
      async () => (await kubectl('get', 'deployments,replicasets,pods,services', '-o', 'name')).trim() === '',
      60_000,
      200,
    );
    assert.equal(env.node.pids().size, 0);
  });
});
