// A hollow node for the test cluster (as kubemark's hollow nodes): it registers a Node, binds the
// pods nobody scheduled to itself (it is the only node), and runs each pod bound to it as a local
// process on a loopback address of its own (127.0.0.N, the pod IP), with the container's env and
// PORT=<containerPort>. It reports what a kubelet reports: phase, pod IP, readiness from the pod's
// readinessProbe (httpGet), restarts when the process dies (restartPolicy Always), and on deletion
// SIGTERM, the grace period, SIGKILL, then the final delete. Its processes die with the test (each
// group has the platform's watchdog).
import { type ChildProcess, spawn } from 'node:child_process';
import {
  CoreV1Api,
  type Informer,
  KubeConfig,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { request } from 'undici';
import { startWatchdog, stopWatchdog } from '../../../src/runtime/watchdog.js';

export interface HollowNodeOptions {
  kubeconfig: string;
  namespace: string;
  /** The node's name. @default hollow-<random> */
  name?: string;
  /** The command a pod runs (its image is not pulled): argv and extra env. */
  command: (pod: V1Pod) => { file: string; args: string[]; env?: Record<string, string> };
  /** First pod address: 127.0.0.<first>. @default 20 */
  firstAddress?: number;
}

interface Running {
  uid: string;
  name: string;
  ip: string;
  port: number;
  child: ChildProcess | undefined;
  dog: ChildProcess | undefined;
  restarts: number;
  ready: boolean;
  deleting: boolean;
  startedAt: string;
  probe: NodeJS.Timeout | undefined;
  reported: string;
  /** Set by the first kill(): every later one waits for the same end. */
  gone?: Promise<void>;
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class HollowNode {
  readonly name: string;
  private readonly core: CoreV1Api;
  private readonly kc = new KubeConfig();
  private informer: Informer<V1Pod> | undefined;
  private readonly pods = new Map<string, Running>();
  private readonly freeAddresses: string[] = [];
  private stopped = false;

  constructor(private readonly opts: HollowNodeOptions) {
    this.kc.loadFromFile(opts.kubeconfig);
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.name = opts.name ?? `hollow-${Math.random().toString(36).slice(2, 8)}`;
    for (let n = opts.firstAddress ?? 20; n < 250; n++) this.freeAddresses.push(`127.0.0.${n}`);
  }

  /** Pod name → pid of its process (for tests that kill one by hand). */
  pids(): Map<string, number> {
    const out = new Map<string, number>();
    for (const r of this.pods.values()) if (r.child?.pid) out.set(r.name, r.child.pid);
    return out;
  }

  async start(): Promise<void> {
    await this.core.createNode({
      body: {
        metadata: {
          name: this.name,
          labels: { 'kubernetes.io/hostname': this.name, 'yggdrasil.dev/hollow': 'true' },
        },
      },
    });
    await this.core.patchNodeStatus(
      {
        name: this.name,
        body: {
          status: {
            capacity: { cpu: '16', memory: '32Gi', pods: '250' },
            allocatable: { cpu: '16', memory: '32Gi', pods: '250' },
            conditions: [
              {
                type: 'Ready',
                status: 'True',
                reason: 'KubeletReady',
                message: 'hollow node',
                lastHeartbeatTime: new Date(),
                lastTransitionTime: new Date(),
              },
            ],
            addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
          },
        },
      },
      mergePatch,
    );
    const ns = this.opts.namespace;
    this.informer = makeInformer<V1Pod>(this.kc, `/api/v1/namespaces/${ns}/pods`, () =>
      this.core.listNamespacedPod({ namespace: ns }),
    );
    const onPod = (pod: V1Pod) => {
      void this.sync(pod).catch(() => {}); // the next event of the pod syncs it again
    };
    this.informer.on('add', onPod);
    this.informer.on('update', onPod);
    this.informer.on('delete', (pod) => {
      const r = this.pods.get(pod.metadata?.uid ?? '');
      if (r) void this.kill(r, 0);
    });
    this.informer.on('error', () => {
      if (!this.stopped) setTimeout(() => void this.informer?.start().catch(() => {}), 500);
    });
    await this.informer.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.informer?.stop();
    await Promise.all([...this.pods.values()].map((r) => this.kill(r, 0)));
    await this.core.deleteNode({ name: this.name }).catch(() => {});
  }

  private async sync(pod: V1Pod): Promise<void> {
    if (this.stopped) return;
    const meta = pod.metadata!;
    const uid = meta.uid!;
    const r = this.pods.get(uid);
    if (meta.deletionTimestamp) {
      if (r) await this.kill(r, (pod.spec?.terminationGracePeriodSeconds ?? 30) * 1000);
      // The kubelet's final delete, once the containers are gone.
      await this.core
        .deleteNamespacedPod({
          name: meta.name!,
          namespace: meta.namespace!,
          gracePeriodSeconds: 0,
          body: { gracePeriodSeconds: 0, preconditions: { uid } },
        })
        .catch(() => {}); // gone already
      return;
    }
    if (!pod.spec?.nodeName) {
      await this.core.createNamespacedPodBinding({
        name: meta.name!,
        namespace: meta.namespace!,
        body: { metadata: { name: meta.name! }, target: { apiVersion: 'v1', kind: 'Node', name: this.name } },
      });
      return;
    }
    if (pod.spec.nodeName !== this.name || r) return;
    const ip = this.freeAddresses.shift();
    if (!ip) throw new Error('the hollow node is out of addresses');
    const container = pod.spec.containers[0]!;
    const port = container.ports?.[0]?.containerPort ?? 8080;
    const running: Running = {
      uid,
      name: meta.name!,
      ip,
      port,
      child: undefined,
      dog: undefined,
      restarts: 0,
      ready: false,
      deleting: false,
      startedAt: new Date().toISOString(),
      probe: undefined,
      reported: '',
    };
    this.pods.set(uid, running);
    this.run(pod, running);
    const period = (container.readinessProbe?.periodSeconds ?? 1) * 1000;
    const path = container.readinessProbe?.httpGet?.path;
    running.probe = setInterval(() => void this.probe(pod, running, path), Math.min(period, 1000));
    await this.report(pod, running);
  }

  private run(pod: V1Pod, r: Running): void {
    const container = pod.spec!.containers[0]!;
    const env: Record<string, string> = {};
    for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
    const cmd = this.opts.command(pod);
    const child = spawn(cmd.file, cmd.args, {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ...env,
        ...cmd.env,
        PORT: String(r.port),
        AGENT_HOST: r.ip,
        HOSTNAME: r.name,
      },
      stdio: 'ignore',
      detached: true,
    });
    child.on('error', () => {});
    r.child = child;
    r.dog = startWatchdog(child.pid!, 2000, process.env);
    child.once('exit', () => {
      if (r.dog) stopWatchdog(r.dog);
      if (r.deleting || this.stopped || this.pods.get(r.uid) !== r) return;
      // restartPolicy Always: the kubelet starts the container again.
      r.restarts++;
      r.ready = false;
      void this.report(pod, r).catch(() => {});
      setTimeout(() => {
        if (!r.deleting && !this.stopped && this.pods.get(r.uid) === r) this.run(pod, r);
      }, 500);
    });
  }

  private async probe(pod: V1Pod, r: Running, path: string | undefined): Promise<void> {
    if (r.deleting || this.stopped) return;
    let ok = false;
    if (r.child && r.child.exitCode === null) {
      if (!path) ok = true;
      else {
        try {
          const res = await request(`http://${r.ip}:${r.port}${path}`, {
            headersTimeout: 1000,
            bodyTimeout: 1000,
          });
          await res.body.dump();
          ok = res.statusCode >= 200 && res.statusCode < 400;
        } catch {
          ok = false;
        }
      }
    }
    r.ready = ok;
    await this.report(pod, r).catch(() => {}); // a no-op unless something changed or was not sent
  }

  private async report(pod: V1Pod, r: Running): Promise<void> {
    const now = new Date();
    const ready = r.ready ? 'True' : 'False';
    const status = {
      phase: 'Running',
      hostIP: '127.0.0.1',
      podIP: r.ip,
      podIPs: [{ ip: r.ip }],
      startTime: r.startedAt,
      conditions: [
        { type: 'Initialized', status: 'True', lastTransitionTime: now },
        { type: 'ContainersReady', status: ready, lastTransitionTime: now },
        { type: 'Ready', status: ready, lastTransitionTime: now },
        { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
      ],
      containerStatuses: [
        {
          name: pod.spec!.containers[0]!.name,
          image: pod.spec!.containers[0]!.image ?? '',
          imageID: '',
          ready: r.ready,
          started: true,
          restartCount: r.restarts,
          state: { running: { startedAt: now } },
        },
      ],
    };
    const key = `${ready}/${r.restarts}`;
    if (key === r.reported) return;
    await this.core.patchNamespacedPodStatus(
      { name: r.name, namespace: pod.metadata!.namespace!, body: { status } },
      mergePatch,
    );
    r.reported = key; // only once the API has it: a failed patch is sent again at the next probe
  }

  private kill(r: Running, graceMs: number): Promise<void> {
    r.gone ??= this.end(r, graceMs);
    return r.gone;
  }

  private async end(r: Running, graceMs: number): Promise<void> {
    if (r.probe) clearInterval(r.probe);
    r.deleting = true;
    const child = r.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((res) => child.once('exit', () => res()));
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {}
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {}
      }, graceMs);
      await exited;
      clearTimeout(timer);
    }
    if (r.dog) stopWatchdog(r.dog);
    this.pods.delete(r.uid);
    this.freeAddresses.push(r.ip);
  }
}
