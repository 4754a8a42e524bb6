// The Docker Engine runtime (DRIVER=docker): each instance is a container of AGENT_IMAGE on a
// user-defined bridge network, hardened (non-root, read-only root, no capabilities, no new privileges,
// CPU and memory limits) and labelled io.yggdrasil.* so a restarted controller adopts what it owns and
// `yggdrasil down` removes it. Exits are seen on the engine's event stream, not by polling.
import { randomUUID } from 'node:crypto';
import Docker from 'dockerode';
import { YggError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { ExitInfo, InstanceDriver, InstanceHandle, InstanceSpec, ResourceUsage } from './driver.js';

export const LABEL_OWNER = 'io.yggdrasil.owner';
export const LABEL_INSTANCE = 'io.yggdrasil.instance';
export const LABEL_INCARNATION = 'io.yggdrasil.incarnation';
const AGENT_PORT = 8080;

export interface DockerDriverOptions {
  image: string;
  network: string;
  /** Value of the io.yggdrasil.owner label; also the container name prefix. */
  owner: string;
  /** Publish each agent's port on 127.0.0.1 (router on the host) or reach it by name on the network. */
  publishPorts: boolean;
  cpuLimit: number;
  memoryLimitBytes: number;
  cpuReservation: number;
  memoryReservationBytes: number;
  env?: Record<string, string>;
  logger: Logger;
  docker?: Docker;
}

interface Running {
  handle: InstanceHandle;
  containerId: string;
  stopping: boolean;
  paused?: boolean;
}

/** Turns an engine error into one a person can act on. */
export function engineError(action: string, err: unknown, image?: string): YggError {
  const e = err as { statusCode?: number; code?: string; message?: string; json?: { message?: string } };
  const detail = e.json?.message ?? e.message ?? String(err);
  let hint = '';
  if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'EACCES') {
    hint = ' (is dockerd running, and may this user use /var/run/docker.sock?)';
  } else if (e.statusCode === 404 && image && /image/i.test(detail)) {
    hint = ` (build it with \`npm run images:build\`; there is no registry to pull ${image} from)`;
  }
  return new YggError('YGG_ERR_DRIVER', `docker: ${action} failed: ${detail}${hint}`);
}

export class DockerDriver implements InstanceDriver {
  readonly kind = 'docker';
  readonly mode = 'instances' as const;
  readonly cpuLimitCores: number;
  private readonly docker: Docker;
  private readonly running = new Map<string, Running>();
  private readonly exitListeners: Array<(exit: ExitInfo) => void> = [];
  private events: NodeJS.ReadableStream | undefined;
  private closed = false;
  private networkReady: Promise<void> | undefined;

  constructor(private readonly opts: DockerDriverOptions) {
    this.docker = opts.docker ?? new Docker();
    this.cpuLimitCores = opts.cpuLimit;
  }

  private containerName(id: string): string {
    return `${this.opts.owner}-${id}`;
  }

  private ensureNetwork(): Promise<void> {
    this.networkReady ??= (async () => {
      const found = await this.docker.listNetworks({ filters: { name: [this.opts.network] } });
      if (found.some((n) => n.Name === this.opts.network)) return;
      await this.docker.createNetwork({
        Name: this.opts.network,
        Driver: 'bridge',
        CheckDuplicate: true,
        Labels: { [LABEL_OWNER]: this.opts.owner },
      });
    })().catch((err) => {
      this.networkReady = undefined;
      throw engineError(`creating network ${this.opts.network}`, err);
    });
    return this.networkReady;
  }

