// DATAPLANE=haproxy: the one owner of the HAProxy process. It writes the configuration (pure:
// haproxy-config.ts), starts `haproxy` in the foreground in a process group of its own with the
// platform's watchdog (it dies with the platform, even after SIGKILL), and programs it through the
// Runtime API as the pool changes, without reloads: a server per ready instance (added, then set
// ready), maintenance to drain one (no new requests; in-flight ones finish), deleted once it holds no
// connection. It reads `show stat` for the autoscaler (in flight and queued per server). A HAProxy that
// dies is started again (200 ms, then twice as long each time, up to 10 s) and given the pool again.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { exponentialDelay } from '../core/backoff.js';
import type { Logger } from '../core/logger.js';
import { configError } from '../core/options.js';
import type { PoolMember } from '../core/pool.js';
import { freePort } from '../runtime/free-port.js';
import { startWatchdog, stopWatchdog } from '../runtime/watchdog.js';
import {
  addServerCommand,
  errorFiles,
  fillSlotCommands,
  type HaproxyConfigInput,
  parseShowStat,
  renderHaproxyConfig,
  type ServerOptions,
  type ServerStat,
  slotOf,
} from './haproxy-config.js';
import { type Drift, driftOf } from './haproxy-drift.js';
import { HaproxyRuntime } from './haproxy-runtime.js';

export interface HaproxyDataplaneOptions
  extends Omit<
    HaproxyConfigInput,
    'socketPath' | 'errorDir' | 'bind' | 'activatorPort' | 'metricsPort' | 'server'
  > {
  /** BIND_HOST: where HAProxy listens (the port comes with start()). */
  host: string;
  maxConcurrency: number;
  queueMax: number;
  healthIntervalMs: number;
  breakerFailures: number;
  /** BREAKER_COUNT_5XX. */
  breakerCount5xx?: boolean;
  logger: Logger;
  /** The haproxy binary. @default 'haproxy' */
  binary?: string;
}

/** The other data plane, declared here, given by the platform. */
export interface Failover {
  /** Serve the load balancer port now (HAProxy has exited). */
  take(port: number): Promise<void>;
  /** The fd of the listening socket it serves the port on (HAProxy is started on that very socket). */
  listener(): number | undefined;
  /** Stop accepting (HAProxy accepts on the socket now); open connections finish. */
  release(): Promise<void>;
}

interface Server {
  incarnation: string;
  state: 'ready' | 'draining';
  /** When its last command was done: a `show stat` asked before then does not judge it. */
  at: number;
  /** When it was put in maintenance: until `show stat` is read after that, its in-flight is unknown. */
  maintAt?: number;
  /** Added with `add server` (past the template's slots): deleted when it goes. */
  added: boolean;
}

/** How often `show stat` is read (the autoscaler's signal and the drain's in-flight count). */
const STAT_INTERVAL_MS = 250;
/** A change HAProxy refused (or a socket error) is tried again after this, doubling up to 5 s. */
const FIRST_RETRY_MS = 100;
/** A HAProxy that died is started again after this, then twice as long each time it fails, up to 10 s. */
const FIRST_RESTART_MS = 200;
/** The fd a HAProxy started on the Node router's socket finds it at. */
const INHERITED_FD = 3;

