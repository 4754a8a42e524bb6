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
import { exponentialDelay } from '../core/backoff.js';
import type { Logger } from '../core/logger.js';
import { Serial } from '../core/serial.js';
import type { ReplicaDriver, ReplicaSnapshot, ResourceUsage } from './driver.js';
import { loadKubeConfig, mergePatch, statusOf } from './kube-config.js';
import {
  adoptPlan,
  agentDeployment,
  agentService,
  DELETION_COST,
  POOL_LABEL,
  type SliceView,
  serverMinor,
  snapshotOf,
  TEMPLATE_HASH,
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

export interface AgentManifests {
  deployment: Record<string, unknown>;
  service: Record<string, unknown>;
}

/** What the driver creates for these options (no cluster needed: `yggdrasil export`, agents.yaml). */
export function agentManifests(o: KubernetesDriverOptions, count: number): AgentManifests {
  const objects = {
    name: `${o.owner}-agents`,
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

/** Backoff of a watch that broke, or of a first sync that failed: 500 ms doubling to 10 s. */
const RETRY_BASE_MS = 500;
const RETRY_CAP_MS = 10_000;

type Slice = KubernetesObject & SliceView;
/** What makeInformer gives (a ListWatch): its resourceVersion is empty until a list worked. */
type Watched<T extends KubernetesObject> = Informer<T> & ObjectCache<T> & { latestResourceVersion(): string };

export class KubernetesDriver implements ReplicaDriver {
  readonly kind = 'kubernetes';
  readonly mode = 'replicas' as const;
  readonly cpuLimitCores: number;
  private readonly kc: KubeConfig;
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly listeners = new Set<(s: ReplicaSnapshot) => void>();
  private informers: Array<Watched<KubernetesObject>> = [];
  private pods: Watched<V1Pod> | undefined;
  private slices: Watched<Slice> | undefined;
  private deployments: Watched<V1Deployment> | undefined;
  private snapshot: ReplicaSnapshot = { desired: 0, replicas: [] };
  private last = '';
  private minor: Promise<number> | undefined;
  private readonly scaling = new Serial();
  private closed = false;
  /** Consecutive failures of each informer since it last ran (the backoff's attempt). */
  private readonly failures = new Map<Informer<KubernetesObject>, number>();
  /** Aborted by close(): every pending retry and restart delay ends with it. */
  private readonly closing = new AbortController();

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
    return this.scaling.run(() => this.scaleNow(count, o));
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
   * replica would ever be ready), and the configuration of now (kube-objects.ts adoptPlan): the whole
   * pod template on a Deployment this driver made, AGENT_IMAGE alone on one from manifests. The
   * Deployment rolls it out (maxUnavailable 0, one surge pod at a time).
   */
  private async adopt(): Promise<void> {
    if (this.adopted) return;
    const o = this.opts;
    const { deployment, service } = this.manifests(0);
    await this.core
      .createNamespacedService({ namespace: o.namespace, body: service })
      .catch((err: unknown) => {
        if (statusOf(err) !== 409) throw err;
      });
    // From the informer's cache (synced before any scale): the Role grants no get on the Deployment.
    const d = this.deployments?.list().find((x) => x.metadata?.name === this.name);
    if (!d) return; // not in the cache yet: adopted at the next scale
    const ours = deployment as {
      metadata: { annotations: Record<string, string> };
      spec: { template: unknown };
    };
    const hash = ours.metadata.annotations[TEMPLATE_HASH] ?? '';
    const image = d.spec?.template?.spec?.containers?.find((c) => c.name === 'agent')?.image;
    const plan = adoptPlan(
      { hash: d.metadata?.annotations?.[TEMPLATE_HASH], image },
      { hash, image: o.image },
    );
    if (plan === 'template') {
      o.logger.info(
        { from: d.metadata?.annotations?.[TEMPLATE_HASH], to: hash },
        "the agents' configuration changed: rolling it out",
      );
      // A merge patch replaces the template's lists whole (an env var taken out goes).
      await this.apps.patchNamespacedDeployment(
        {
          name: this.name,
          namespace: o.namespace,
          body: {
            metadata: { annotations: { [TEMPLATE_HASH]: hash } },
            spec: { template: ours.spec.template },
          },
        },
        mergePatch,
      );
    } else if (plan === 'image') {
      o.logger.info(
        { from: image, to: o.image },
        "rolling the agents out to a new image (the rest is the manifest's)",
      );
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
  manifests(count: number): AgentManifests {
    return agentManifests(this.opts, count);
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

  /**
   * After every informer's first list worked (or close()). Never after a failed one: an empty pool
   * read from a server that refused the list (down, or an RBAC 403) would be "adopted" as nothing,
   * and the new leader would set a running pool back to MIN_INSTANCES.
   */
  synced(): Promise<void> {
    return this.first;
  }

  private markSynced: () => void = () => {};
  private readonly first = new Promise<void>((r) => {
    this.markSynced = r;
  });
  private starting: Promise<void> | undefined;
  private isSynced = false;

  /** Starts the informers, again with backoff until every first list worked (or the driver is closed). */
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
        const delay = exponentialDelay(attempt, RETRY_BASE_MS, RETRY_CAP_MS);
        this.opts.logger.warn(
          { err: (err as Error).message, attempt, retryInMs: delay },
          `reading the Kubernetes pool failed (attempt ${attempt}); nothing is changed until it works, again in ${delay} ms`,
        );
        await this.stopInformers();
        await this.pause(delay);
      }
    }
  }

  /** A delay that close() cuts short (resolves false then). */
  private pause(ms: number): Promise<boolean> {
    return sleep(ms, true, { signal: this.closing.signal }).catch(() => false);
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
    ) as Watched<V1Pod>;
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
    ) as Watched<Slice>;
    this.deployments = makeInformer<V1Deployment>(
      this.kc,
      `/apis/apps/v1/namespaces/${ns}/deployments`,
      () => this.apps.listNamespacedDeployment({ namespace: ns, labelSelector: selector }),
      selector,
    ) as Watched<V1Deployment>;
    const informers = [this.pods, this.slices, this.deployments] as Array<Watched<KubernetesObject>>;
    this.informers = informers;
    // client-node's start() never rejects: a failed list comes as an 'error' event, and the cache
    // stays empty with no resourceVersion. Those of the first lists are kept here and thrown.
    const firstErrors: unknown[] = [];
    for (const inf of informers) {
      for (const verb of ['add', 'update', 'delete'] as const)
        inf.on(verb, () => {
          this.failures.delete(inf);
          this.changedSafely();
        });
      inf.on('error', (err: unknown) => {
        if (this.closed || !this.informers.includes(inf)) return;
        if (!this.isSynced) firstErrors.push(err);
        else this.broke(inf, err);
      });
    }
    await Promise.all(informers.map((i) => i.start()));
    const unlisted = informers.filter((i) => !i.latestResourceVersion());
    if (firstErrors.length > 0 || unlisted.length > 0) {
      const err = firstErrors[0] as Error | undefined;
      throw new Error(
        err
          ? `${err.message}${statusOf(err) === 403 ? ' (forbidden: the RBAC of deploy/kubernetes/rbac.yaml lets the controller list pods, endpointslices and deployments)' : ''}`
          : `${unlisted.length} of the pool's lists did not complete`,
      );
    }
  }

  /**
   * A watch broke (client-node's ListWatch does not restart it after an error): again with backoff;
   * its failure count is cleared once it has run long enough to be told of a change.
   */
  private broke(inf: Watched<KubernetesObject>, err: unknown): void {
    if (this.closed || !this.informers.includes(inf)) return;
    const attempt = (this.failures.get(inf) ?? 0) + 1;
    this.failures.set(inf, attempt);
    const delay = exponentialDelay(attempt, RETRY_BASE_MS, RETRY_CAP_MS);
    this.opts.logger.warn(
      { err: (err as Error)?.message, attempt, retryInMs: delay },
      `a Kubernetes watch broke (attempt ${attempt}); restarting it in ${delay} ms`,
    );
    void this.pause(delay).then((due) => {
      if (!due || this.closed || !this.informers.includes(inf)) return;
      // An error of this start comes as another 'error' event, or as the rejection (watch refused).
      inf.start().catch((e: unknown) => this.broke(inf, e));
    });
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

  /** The server's minor version, asked once; a failure is not kept (asked again next time). */
  private serverMinor(): Promise<number> {
    this.minor ??= this.kc
      .makeApiClient(VersionApi)
      .getCode()
      .then((v) => serverMinor(v))
      .catch(() => {
        this.minor = undefined;
        return Number.NaN;
      });
    return this.minor;
  }

  async usage(): Promise<ResourceUsage | undefined> {
    return undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    this.closing.abort();
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
