// DRIVER=kubernetes: the pool as a Deployment (@kubernetes/client-node 1.4; 2.x needs Node 22).
// Kubernetes owns the replicas; this driver sets their count through the Deployment's scale
// subresource, follows its pods and its headless Service's EndpointSlices through informers (v1, or
// v1beta1 on servers before 1.21), and honours a scale-down victim as the server allows
// (kube-objects.ts victimPlan: a pod-deletion-cost from 1.22, else the victim is deleted first).
// It creates the Deployment and the Service when they are missing, and adopts them when they exist
// (deploy/kubernetes/ ships them).

import { setTimeout as sleep } from 'node:timers/promises';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryApi,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  makeInformer,
  type ObjectCache,
  PatchStrategy,
  setHeaderOptions,
  type V1Deployment,
  type V1Pod,
  VersionApi,
} from '@kubernetes/client-node';
import type { Logger } from '../core/logger.js';
import type { ReplicaDriver, ReplicaSnapshot, ResourceUsage } from './driver.js';
import { loadKubeConfig } from './kube-config.js';
import {
  agentDeployment,
  agentService,
  DELETION_COST,
  POOL_LABEL,
  type SliceView,
  serverMinor,
  snapshotOf,
  VICTIM_COST,
  victimPlan,
} from './kube-objects.js';

export interface KubernetesDriverOptions {
  image: string;
  /** DOCKER_OWNER: the pool's label value; the Deployment and Service are named <owner>-agents. */
  owner: string;
  /** KUBE_NAMESPACE. */
  namespace: string;
  /** A kubeconfig file; else KUBECONFIG, ~/.kube/config or the pod's service account. */
  kubeconfig?: string;
  env: Record<string, string>;
  healthPath: string;
  cpuLimit: number;
  memoryLimitBytes: number;
  cpuReservation: number;
  memoryReservationBytes: number;
  /** The agent's drain time after SIGTERM (terminationGracePeriodSeconds). @default 10 */
  graceSeconds?: number;
  logger: Logger;
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

type Slice = KubernetesObject & SliceView;
type Watched<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

export class KubernetesDriver implements ReplicaDriver {
  readonly kind = 'kubernetes';
  readonly mode = 'replicas' as const;
  readonly cpuLimitCores: number;
  private readonly kc: KubeConfig;
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly listeners = new Set<(s: ReplicaSnapshot) => void>();
  private informers: Array<Informer<KubernetesObject>> = [];
  private pods: Watched<V1Pod> | undefined;
  private slices: Watched<Slice> | undefined;
  private deployments: Watched<V1Deployment> | undefined;
  private snapshot: ReplicaSnapshot = { desired: 0, replicas: [] };
  private last = '';
  private minor: Promise<number> | undefined;
  private scaling: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: KubernetesDriverOptions) {
    this.kc = loadKubeConfig(opts.kubeconfig);
    this.apps = this.kc.makeApiClient(AppsV1Api);
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.cpuLimitCores = opts.cpuLimit;
  }

  get name(): string {
    return `${this.opts.owner}-agents`;
  }

  /** What down() removes, in words. */
  get target(): string {
    return `Deployment and Service ${this.opts.namespace}/${this.name}`;
  }

  private get selector(): string {
    return `${POOL_LABEL}=${this.opts.owner},app.kubernetes.io/name=${this.name}`;
  }

  /** Scale calls run one at a time (two first calls would both create the Deployment). */
  scale(count: number, o: { preferVictims?: readonly string[] } = {}): Promise<void> {
    const run = this.scaling.then(() => this.scaleNow(count, o));
    this.scaling = run.catch(() => {});
    return run;
  }

  private async scaleNow(count: number, o: { preferVictims?: readonly string[] }): Promise<void> {
    const ns = this.opts.namespace;
    const current = await this.apps
      .readNamespacedDeploymentScale({ name: this.name, namespace: ns })
      .catch((err: unknown) => {
        if (statusOf(err) === 404) return undefined;
        throw err;
      });
    if (!current) {
      await this.create(count);
      return;
    }
    await this.adopt();
    const now = current.spec?.replicas ?? 0;
    const victims = count < now ? (o.preferVictims ?? []).slice(0, now - count) : [];
    if (victims.length > 0) {
      const plan = victimPlan(await this.serverMinor());
      for (const pod of victims) {
        if (plan === 'annotate') {
          await this.core
            .patchNamespacedPod(
              {
                name: pod,
                namespace: ns,
                body: { metadata: { annotations: { [DELETION_COST]: VICTIM_COST } } },
              },
              mergePatch,
            )
            .catch((err: unknown) => this.victimFailed(pod, 'annotate', err));
        } else {
          await this.core
            .deleteNamespacedPod({ name: pod, namespace: ns })
            .catch((err: unknown) => this.victimFailed(pod, 'delete', err));
        }
      }
    }
    await this.apps.patchNamespacedDeploymentScale(
      { name: this.name, namespace: ns, body: { spec: { replicas: count } } },
      mergePatch,
    );
  }