export class HaproxyDataplane {
  /** Its configuration, error files and admin socket: made by start(), removed by close(). */
  private dir = '';
  private runtime = new HaproxyRuntime('');
  private readonly servers = new Map<string, Server>();
  private child: ChildProcess | undefined;
  private watchdog: ChildProcess | undefined;
  private wanted: PoolMember[] = [];
  private applying: Promise<void> = Promise.resolve();
  private stats = new Map<string, ServerStat>();
  private backendQueued = 0;
  private statTimer: NodeJS.Timeout | undefined;
  private stderr = '';
  private closed = false;
  private port = 0;
  private metricsPort = 0;
  /** Times HAProxy was found out of line with the pool, or a change failed, and was programmed again. */
  private resyncs = 0;
  /** The load balancer port is the failover's (HAProxy is down). */
  private failedOver = false;
  private failover: Failover | undefined;
  private retryDelayMs = FIRST_RETRY_MS;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: HaproxyDataplaneOptions) {}

  /** Who serves the load balancer port while HAProxy is down (the Node router): no request waits for it. */
  setFailover(f: Failover): void {
    this.failover = f;
  }

  /**
   * Writes the configuration, starts HAProxy on `port` (the Node router behind it on `activatorPort`)
   * and waits until its Runtime API answers.
   */
  async start(where: { port: number; activatorPort: number }): Promise<void> {
    this.port = where.port;
    this.metricsPort = await freePort('127.0.0.1');
    this.dir = mkdtempSync(join(tmpdir(), 'ygg-haproxy-'));
    this.runtime = new HaproxyRuntime(join(this.dir, 'admin.sock'));
    for (const f of errorFiles()) writeFileSync(join(this.dir, f.name), f.content);
    // Two configurations, the same but for the bind: the address (first start, and after a crash the
    // Node router could not cover), or the Node router's listening socket, inherited as fd 3.
    for (const [file, bind] of [
      [this.cfgPath(false), { host: this.opts.host, port: where.port }],
      [this.cfgPath(true), { fd: INHERITED_FD }],
    ] as const) {
      writeFileSync(
        file,
        renderHaproxyConfig({
          ...this.opts,
          server: this.serverOptions(),
          bind,
          activatorPort: where.activatorPort,
          metricsPort: this.metricsPort,
          socketPath: join(this.dir, 'admin.sock'),
          errorDir: this.dir,
        }),
      );
    }
    await this.launch();
    this.statTimer = setInterval(() => {
      this.readStats().catch(() => {});
    }, STAT_INTERVAL_MS);
    this.statTimer.unref();
  }

  private cfgPath(inherited: boolean): string {
    return join(this.dir, inherited ? 'haproxy-fd.cfg' : 'haproxy.cfg');
  }

  /**
   * Starts the haproxy process and waits until its Runtime API answers: on `listener` (a listening
   * socket's fd, given to it as fd 3) when there is one, else on the address.
   */
  private async launch(listener?: number): Promise<void> {
    const inherited = listener !== undefined;
    const child = spawn(this.opts.binary ?? 'haproxy', ['-f', this.cfgPath(inherited), '-db'], {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe', ...(inherited ? [listener] : [])],
    });
    this.child = child;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', (err) => resolve(err));
    });
    if (spawned) {
      throw configError(
        `DATAPLANE=haproxy: ${this.opts.binary ?? 'haproxy'} could not be started (${spawned.message}); install Debian's haproxy package`,
      );
    }
    const watchdog = child.pid !== undefined ? startWatchdog(child.pid, 2000, process.env) : undefined;
    this.watchdog = watchdog;
    // Until it is up, an exit is the launch's failure (its caller retries), not a crash to handle here.
    let up = false;
    child.once('exit', (code, signal) => {
      if (watchdog) stopWatchdog(watchdog);
      if (this.closed || this.child !== child || !up) return;
      // What it had is gone with it: no server, nothing in flight or queued (the autoscaler and
      // /status must not go on reading the last `show stat`).
      this.servers.clear();
      this.stats = new Map();
      this.backendQueued = 0;
      this.statsAt = Date.now();
      this.opts.logger.error(
        { code, signal, stderr: this.stderr.split('\n').slice(-5), restarts: this.restarts },
        this.failover
          ? 'haproxy exited: the Node router serves the load balancer port until it is started again'
          : 'haproxy exited: the load balancer port is down until it is started again',
      );
      void this.failOver().finally(() => this.relaunchLater());
    });
    for (let i = 0; ; i++) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw configError(
          `DATAPLANE=haproxy: haproxy refused to start: ${this.stderr.trim().split('\n').slice(-3).join(' / ')}`,
        );
      }
      try {
        if ((await this.runtime.command('show info')).includes('Name: HAProxy')) break;
      } catch {}
      if (i > 100) {
        child.kill('SIGKILL');
        throw new Error(`haproxy did not open its Runtime API: ${this.stderr}`);
      }
      await sleep(50);
    }
    up = true;
  }

  /** HAProxy is down: the failover takes the port (if there is one, and it has not already). */
  private async failOver(): Promise<void> {
    const f = this.failover;
    if (!f || this.failedOver || this.closed) return;
    try {
      await f.take(this.port);
      this.failedOver = true;
    } catch (err) {
      this.opts.logger.error({ err }, 'the Node router could not take the load balancer port');
    }
  }

  private relaunchTimer: NodeJS.Timeout | undefined;
  private restarts = 0;

  /** The next start after a crash or a failed start: 200 ms, doubling up to 10 s. */
  private relaunchLater(): void {
    if (this.closed) return;
    this.restarts++;
    clearTimeout(this.relaunchTimer);
    this.relaunchTimer = setTimeout(
      () => void this.relaunch(),
      exponentialDelay(this.restarts, FIRST_RESTART_MS, 10_000),
    );
    this.relaunchTimer.unref();
  }

  /**
   * After a crash: a new process (no servers yet), given the whole pool again. Where the Node router
   * serves the port, HAProxy starts on its very socket and the router lets go only once HAProxy
   * answers: a client is never refused in between, and a failed start changes nothing.
   */
  private async relaunch(): Promise<void> {
    if (this.closed) return;
    const listener = this.failedOver ? this.failover?.listener() : undefined;
    try {
      await this.launch(listener);
    } catch (err) {
      this.opts.logger.error({ err }, 'haproxy could not be started again; trying later');
      await this.failOver();
      this.relaunchLater();
      return;
    }
    if (this.closed) return; // close() ends this process
    if (this.failedOver) {
      await this.failover!.release();
      this.failedOver = false;
    }
    this.opts.logger.warn('haproxy started again; its servers are being added');
    this.servers.clear();
    this.sync(this.wanted);
    await this.applying;
    this.restarts = 0;
  }

  /** The pool changed: bring HAProxy's servers in line (changes are applied in order, one at a time). */
  sync(members: PoolMember[]): void {
    this.wanted = members;
    this.applying = this.applying
      .then(() => this.apply())
      .then(() => {
        this.retryDelayMs = FIRST_RETRY_MS;
      })
      .catch((err: unknown) => {
        // What was done is recorded per server: the retry does the rest (apply() is a diff).
        this.opts.logger.warn(
          { err, retryInMs: this.retryDelayMs },
          'programming haproxy failed; trying again',
        );
        this.resyncs++;
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => {
          if (!this.closed) this.sync(this.wanted);
        }, this.retryDelayMs);
        this.retryTimer.unref();
        this.retryDelayMs = Math.min(5000, this.retryDelayMs * 2);
      });
  }

  /** Resolves once every change asked so far is applied (tests, and the stop). */
  settled(): Promise<void> {
    return this.applying;
  }

  private async apply(): Promise<void> {
    if (this.closed) return;
    const wanted = new Map(this.wanted.map((m) => [m.id, m]));
    for (const [id, s] of this.servers) {
      const m = wanted.get(id);
      if (!m || m.incarnation !== s.incarnation) await this.remove(id);
    }
    for (const m of wanted.values()) {
      const s = this.servers.get(m.id);
      if (m.state === 'ready' && !s) await this.add(m);
      else if (m.state === 'draining' && s?.state === 'ready') {
        s.state = 'draining';
        s.maintAt = Date.now();
        await this.expect(`set server agents/${m.id} state maint`, '');
        s.at = Date.now();
      }
    }
  }

  private serverOptions(): ServerOptions {
    return {
      maxConcurrency: this.opts.maxConcurrency,
      queueMax: this.opts.queueMax,
      healthIntervalMs: this.opts.healthIntervalMs,
      failures: this.opts.breakerFailures,
      ...(this.opts.breakerCount5xx ? { count5xx: true } : {}),
    };
  }

  private async add(m: PoolMember): Promise<void> {
    const added = slotOf(m.id, this.opts.slots) === undefined;
    if (added) {
      // Already there (a resync of one found in maintenance, or an earlier instance of that id not
      // deleted yet): it takes this instance's address, then is set ready again below.
      const answer = await this.runtime.command(addServerCommand(m.id, m.endpoint, this.serverOptions()));
      if (/already exists/i.test(answer)) await this.setAddress(m);
      else if (!/New server registered/i.test(answer)) {
        throw new Error(`haproxy refused \`add server agents/${m.id}\`: ${answer.trim()}`);
      }
      await this.expect(`enable health agents/${m.id}`, '');
      await this.expect(`set server agents/${m.id} state ready`, '');
    } else {
      await this.setAddress(m);
      await this.expect((fillSlotCommands(m.id, m.endpoint) as [string, string])[1], '');
    }
    this.servers.set(m.id, { incarnation: m.incarnation, state: 'ready', added, at: Date.now() });
    this.opts.logger.debug({ instance: m.id, added }, 'haproxy: server ready');
  }

  /** Points the server at the instance's address. */
  private async setAddress(m: PoolMember): Promise<void> {
    const [addr] = fillSlotCommands(m.id, m.endpoint) as [string, string];
    // It answers what changed, in words; anything else is a refusal (a name, not an address).
    const answer = await this.runtime.command(addr);
    if (!/changed|No need to change/i.test(answer)) {
      throw new Error(
        `haproxy refused the address of ${m.id} (${m.endpoint.host}:${m.endpoint.port}): ${answer.trim()}`,
      );
    }
  }

  /**
   * Maintenance (no new requests; in-flight ones finish). A slot stays, for the next instance of that
   * id; a server added past the slots is deleted once its connections are done (DRAIN_TIMEOUT_MS at most).
   */
  private async remove(id: string): Promise<void> {
    await this.runtime.command(`set server agents/${id} state maint`);
    if (!this.servers.get(id)?.added) {
      this.servers.delete(id);
      return;
    }
    const deadline = Date.now() + this.opts.drainTimeoutMs;
    for (;;) {
      const answer = await this.runtime.command(`del server agents/${id}`);
      if (/Server deleted|No such server/i.test(answer)) break;
      if (Date.now() > deadline) {
        await this.runtime.command(`shutdown sessions server agents/${id}`);
        await this.runtime.command(`del server agents/${id}`);
        break;
      }
      await sleep(50);
    }
    this.servers.delete(id);
  }

  private async expect(command: string, want: string): Promise<void> {
    const answer = await this.runtime.command(command);
    const ok = want === '' ? answer.trim() === '' : answer.includes(want);
    if (!ok) throw new Error(`haproxy refused \`${command}\`: ${answer.trim()}`);
  }

  private statsAt = 0;

  /** A read in flight: the next tick skips (a hung HAProxy must not pile reads up behind it). */
  private reading = false;

  private async readStats(): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    let text: string;
    const asked = Date.now();
    try {
      text = await this.runtime.command('show stat');
    } finally {
      this.reading = false;
    }
    if (asked <= this.statsAt) return; // HAProxy died meanwhile: its exit reset the counts after this was asked
    const rows = parseShowStat(text);
    this.statsAt = asked;
    const next = new Map<string, ServerStat>();
    for (const r of rows) {
      if (r.backend !== 'agents') continue;
      if (r.server === 'BACKEND') this.backendQueued = r.queued;
      else if (r.server !== 'FRONTEND') next.set(r.server, r);
    }
    this.stats = next;
    this.resync(
      driftOf(this.servers, [...next.values()], asked, (id) => slotOf(id, this.opts.slots) !== undefined),
    );
  }

  /** HAProxy is out of line with what was programmed: the lost servers again, the stray ones out. */
  private resync(drift: Drift): void {
    if (this.closed || (drift.lost.length === 0 && drift.stray.length === 0)) return;
    this.resyncs++;
    this.opts.logger.warn(drift, 'haproxy differs from the pool; programming it again');
    for (const id of drift.lost) this.servers.delete(id);
    const { stray } = drift;
    this.applying = this.applying
      .then(async () => {
        for (const id of stray) {
          await this.expect(`set server agents/${id} state maint`, '');
          const s = this.servers.get(id);
          if (s) s.at = Date.now();
        }
      })
      .catch((err: unknown) =>
        this.opts.logger.warn({ err }, 'haproxy: a stray server could not be put in maintenance'),
      );
    this.sync(this.wanted);
  }

  /** For /status: the process, its port, the servers it has and where its exporter is. */
  status(): {
    pid: number | null;
    port: number;
    servers: number;
    resyncs: number;
    /** Who serves the load balancer port now. */
    serving: 'haproxy' | 'node';
    metrics: string;
  } {
    return {
      pid: this.child?.pid ?? null,
      serving: this.failedOver ? 'node' : 'haproxy',
      port: this.port,
      servers: this.servers.size,
      resyncs: this.resyncs,
      metrics: `127.0.0.1:${this.metricsPort}`,
    };
  }

  /** Requests in flight at an instance through HAProxy (as of the last `show stat`). */
  inflight(id: string): number {
    const now = this.stats.get(id)?.current ?? 0;
    // Draining, with no `show stat` read since its maintenance began: not known to be idle yet (the
    // controller stops a drained instance once this says 0).
    const s = this.servers.get(id);
    if (s?.state === 'draining' && (s.maintAt ?? 0) >= this.statsAt) return Math.max(1, now);
    return now;
  }

  /** In flight plus queued through HAProxy: its part of the autoscaler's concurrency signal. */
  concurrency(): number {
    let n = this.backendQueued;
    for (const s of this.stats.values()) n += s.current + s.queued;
    return n;
  }

  /**
   * Soft stop (no new connections, the open ones finish: DRAIN_TIMEOUT_MS at most, HAProxy's
   * hard-stop-after, and a SIGKILL a second later), then the process and its files go.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.statTimer) clearInterval(this.statTimer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.relaunchTimer);
    if (this.failedOver) await this.failover?.release();
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGUSR1');
      const hard = setTimeout(() => child.kill('SIGKILL'), this.opts.drainTimeoutMs + 1000);
      await exited;
      clearTimeout(hard);
    }
    if (this.watchdog) stopWatchdog(this.watchdog);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
