// A SIMULATED runtime for scale figures only (like Kubernetes' kubemark hollow nodes): instances exist
// in memory, no process or container is started. Every simulated instance's endpoint is one shared tiny
// HTTP server on 127.0.0.1 that answers GET /health 200, so the controller's real startup and health
// probes pass. It measures the control plane at a pool size this machine could never run for real; it
// says nothing about the instances themselves (their CPU and memory are synthetic).
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { YggError } from '../core/errors.js';
import { closeServer, listen } from '../core/listen.js';
import type {
  Endpoint,
  ExitInfo,
  InstanceDriver,
  InstanceHandle,
  InstanceSpec,
  ResourceUsage,
} from './driver.js';

export interface SimulatedDriverOptions {
  /**
   * Time start() takes before it resolves, standing in for a runtime creating a process.
   * @default 0
   */
  startDelayMs?: number;
  /**
   * CPU every simulated instance reports using, in cores (its cpuSeconds grow at this rate).
   * @default 0.01
   */
  cpuCores?: number;
  /**
   * Resident memory every simulated instance reports, in bytes.
   * @default 67108864 (64 MiB)
   */
  memoryBytes?: number;
  /**
   * Clock for startedAt and usage (tests).
   * @default Date.now
   */
  now?: () => number;
}

export class SimulatedDriver implements InstanceDriver {
  readonly kind = 'simulated';
  readonly mode = 'instances' as const;
  /** Synthetic: the autoscaler's CPU signal is a share of one simulated core. */
  readonly cpuLimitCores = 1;
  private readonly instances = new Map<string, InstanceHandle>();
  /** Ids whose start() is in progress, so a second start of the same id is refused at once. */
  private readonly starting = new Set<string>();
  private readonly exitListeners: Array<(exit: ExitInfo) => void> = [];
  private readonly now: () => number;
  private server: Server | undefined;
  private endpoint: Promise<Endpoint> | undefined;

  constructor(private readonly opts: SimulatedDriverOptions = {}) {
    this.now = opts.now ?? Date.now;
  }

  async start(spec: InstanceSpec): Promise<InstanceHandle> {
    if (this.instances.has(spec.id) || this.starting.has(spec.id)) {
      throw new YggError('YGG_ERR_DRIVER', `simulated instance ${spec.id} is already running`);
    }
    this.starting.add(spec.id);
    try {
      const endpoint = await this.shared();
      if (this.opts.startDelayMs) await sleep(this.opts.startDelayMs);
      const incarnation = randomUUID();
      const handle: InstanceHandle = {
        id: spec.id,
        incarnation,
        endpoint,
        startedAt: this.now(),
        meta: { simulated: 'true', incarnation: incarnation.slice(0, 8) },
      };
      this.instances.set(spec.id, handle);
      return handle;
    } finally {
      this.starting.delete(spec.id);
    }
  }

  /** A simulated instance stops at once (nothing is in flight in it); its exit is reported as clean. */
  async stop(id: string, _graceMs: number): Promise<void> {
    this.exit(id, 0, null);
  }

  /** Simulates an unexpected exit (a crash) of a running instance; false when there is none. */
  crash(id: string, code = 1): boolean {
    return this.exit(id, code, null);
  }

  async usage(id: string): Promise<ResourceUsage | undefined> {
    const h = this.instances.get(id);
    if (!h) return undefined;
    const at = this.now();
    const cores = this.opts.cpuCores ?? 0.01;
    return {
      cpuSeconds: (cores * Math.max(0, at - h.startedAt)) / 1000,
      memoryBytes: this.opts.memoryBytes ?? 64 * 1024 * 1024,
      at,
    };
  }

  async adopt(): Promise<InstanceHandle[]> {
    // Nothing outlives the process that simulated it.
    return [];
  }

  onExit(listener: (exit: ExitInfo) => void): void {
    this.exitListeners.push(listener);
  }

  async pause(): Promise<void> {}

  async resume(): Promise<void> {}

  /** Ids of the simulated instances running now. */
  ids(): string[] {
    return [...this.instances.keys()];
  }

  /** Stops every simulated instance (reporting their exits) and closes the shared server. */
  async close(): Promise<void> {
    for (const id of [...this.instances.keys()]) this.exit(id, 0, null);
    const server = this.server;
    this.server = undefined;
    this.endpoint = undefined;
    if (server) {
      // The controller's probes keep connections alive; they carry nothing worth finishing.
      server.closeAllConnections();
      await closeServer(server);
    }
  }

  private exit(id: string, code: number | null, signal: string | null): boolean {
    const h = this.instances.get(id);
    if (!h) return false;
    this.instances.delete(id);
    const exit: ExitInfo = { id, incarnation: h.incarnation, code, signal, lastOutput: [] };
    for (const l of this.exitListeners) l(exit);
    return true;
  }

  /** The one HTTP server behind every simulated endpoint, started on first use. */
  private shared(): Promise<Endpoint> {
    this.endpoint ??= (async () => {
      const server = createServer((req, res) => {
        const path = (req.url ?? '/').split('?')[0];
        const ok = path === '/health' && (req.method === 'GET' || req.method === 'HEAD');
        const body = ok
          ? JSON.stringify({ status: 'ok', simulated: true, instances: this.instances.size })
          : JSON.stringify({
              error: { code: 'YGG_ERR_NOT_FOUND', message: 'a simulated instance only answers GET /health' },
            });
        res.writeHead(ok ? 200 : 404, {
          'content-type': 'application/json; charset=utf-8',
          'content-length': Buffer.byteLength(body),
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      });
      this.server = server;
      const port = await listen(server, 0, '127.0.0.1');
      return { host: '127.0.0.1', port };
    })().catch((err) => {
      this.endpoint = undefined;
      throw err;
    });
    return this.endpoint;
  }
}