  /** A victim that could not be hinted: the ReplicaSet picks (gone already, 404, is not worth a word). */
  private victimFailed(pod: string, what: string, err: unknown): void {
    if (statusOf(err) === 404) return;
    this.opts.logger.warn(
      { pod, err: (err as Error).message },
      `could not ${what} the scale-down victim ${pod}`,
    );
  }

  private adopted = false;

  /**
   * Once per driver, on a Deployment that exists: its Service too (without it no EndpointSlice, so no
   * replica would ever be ready), and AGENT_IMAGE: a new one is rolled out by the Deployment
   * (maxUnavailable 0, one surge pod at a time).
   */
  private async adopt(): Promise<void> {
    if (this.adopted) return;
    const o = this.opts;
    await this.core
      .createNamespacedService({ namespace: o.namespace, body: this.manifests(0).service })
      .catch((err: unknown) => {
        if (statusOf(err) !== 409) throw err;
      });
    const d = this.deployments?.list().find((x) => x.metadata?.name === this.name);
    const image = d?.spec?.template?.spec?.containers?.find((c) => c.name === 'agent')?.image;
    if (d && image !== undefined && image !== o.image) {
      o.logger.info({ from: image, to: o.image }, 'rolling the agents out to a new image');
      await this.apps.patchNamespacedDeployment(
        {
          name: this.name,
          namespace: o.namespace,
          body: { spec: { template: { spec: { containers: [{ name: 'agent', image: o.image }] } } } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
      );
    }
    this.adopted = true;
  }

  /** The agents' Deployment and Service as this driver creates them (deploy/kubernetes/agents.yaml). */
  manifests(count: number): { deployment: Record<string, unknown>; service: Record<string, unknown> } {
    const o = this.opts;
    const objects = {
      name: this.name,
      owner: o.owner,
      image: o.image,
      env: o.env,
      replicas: count,
      healthPath: o.healthPath,
      cpuLimit: o.cpuLimit,
      memoryLimitBytes: o.memoryLimitBytes,
      cpuReservation: o.cpuReservation,
      memoryReservationBytes: o.memoryReservationBytes,
      graceSeconds: o.graceSeconds ?? 10,
    };
    return { deployment: agentDeployment(objects), service: agentService(objects) };
  }

  private async create(count: number): Promise<void> {
    const o = this.opts;
    const { deployment, service } = this.manifests(count);
    await this.core
      .createNamespacedService({ namespace: o.namespace, body: service })
      .catch((err: unknown) => {
        if (statusOf(err) !== 409) throw err;
      });
    await this.apps.createNamespacedDeployment({
      namespace: o.namespace,
      body: deployment as V1Deployment,
    });
    this.adopted = true;
  }

  watch(listener: (s: ReplicaSnapshot) => void): () => void {
    this.listeners.add(listener);
    listener(this.snapshot);
    this.starting ??= this.follow();
    return () => this.listeners.delete(listener);
  }

  /** After the informers' first lists (or the first failure to start them: the cluster is then down). */
  synced(): Promise<void> {
    return this.first;
  }

  private markSynced: () => void = () => {};
  private readonly first = new Promise<void>((r) => {
    this.markSynced = r;
  });
  private starting: Promise<void> | undefined;
  private isSynced = false;

  /** Starts the informers, again with backoff until they run (or the driver is closed). */
  private async follow(): Promise<void> {
    for (let attempt = 1; !this.closed; attempt++) {
      try {
        await this.openInformers();
        if (this.closed) break;
        this.isSynced = true;
        this.changedSafely();
        this.markSynced();
        return;
      } catch (err) {
        this.opts.logger.warn(
          { err: (err as Error).message, attempt },
          'watching the Kubernetes pool failed; retrying',
        );
        await this.stopInformers();
        this.markSynced();
        await sleep(Math.min(5000, 250 * 2 ** Math.min(attempt, 5)));
      }
    }
  }

  private async openInformers(): Promise<void> {
    const ns = this.opts.namespace;
    const selector = this.selector;
    const version = await this.sliceVersion();
    if (this.closed) return;
    const custom = this.kc.makeApiClient(CustomObjectsApi);
    this.pods = makeInformer<V1Pod>(
      this.kc,
      `/api/v1/namespaces/${ns}/pods`,
      () => this.core.listNamespacedPod({ namespace: ns, labelSelector: selector }),
      selector,
    );
    const sliceSelector = `kubernetes.io/service-name=${this.name}`;
    this.slices = makeInformer<Slice>(
      this.kc,
      `/apis/discovery.k8s.io/${version}/namespaces/${ns}/endpointslices`,
      () =>
        custom.listNamespacedCustomObject({
          group: 'discovery.k8s.io',
          version,
          namespace: ns,
          plural: 'endpointslices',
          labelSelector: sliceSelector,
        }),
      sliceSelector,
    );
    this.deployments = makeInformer<V1Deployment>(
      this.kc,
      `/apis/apps/v1/namespaces/${ns}/deployments`,
      () => this.apps.listNamespacedDeployment({ namespace: ns, labelSelector: selector }),
      selector,
    );
    this.informers = [this.pods, this.slices, this.deployments] as Array<Informer<KubernetesObject>>;
    for (const inf of this.informers) {
      for (const verb of ['add', 'update', 'delete'] as const) inf.on(verb, () => this.changedSafely());
      inf.on('error', (err: unknown) => {
        if (this.closed) return;
        this.opts.logger.warn({ err: (err as Error)?.message }, 'a Kubernetes watch broke; restarting it');
        this.restart(inf, 1);
      });
    }
    await Promise.all(this.informers.map((i) => i.start()));
  }

  /** A broken watch again, with backoff, until it runs or the driver is closed. */
  private restart(inf: Informer<KubernetesObject>, attempt: number): void {
    setTimeout(
      () => {
        if (this.closed || !this.informers.includes(inf)) return;
        inf.start().catch(() => this.restart(inf, attempt + 1));
      },
      Math.min(5000, 250 * 2 ** Math.min(attempt, 5)),
    );
  }

  private async stopInformers(): Promise<void> {
    const all = this.informers;
    this.informers = [];
    await Promise.all(all.map((i) => i.stop().catch(() => {})));
  }

  /** Informer callbacks must not throw (it would end the process): a bad object is logged. */
  private changedSafely(): void {
    try {
      this.changed();
    } catch (err) {
      this.opts.logger.error({ err }, 'reading the Kubernetes pool failed');
    }
  }

  private changed(): void {
    if (!this.isSynced) return; // the first lists are still coming in: nothing to tell yet
    const d = this.deployments?.list().find((x) => x.metadata?.name === this.name);
    const snapshot = snapshotOf(d?.spec?.replicas ?? 0, this.pods?.list() ?? [], this.slices?.list() ?? []);
    const key = JSON.stringify(snapshot);
    if (key === this.last) return;
    this.last = key;
    this.snapshot = snapshot;
    for (const l of this.listeners) l(snapshot);
  }

  /** discovery.k8s.io/v1 where the server has it (1.21+), else v1beta1 (a failure is retried). */
  private async sliceVersion(): Promise<string> {
    const g = await this.kc.makeApiClient(DiscoveryApi).getAPIGroup();
    return g.versions.some((v) => v.version === 'v1') ? 'v1' : 'v1beta1';
  }

  private serverMinor(): Promise<number> {
    this.minor ??= this.kc
      .makeApiClient(VersionApi)
      .getCode()
      .then((v) => serverMinor(v))
      .catch(() => Number.NaN);
    return this.minor;
  }

  async usage(): Promise<ResourceUsage | undefined> {
    return undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    await this.starting?.catch(() => {});
    await this.stopInformers();
    this.markSynced();
  }

  /** `yggdrasil down`: removes the Deployment (its ReplicaSets and pods go with it) and the Service. */
  async down(): Promise<boolean> {
    const ns = this.opts.namespace;
    const gone = (err: unknown) => {
      if (statusOf(err) === 404) return false;
      throw err;
    };
    const d = await this.apps
      .deleteNamespacedDeployment({ name: this.name, namespace: ns, propagationPolicy: 'Foreground' })
      .then(() => true, gone);
    const s = await this.core
      .deleteNamespacedService({ name: this.name, namespace: ns })
      .then(() => true, gone);
    return d || s;
  }
}

/** The HTTP status of a client-node ApiException, if that is what `err` is. */
function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}