  async start(spec: InstanceSpec): Promise<InstanceHandle> {
    await this.watchEvents();
    await this.ensureNetwork();
    const name = this.containerName(spec.id);
    // A leftover of an earlier run (a crash, a killed controller) would block the name.
    await this.docker
      .getContainer(name)
      .remove({ force: true })
      .catch(() => {});
    const incarnation = randomUUID();
    const env = {
      ...this.opts.env,
      ...spec.env,
      PORT: String(AGENT_PORT),
      AGENT_ID: spec.id,
      INSTANCE_ID: `${spec.id}-${incarnation.slice(0, 8)}`,
      AGENT_HOST: '0.0.0.0',
    };
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer({
        name,
        Image: this.opts.image,
        Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
        Labels: {
          [LABEL_OWNER]: this.opts.owner,
          [LABEL_INSTANCE]: spec.id,
          [LABEL_INCARNATION]: incarnation,
        },
        ExposedPorts: { [`${AGENT_PORT}/tcp`]: {} },
        HostConfig: {
          NetworkMode: this.opts.network,
          ...(this.opts.publishPorts
            ? { PortBindings: { [`${AGENT_PORT}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: '' }] } }
            : {}),
          Memory: this.opts.memoryLimitBytes,
          MemoryReservation: this.opts.memoryReservationBytes,
          NanoCpus: Math.round(this.opts.cpuLimit * 1e9),
          // Docker has no CPU reservation outside Swarm: shares weigh CPU under contention instead.
          CpuShares: Math.max(2, Math.round(this.opts.cpuReservation * 1024)),
          ReadonlyRootfs: true,
          Tmpfs: { '/tmp': 'rw,noexec,nosuid,size=64m' },
          CapDrop: ['ALL'],
          SecurityOpt: ['no-new-privileges'],
          Init: true,
        },
      });
    } catch (err) {
      throw engineError(`creating ${name} from ${this.opts.image}`, err, this.opts.image);
    }
    const running: Running = {
      handle: {
        id: spec.id,
        incarnation,
        endpoint: { host: '127.0.0.1', port: AGENT_PORT },
        startedAt: Date.now(),
        meta: { containerId: container.id.slice(0, 12), image: this.opts.image },
      },
      containerId: container.id,
      stopping: false,
    };
    this.running.set(spec.id, running);
    try {
      await container.start();
      running.handle.endpoint = await this.endpointOf(container);
    } catch (err) {
      this.running.delete(spec.id);
      await container.remove({ force: true }).catch(() => {});
      throw engineError(`starting ${name}`, err, this.opts.image);
    }
    this.opts.logger.debug({ id: spec.id, container: running.handle.meta.containerId }, 'container started');
    return running.handle;
  }

  private async endpointOf(container: Docker.Container): Promise<InstanceHandle['endpoint']> {
    const info = await container.inspect();
    if (this.opts.publishPorts) {
      const binding = info.NetworkSettings.Ports?.[`${AGENT_PORT}/tcp`]?.[0];
      if (!binding) throw new Error('the engine published no port for the agent');
      return { host: '127.0.0.1', port: Number(binding.HostPort) };
    }
    return { host: info.Name.replace(/^\//, ''), port: AGENT_PORT };
  }

  async stop(id: string, graceMs: number): Promise<void> {
    const r = this.running.get(id);
    if (!r) return;
    r.stopping = true;
    const c = this.docker.getContainer(r.containerId);
    // A paused container cannot take its SIGTERM: thaw it first, so it drains.
    if (r.paused) await c.unpause().catch(() => {});
    // docker stop sends SIGTERM, then SIGKILL after t seconds.
    await c.stop({ t: Math.max(0, Math.ceil(graceMs / 1000)) }).catch(() => {});
    await c.remove({ force: true }).catch(() => {});
    if (this.running.get(id) === r) this.running.delete(id);
  }

  /** docker pause: the cgroup freezer stops every process of the container; memory is kept. */
  async pause(id: string): Promise<void> {
    const r = this.owned(id);
    try {
      await this.docker.getContainer(r.containerId).pause();
    } catch (err) {
      throw engineError(`pausing ${id}`, err);
    }
    r.paused = true;
  }

  async resume(id: string): Promise<void> {
    const r = this.owned(id);
    try {
      await this.docker.getContainer(r.containerId).unpause();
    } catch (err) {
      throw engineError(`resuming ${id}`, err);
    }
    r.paused = false;
  }

  private owned(id: string): Running {
    const r = this.running.get(id);
    if (!r) throw new YggError('YGG_ERR_DRIVER', `no container of instance ${id}`);
    return r;
  }

  async usage(id: string): Promise<ResourceUsage | undefined> {
    const r = this.running.get(id);
    if (!r) return undefined;
    try {
      const s = await this.docker.getContainer(r.containerId).stats({ stream: false, 'one-shot': true });
      const cache = (s.memory_stats.stats as { cache?: number; inactive_file?: number } | undefined) ?? {};
      return {
        cpuSeconds: s.cpu_stats.cpu_usage.total_usage / 1e9,
        memoryBytes: Math.max(0, (s.memory_stats.usage ?? 0) - (cache.inactive_file ?? cache.cache ?? 0)),
        at: Date.now(),
      };
    } catch {
      return undefined;
    }
  }

  /** Every container with this owner's label, running or not. */
  private async listOwned(): Promise<Docker.ContainerInfo[]> {
    try {
      return await this.docker.listContainers({
        all: true,
        filters: { label: [`${LABEL_OWNER}=${this.opts.owner}`] },
      });
    } catch (err) {
      throw engineError('listing owned containers', err);
    }
  }

  async adopt(): Promise<InstanceHandle[]> {
    await this.watchEvents();
    const list = await this.listOwned();
    const adopted: InstanceHandle[] = [];
    for (const info of list) {
      const id = info.Labels[LABEL_INSTANCE];
      const incarnation = info.Labels[LABEL_INCARNATION];
      const c = this.docker.getContainer(info.Id);
      if (info.State !== 'running' || !id || !incarnation || this.running.has(id)) {
        await c.remove({ force: true }).catch(() => {});
        continue;
      }
      try {
        const handle: InstanceHandle = {
          id,
          incarnation,
          endpoint: await this.endpointOf(c),
          startedAt: info.Created * 1000,
          meta: { containerId: info.Id.slice(0, 12), image: info.Image, adopted: 1 },
        };
        this.running.set(id, { handle, containerId: info.Id, stopping: false });
        adopted.push(handle);
      } catch {
        await c.remove({ force: true }).catch(() => {});
      }
    }
    return adopted;
  }

  onExit(listener: (exit: ExitInfo) => void): void {
    this.exitListeners.push(listener);
  }

  /** Follows the engine's event stream for our containers; reconnects if the daemon restarts. */
  private async watchEvents(): Promise<void> {
    if (this.events || this.closed) return;
    let stream: NodeJS.ReadableStream;
    try {
      stream = await this.docker.getEvents({
        filters: { type: ['container'], event: ['die'], label: [`${LABEL_OWNER}=${this.opts.owner}`] },
      });
    } catch (err) {
      throw engineError('following the event stream', err);
    }
    this.events = stream;
    let buf = '';
    stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let nl = buf.indexOf('\n');
      while (nl !== -1) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) this.onEvent(line);
        nl = buf.indexOf('\n');
      }
    });
    const lost = () => {
      if (this.events !== stream) return;
      this.events = undefined;
      if (this.closed) return;
      this.opts.logger.warn('docker event stream lost; reconnecting');
      setTimeout(() => void this.watchEvents().catch(() => {}), 1000).unref();
    };
    stream.on('end', lost);
    stream.on('error', lost);
  }

  private onEvent(line: string): void {
    let e: { Action?: string; Actor?: { ID?: string; Attributes?: Record<string, string> } };
    try {
      e = JSON.parse(line);
    } catch {
      return;
    }
    const attrs = e.Actor?.Attributes ?? {};
    const id = attrs[LABEL_INSTANCE];
    if (e.Action !== 'die' || !id) return;
    const r = this.running.get(id);
    if (!r || r.containerId !== e.Actor?.ID) return;
    this.running.delete(id);
    const code = attrs.exitCode === undefined ? null : Number(attrs.exitCode);
    void (async () => {
      const lastOutput = await this.lastLines(r.containerId);
      // Remove it before reporting: a replacement reuses the container name at once.
      if (!r.stopping)
        await this.docker
          .getContainer(r.containerId)
          .remove({ force: true })
          .catch(() => {});
      const exit: ExitInfo = { id, incarnation: r.handle.incarnation, code, signal: null, lastOutput };
      for (const l of this.exitListeners) l(exit);
    })().catch((err: unknown) =>
      this.opts.logger.error({ err, instance: id }, 'reporting a container exit failed'),
    );
  }

  private async lastLines(containerId: string): Promise<string[]> {
    try {
      const out = await this.docker.getContainer(containerId).logs({ stdout: false, stderr: true, tail: 20 });
      // Non-TTY logs are multiplexed: 8-byte frame headers before each chunk.
      const buf = Buffer.isBuffer(out) ? out : Buffer.from(String(out));
      const lines: string[] = [];
      for (let at = 0; at + 8 <= buf.length; ) {
        const len = buf.readUInt32BE(at + 4);
        lines.push(
          ...buf
            .subarray(at + 8, at + 8 + len)
            .toString('utf8')
            .split('\n'),
        );
        at += 8 + len;
      }
      return lines.filter((l) => l.trim() !== '').slice(-20);
    } catch {
      return [];
    }
  }

  /**
   * Forgets every container without stopping it, as a controller that crashed would: the next
   * controller adopts them (tests use it to hand containers over, or to leave them for `down`).
   */
  detach(): void {
    this.running.clear();
  }

  /** Containers running now (tests, status). */
  containerIds(): string[] {
    return [...this.running.values()].map((r) => r.containerId);
  }

  async close(graceMs = 5000): Promise<void> {
    await Promise.all([...this.running.keys()].map((id) => this.stop(id, graceMs)));
    this.closed = true;
    const s = this.events as (NodeJS.ReadableStream & { destroy?: () => void }) | undefined;
    this.events = undefined;
    s?.destroy?.();
  }

  /** `yggdrasil down`: removes every container this owner has, running or not, and the network. */
  async down(): Promise<{ containers: number; network: boolean }> {
    const list = await this.listOwned();
    await Promise.all(
      list.map((c) =>
        this.docker
          .getContainer(c.Id)
          .remove({ force: true })
          .catch(() => {}),
      ),
    );
    let network = false;
    const nets = await this.docker.listNetworks({ filters: { name: [this.opts.network] } }).catch(() => []);
    for (const n of nets) {
      if (n.Name !== this.opts.network || n.Labels?.[LABEL_OWNER] !== this.opts.owner) continue;
      await this.docker
        .getNetwork(n.Id)
        .remove()
        .then(() => {
          network = true;
        })
        .catch(() => {});
    }
    return { containers: list.length, network };
  }
}
