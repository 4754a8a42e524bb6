// DRIVER=swarm: the pool as a replicated service of Docker Engine's Swarm mode (dockerode, API 1.41
// pinned). Swarm owns the replicas; this driver sets their count, reports each task with its endpoint
// and condition, and honours a scale-down victim the only way Swarm allows (moby#33392: no API picks
// the task to remove): it stops the chosen task's container gracefully, the agent drains and exits 0,
// the on-failure restart policy leaves it stopped, and the lower count then removes that (non-running)
// task first. The same hardening as the Docker driver: uid 10001, read-only root, every capability
// dropped, the limits and reservations; NoNewPrivileges is not in API 1.41 (Swarm drops it silently),
// so the image itself runs as a non-root user with no setuid binaries to gain from.
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { type Cancel, type Clock, systemClock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import { Serial } from '../core/serial.js';
import { LABEL_OWNER } from './docker-driver.js';
import type { Replica, ReplicaCondition, ReplicaDriver, ReplicaSnapshot, ResourceUsage } from './driver.js';

export interface SwarmDriverOptions {
  image: string;
  /** io.yggdrasil.owner label; the service is named <owner>-agents. */
  owner: string;
  env: Record<string, string>;
  cpuLimit: number;
  memoryLimitBytes: number;
  cpuReservation: number;
  memoryReservationBytes: number;
  /** Publish each task's port on the host (mode host): for a router on the host, reached on 127.0.0.1. */
  publishPorts: boolean;
  /**
   * Without published ports: the overlay network (attachable) the tasks join and the routers are on;
   * tasks are reached at their address there (DOCKER_NETWORK; deploy/swarm/stack.yml makes it).
   */
  network?: string;
  logger: Logger;
  /** How often the tasks are read. @default 500 */
  pollMs?: number;
  clock?: Clock;
  docker?: Docker;
}

const AGENT_PORT = 8080;
/** How long a chosen victim may take to drain and exit (its StopGracePeriod). */
const DRAIN_WAIT_MS = 10_000;
/** Task states on their way to running. */
const STARTING = new Set([
  'new',
  'allocated',
  'pending',
  'assigned',
  'accepted',
  'preparing',
  'ready',
  'starting',
]);

/** The parts of a service spec this driver reads and writes (the rest is passed back as it came). */
interface ServiceSpec {
  Name?: string;
  Mode?: { Replicated?: { Replicas?: number } };
  TaskTemplate?: { ContainerSpec?: { Image?: string } };
  [field: string]: unknown;
}

interface TaskInfo {
  ID: string;
  Slot?: number;
  DesiredState: string;
  CreatedAt?: string;
  Status: {
    State: string;
    ContainerStatus?: { ContainerID?: string };
    PortStatus?: { Ports?: Array<{ TargetPort?: number; PublishedPort?: number }> };
  };
  NetworksAttachments?: Array<{ Network?: { Spec?: { Name?: string } }; Addresses?: string[] }>;
}

/** An image reference without the digest Swarm may pin it to: "a:tag@sha256:…" → "a:tag". */
export function imageName(ref: string | undefined): string | undefined {
  return ref?.split('@')[0];
}

function publishedEndpoint(t: TaskInfo): Replica['endpoint'] {
  const port = t.Status.PortStatus?.Ports?.find((p) => p.TargetPort === AGENT_PORT)?.PublishedPort;
  return port ? { host: '127.0.0.1', port } : undefined;
}

function networkEndpoint(t: TaskInfo, network: string): Replica['endpoint'] {
  const a = t.NetworksAttachments?.find((n) => n.Network?.Spec?.Name === network)?.Addresses?.[0];
  return a ? { host: a.split('/')[0]!, port: AGENT_PORT } : undefined;
}

/** A task as a replica, or undefined when it is done (pure). */
export function replicaOf(
  t: TaskInfo,
  healthy: boolean | undefined,
  /** Reach the task by its address on this network (a router on it), not by a published port. */
  network?: string,
): Replica | undefined {
  const state = t.Status.State;
  const endpoint = network ? networkEndpoint(t, network) : publishedEndpoint(t);
  let condition: ReplicaCondition;
  if (t.DesiredState !== 'running') {
    if (state !== 'running') return undefined;
    condition = 'terminating';
  } else if (state === 'running') {
    condition = healthy === false ? 'starting' : 'ready';
  } else if (STARTING.has(state)) {
    condition = 'starting';
  } else return undefined;
  return {
    id: t.ID,
    incarnation: t.ID,
    endpoint,
    condition,
    meta: {
      task: t.ID.slice(0, 12),
      slot: t.Slot ?? 0,
      startedAt: t.CreatedAt ? Date.parse(t.CreatedAt) : 0,
      ...(t.Status.ContainerStatus?.ContainerID
        ? { containerId: t.Status.ContainerStatus.ContainerID.slice(0, 12) }
        : {}),
    },
  };
}

export class SwarmDriver implements ReplicaDriver {
  readonly kind = 'swarm';
  readonly mode = 'replicas' as const;
  readonly cpuLimitCores: number;
  private readonly docker: Docker;
  private readonly clock: Clock;
  private readonly listeners = new Set<(s: ReplicaSnapshot) => void>();
  private poller: Cancel | undefined;
  private last = '';
  private snapshot: ReplicaSnapshot = { desired: 0, replicas: [] };

  constructor(private readonly opts: SwarmDriverOptions) {
    this.docker = opts.docker ?? new Docker({ version: 'v1.41' });
    this.cpuLimitCores = opts.cpuLimit;
    this.clock = opts.clock ?? systemClock;
  }

  get serviceName(): string {
    return `${this.opts.owner}-agents`;
  }

  get target(): string {
    return `swarm service ${this.serviceName}`;
  }

  /** Scale calls run one at a time (two first calls would both create the service). */
  scale(count: number, o: { preferVictims?: readonly string[] } = {}): Promise<void> {
    return this.scaling.run(() => this.scaleNow(count, o));
  }

  private readonly scaling = new Serial();

  private async scaleNow(count: number, o: { preferVictims?: readonly string[] }): Promise<void> {
    const service = await this.findService();
    if (!service) {
      await this.create(count);
      return;
    }
    const current = service.Spec?.Mode?.Replicated?.Replicas ?? 0;
    if (count < current && o.preferVictims?.length)
      await this.drainTasks(o.preferVictims.slice(0, current - count));
    await this.update((spec) => {
      spec.Mode = { Replicated: { Replicas: count } };
      // AGENT_IMAGE changed since the service was made: Swarm rolls it out (start-first, one at a time).
      const c = spec.TaskTemplate?.ContainerSpec;
      if (c && imageName(c.Image) !== imageName(this.opts.image)) {
        this.opts.logger.info(
          { from: c.Image, to: this.opts.image },
          'rolling the agents out to a new image',
        );
        c.Image = this.opts.image;
      }
    });
  }

  watch(listener: (s: ReplicaSnapshot) => void): () => void {
    this.listeners.add(listener);
    listener(this.snapshot);
    this.poller ??= this.clock.every(this.opts.pollMs ?? 500, () => {
      void this.poll().catch((err: Error) =>
        this.opts.logger.warn({ err: err.message }, 'reading the swarm tasks failed'),
      );
    });
    void this.poll().catch(() => {}); // the poller tries again; synced() waits for a read that worked
    return () => this.listeners.delete(listener);
  }

  private markSynced: () => void = () => {};
  private readonly first = new Promise<void>((r) => {
    this.markSynced = r;
  });

  /**
   * After the first read of the service and its tasks that worked (or close()). Never after a failed
   * one: an empty pool read from an engine that did not answer would be "adopted" as nothing, and
   * the new leader would set a running pool back to MIN_INSTANCES.
   */
  synced(): Promise<void> {
    return this.first;
  }

  /** Reads the service and its tasks, and tells the watchers when anything changed. */
  async poll(): Promise<ReplicaSnapshot> {
    const service = await this.findService();
    const desired = service?.Spec?.Mode?.Replicated?.Replicas ?? 0;
    const tasks = service
      ? ((await this.docker.listTasks({ filters: { service: [this.serviceName] } })) as unknown as TaskInfo[])
      : [];
    const replicas: Replica[] = [];
    for (const t of tasks) {
      const r = replicaOf(t, await this.health(t), this.opts.publishPorts ? undefined : this.opts.network);
      if (r) replicas.push(r);
    }
    replicas.sort((a, b) => Number(a.meta.slot) - Number(b.meta.slot));
    const snapshot = { desired, replicas };
    this.markSynced();
    const key = JSON.stringify(snapshot);
    if (key !== this.last) {
      this.last = key;
      this.snapshot = snapshot;
      for (const l of this.listeners) l(snapshot);
    }
    return snapshot;
  }

  async usage(): Promise<ResourceUsage | undefined> {
    return undefined;
  }

  async close(): Promise<void> {
    this.poller?.();
    this.poller = undefined;
    this.listeners.clear();
    this.markSynced(); // a start() still waiting goes on, and sees its controller stopped
  }

  /** `yggdrasil down`: removes the service (Swarm stops its tasks). */
  async down(): Promise<boolean> {
    const s = await this.findService();
    if (!s) return false;
    await this.docker.getService(s.ID).remove();
    return true;
  }

  private async health(t: TaskInfo): Promise<boolean | undefined> {
    const id = t.Status.ContainerStatus?.ContainerID;
    if (!id || t.Status.State !== 'running') return undefined;
    try {
      const info = await this.docker.getContainer(id).inspect();
      const status = info.State.Health?.Status;
      return status === undefined ? undefined : status === 'healthy';
    } catch {
      return undefined;
    }
  }

  private async findService(): Promise<(Docker.Service & { ID: string; Spec?: ServiceSpec }) | undefined> {
    const list = await this.docker.listServices({ filters: { name: [this.serviceName] } });
    // biome-ignore lint/suspicious/noExplicitAny: dockerode's service spec is loosely typed
    return list.find((s: any) => s.Spec?.Name === this.serviceName) as any;
  }

  private async create(count: number): Promise<void> {
    const o = this.opts;
    const env = { ...o.env, PORT: String(AGENT_PORT), AGENT_HOST: '0.0.0.0', AGENT_ID: '{{.Task.Slot}}' };
    await this.docker.createService({
      Name: this.serviceName,
      Labels: { [LABEL_OWNER]: o.owner },
      TaskTemplate: {
        ContainerSpec: {
          Image: o.image,
          Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
          Labels: { [LABEL_OWNER]: o.owner },
          User: '10001:10001',
          ReadOnly: true,
          Mounts: [{ Type: 'tmpfs', Target: '/tmp', TmpfsOptions: { SizeBytes: 64 * 1024 * 1024 } }],
          CapabilityDrop: ['ALL'],
          StopGracePeriod: 10_000_000_000,
        },
        Resources: {
          Limits: { NanoCPUs: Math.round(o.cpuLimit * 1e9), MemoryBytes: o.memoryLimitBytes },
          Reservations: {
            NanoCPUs: Math.round(o.cpuReservation * 1e9),
            MemoryBytes: o.memoryReservationBytes,
          },
        },
        // Exit 0 (a drained victim) stays stopped; a crash is restarted.
        RestartPolicy: { Condition: 'on-failure', Delay: 100_000_000 },
        ...(!o.publishPorts && o.network ? { Networks: [{ Target: o.network }] } : {}),
      },
      Mode: { Replicated: { Replicas: count } },
      UpdateConfig: { Order: 'start-first', Parallelism: 1, FailureAction: 'rollback' },
      ...(o.publishPorts
        ? {
            EndpointSpec: {
              Mode: 'dnsrr',
              Ports: [{ Protocol: 'tcp', TargetPort: AGENT_PORT, PublishMode: 'host' }],
            },
          }
        : {}),
      // biome-ignore lint/suspicious/noExplicitAny: dockerode's CreateServiceOptions lacks API 1.41 fields
    } as any);
  }

  /** A service update, again on "update out of sequence" (someone else updated it meanwhile). */
  private async update(change: (spec: ServiceSpec) => void): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const s = await this.findService();
      if (!s) throw new Error(`swarm service ${this.serviceName} is gone`);
      const info = (await this.docker.getService(s.ID).inspect()) as {
        Version: { Index: number };
        Spec: ServiceSpec;
      };
      const spec = structuredClone(info.Spec);
      change(spec);
      try {
        await this.docker.getService(s.ID).update({ version: info.Version.Index, ...spec });
        return;
      } catch (err) {
        if (attempt >= 5 || !/out of sequence/i.test((err as Error).message)) throw err;
        await sleep(50 * attempt);
      }
    }
  }

  /**
   * Stops the chosen tasks' containers gracefully (SIGTERM: the agent drains and exits 0) and waits
   * until Swarm no longer counts them running (up to the stop grace): the lower count must find them
   * stopped, or Swarm removes the highest slot instead and the victim's exit leaves a replica short.
   */
  private async drainTasks(ids: readonly string[]): Promise<void> {
    const tasks = (await this.docker.listTasks({
      filters: { service: [this.serviceName] },
    })) as unknown as TaskInfo[];
    await Promise.all(
      tasks
        .filter((t) => ids.includes(t.ID) && t.Status.ContainerStatus?.ContainerID)
        .map((t) =>
          this.docker
            .getContainer(t.Status.ContainerStatus!.ContainerID!)
            .kill({ signal: 'SIGTERM' })
            .catch(() => {}),
        ),
    );
    const deadline = this.clock.now() + DRAIN_WAIT_MS;
    while (this.clock.now() < deadline) {
      const now = (await this.docker.listTasks({
        filters: { service: [this.serviceName] },
      })) as unknown as TaskInfo[];
      if (!now.some((t) => ids.includes(t.ID) && t.Status.State === 'running')) return;
      await this.clock.sleep(100);
    }
    this.opts.logger.warn(
      { tasks: ids },
      'a chosen victim did not stop in time: Swarm picks the task to remove',
    );
  }
}
