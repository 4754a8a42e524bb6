// `yggdrasil controller`: the control plane alone (pool, health, autoscaler, admin API) on
// CONTROLLER_PORT. With REDIS_URL several can run: one leads through a lease with a fencing token
// (every pool write carries its term; a deposed leader's writes are refused), the others stand by
// and take over within 2 leases, adopting the running instances. The leader publishes the pool for
// the routers and scales on the sum of their reports; without Redis it keeps the pool as it is.
import type { Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { AuthGate } from '../auth/gate.js';
import { KeyRing } from '../auth/keys.js';
import { createControllerServer } from '../controller/api.js';
import { AutoscaleLoop } from '../controller/autoscale-loop.js';
import { nextLimits } from '../controller/scaling-limits.js';
import { parseAllowedHosts } from '../core/allowed-hosts.js';
import { type BackgroundErrorHandler, every } from '../core/background.js';
import { authFilePath, type PlatformConfig } from '../core/config.js';
import { YggError } from '../core/errors.js';
import { EventLog } from '../core/events.js';
import { closeServer } from '../core/listen.js';
import type { Logger } from '../core/logger.js';
import { LiveFeed } from '../observability/live-feed.js';
import { controllerStatusPage } from '../observability/status-page.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import { type SharedKeys, sharedKeys } from '../shared/keys.js';
import {
  LeaderElection,
  type Leadership,
  type LeaseStore,
  redisLeaseStore,
} from '../shared/leader-election.js';
import { LoadBoard } from '../shared/load-board.js';
import { sharedStateGauge } from '../shared/metrics.js';
import type { ControllerCommand } from '../shared/pool-follower.js';
import { type PoolSnapshot, parseSnapshot } from '../shared/pool-snapshot.js';
import { connectRedis, whenReady } from '../shared/redis.js';
import { type SharedScripts, sharedScripts } from '../shared/scripts.js';
import {
  autoscaleOptions,
  createDriver,
  createPoolControl,
  listenOn,
  nodeId,
  refuseEmbeddedOnly,
  urlFor,
} from './parts.js';
import type { PoolControl } from './pool-control.js';

export interface ControllerRole {
  controllerUrl: string;
  id: string;
  leadership(): Leadership;
  /** The controller of the current term (undefined while standing by). */
  current(): PoolControl | undefined;
  /** Hands the pool to the next leader (Docker) or drains and stops it (processes); idempotent. */
  stop(): Promise<void>;
}

/** One term of leadership: what the leader runs, and the version of its last snapshot. */
interface Term {
  term: number;
  driver: RuntimeDriver;
  controller: PoolControl;
  autoscaler: AutoscaleLoop;
  board: LoadBoard;
  timers: NodeJS.Timeout[];
  version: number;
  publishing: Promise<void> | undefined;
  again: boolean;
}

/** LEADER_ELECTION: the lease in Redis, or a Kubernetes Lease (the term is Redis's either way). */
async function leaseStore(
  cfg: PlatformConfig,
  scripts: SharedScripts,
  keys: SharedKeys,
  redis: { incr(key: string): Promise<number>; get(key: string): Promise<string | null> },
): Promise<LeaseStore> {
  const kind =
    cfg.LEADER_ELECTION === 'auto'
      ? cfg.DRIVER === 'kubernetes'
        ? 'kubernetes'
        : 'redis'
      : cfg.LEADER_ELECTION;
  if (kind === 'redis') return redisLeaseStore(scripts, keys);
  const { KubeLeaseStore } = await import('../shared/kube-lease-store.js');
  const { loadKubeConfig } = await import('../runtime/kube-config.js');
  return new KubeLeaseStore({
    kubeconfig: loadKubeConfig(cfg.KUBECONFIG || undefined),
    namespace: cfg.KUBE_NAMESPACE,
    name: `${cfg.DOCKER_OWNER}-controller`,
    nextTerm: () => redis.incr(keys.term),
    currentTerm: async () => {
      const v = await redis.get(keys.term);
      return v === null ? null : Number(v);
    },
  });
}

export async function startControllerRole(
  cfg: PlatformConfig,
  deps: { logger: Logger; forwardOutput?: boolean },
): Promise<ControllerRole> {
  const { logger } = deps;
  refuseEmbeddedOnly(cfg, 'controller');
  const id = nodeId(cfg);
  const log = logger.child({ part: 'controller-role', node: id });
  const redis = connectRedis(cfg.REDIS_URL, logger, `controller ${id}`);
  const subscriber = connectRedis(cfg.REDIS_URL, logger, `controller ${id} (commands)`);
  const keys = sharedKeys(cfg.REDIS_PREFIX);
  const scripts = sharedScripts(redis);
  const auth = new AuthGate(new KeyRing(authFilePath(cfg)), cfg.AUTH_REQUIRED);
  const hosts = parseAllowedHosts(cfg.ALLOWED_HOSTS, cfg.BIND_HOST);
  const events = new EventLog();
  const registry = new Registry();
  const onError: BackgroundErrorHandler = (loop, err) =>
    log.error({ err, loop }, `background task failed: ${loop}`);
  let term: Term | undefined;
  /** The pool as the leader last published it (what a standby shows). */
  let seen: PoolSnapshot | undefined;
  let stopping = false;

  const refused = new Counter({
    name: 'yggdrasil_controller_fenced_writes_refused_total',
    help: 'Pool writes Redis refused because a newer term exists (this controller was deposed).',
    registers: [registry],
  });

  const election: LeaderElection = new LeaderElection({
    store: await leaseStore(cfg, scripts, keys, redis),
    holder: id,
    leaseMs: cfg.LEADER_LEASE_MS,
    onError,
    onElected: (n) => {
      void lead(n).catch((err: unknown) => {
        log.error({ err }, 'could not take the lead');
      });
    },
    onDeposed: (reason) => {
      void stepDown(reason).catch((err: unknown) => log.error({ err }, 'stepping down failed'));
    },
  });
  new Gauge({
    name: 'yggdrasil_controller_leader',
    help: '1 while this controller leads, 0 while it stands by.',
    registers: [registry],
    collect() {
      this.set(election.status().leader ? 1 : 0);
    },
  });
  new Gauge({
    name: 'yggdrasil_controller_term',
    help: 'The leadership term this controller last saw (the fencing token of pool writes).',
    registers: [registry],
    collect() {
      this.set(election.status().term);
    },
  });
  sharedStateGauge(registry, 'controller', () => !election.unreachable);

  const leaderStatus = (t: Term) => {
    const s = t.controller.status();
    return {
      ...s,
      maxConcurrency: cfg.MAX_CONCURRENCY,
      queue: {
        depth: Math.max(0, t.board.concurrency() - sumInflight(t)),
        max: cfg.QUEUE_MAX,
        timeoutMs: cfg.QUEUE_TIMEOUT_MS,
      },
      autoscaler: t.autoscaler.status(),
      routers: t.board.routers(),
    };
  };
  const sumInflight = (t: Term) => t.controller.members().reduce((n, m) => n + t.board.inflight(m.id), 0);

  const status = () => {
    const leadership = election.status();
    if (term) return { ...leaderStatus(term), leadership };
    return {
      // No pool seen yet (Redis not reached): an empty one, with every field the page and feed read.
      ...((seen?.status as Record<string, unknown> | undefined) ?? {
        driver: cfg.DRIVER,
        desiredInstances: 0,
        minInstances: cfg.MIN_INSTANCES,
        maxInstances: cfg.MAX_INSTANCES,
        readyInstances: 0,
        instances: [],
        events: events.recent(50),
        maxConcurrency: cfg.MAX_CONCURRENCY,
        queue: { depth: 0, max: cfg.QUEUE_MAX, timeoutMs: cfg.QUEUE_TIMEOUT_MS },
        autoscaler: { targetPerInstance: cfg.MAX_CONCURRENCY * cfg.TARGET_UTILIZATION, lastDecision: null },
        routers: [],
      }),
      leadership,
      standby: true,
    };
  };

  const snapshotOf = (t: Term): PoolSnapshot => {
    const s = leaderStatus(t);
    return {
      term: t.term,
      version: ++t.version,
      at: Date.now(),
      leader: id,
      members: t.controller.members(),
      instances: s.instances.map((i) => ({ id: i.id, state: i.state })),
      outlook: t.controller.outlook(),
      readyInstances: s.readyInstances,
      desiredInstances: s.desiredInstances,
      minInstances: s.minInstances,
      maxInstances: s.maxInstances,
      status: { ...s, events: s.events.slice(-20) },
    };
  };

  /** Publishes the pool (coalesced: one write out at a time, the latest state wins). */
  const publish = (t: Term): void => {
    if (t.publishing) {
      t.again = true;
      return;
    }
    t.publishing = (async () => {
      do {
        t.again = false;
        if (term !== t) return;
        const text = JSON.stringify(snapshotOf(t));
        const ok = await scripts
          .fencedPublish(keys.term, keys.pool, t.term, text, keys.poolChannel)
          .catch(() => -1);
        if (ok === 0) {
          refused.inc();
          log.warn({ term: t.term }, 'a pool write was refused: a newer leader exists');
          void election.round();
          return;
        }
      } while (t.again);
    })().finally(() => {
      t.publishing = undefined;
    });
  };

  const lead = async (n: number): Promise<void> => {
    if (stopping) return;
    const driver = await createDriver(cfg, deps);
    // Deposed (or stopped) while the driver was being made: this term is over before it began.
    if (stopping || !election.status().leader || election.term !== n) {
      await driver.close();
      return;
    }
    const controller = createPoolControl(cfg, driver, logger, { events, mayAct: () => election.mayAct() });
    const board = new LoadBoard({
      redis,
      keys,
      routerTtlMs: cfg.ROUTER_HEARTBEAT_MS * 3,
      sessionTtlMs: cfg.SESSION_TTL_MS,
    });
    controller.setLoadSource(board);
    const autoscaler = new AutoscaleLoop({
      target: controller,
      registry: controller.metrics.registry,
      onError: controller.backgroundError,
      concurrency: () => board.concurrency(),
      mayScale: () => election.mayScale() && board.fresh,
      ...autoscaleOptions(cfg, driver.cpuLimitCores),
    });
    const t: Term = {
      term: n,
      driver,
      controller,
      autoscaler,
      board,
      timers: [],
      version: 0,
      publishing: undefined,
      again: false,
    };
    term = t;
    events.push({
      at: Date.now(),
      type: 'leadership',
      message: `${id} leads (term ${n})`,
      data: { term: n, holder: id, elected: true },
    });
    log.info({ term: n }, `elected: ${id} leads the pool (term ${n})`);
    const refresh = () => board.refresh(controller.members().map((m) => m.id)).catch(() => undefined);
    await refresh();
    if (term !== t) return; // deposed meanwhile: stepDown abandoned it
    controller.onPoolChange(() => publish(t));
    t.timers.push(
      every(cfg.ROUTER_HEARTBEAT_MS, 'pool publish', () => publish(t), onError),
      every(Math.min(cfg.ROUTER_HEARTBEAT_MS, 500), 'load board', refresh, onError),
    );
    await controller.start();
    autoscaler.start();
  };

  /** Leaves the pool to the new leader: nothing of it is touched by this controller again. */
  const stepDown = async (reason: string): Promise<void> => {
    const t = term;
    term = undefined;
    if (!t) return;
    for (const x of t.timers) clearInterval(x);
    t.autoscaler.stop();
    events.push({
      at: Date.now(),
      type: 'leadership',
      message: `${id} no longer leads: ${reason}`,
      data: { term: t.term, holder: id, elected: false, reason },
    });
    log.warn({ term: t.term, reason }, `deposed (${reason}): standing by`);
    await t.controller.abandon();
  };

  subscriber.on('message', (channel: string, text: string) => {
    if (channel !== keys.commands || !term || !election.mayAct()) return;
    let cmd: ControllerCommand;
    try {
      cmd = JSON.parse(text) as ControllerCommand;
    } catch {
      return;
    }
    if (cmd.type === 'demand') term.autoscaler.activate();
    else if (cmd.type === 'replace' && typeof cmd.instance === 'string')
      term.controller.replace(cmd.instance, String(cmd.reason));
  });

  const notLeader = () => {
    const l = election.status();
    return new YggError(
      'YGG_ERR_NOT_LEADER',
      `this controller (${id}) stands by: ${l.holder ?? 'no controller'} leads${l.term ? ` (term ${l.term})` : ''}`,
      { retryAfterSeconds: 1, details: { leader: l.holder, term: l.term } },
    );
  };
  const metricsOf = {
    contentType: registry.contentType,
    async metrics(): Promise<string> {
      const own = await registry.metrics();
      return term ? `${own}\n${await term.controller.metrics.registry.metrics()}` : own;
    },
  };
  const api: Server = createControllerServer({
    logger,
    status,
    registry: metricsOf,
    statusPage: controllerStatusPage,
    scrapeTargets: () =>
      (term?.controller.members() ?? []).map((m) => ({
        targets: [`${m.endpoint.host}:${m.endpoint.port}`],
        labels: { instance_id: m.id, driver: term?.driver.kind ?? '' },
      })),
    auth,
    hosts,
    admin: {
      setScaling(body, by) {
        const t = term;
        if (!t || !election.mayAct()) return notLeader();
        const next = nextLimits(t.controller.scalingLimits(), body);
        if (next instanceof YggError) return next;
        t.autoscaler.setLimits(next.minInstances, next.maxInstances);
        t.controller.setScalingLimits(next, by);
        publish(t);
        return { ...next, desiredInstances: t.controller.desiredInstances };
      },
      drain(instance, restart, by) {
        const t = term;
        if (!t || !election.mayAct()) throw notLeader();
        return t.controller.drainInstance(instance, restart, by);
      },
    },
  });
  const feed = new LiveFeed({
    status: status as never,
    events,
    totals: async () => ({ requests: 0, errors: 0, buckets: [] }),
    logger: logger.child({ part: 'live-feed' }),
    hosts,
  });
  feed.attach(api, async (key) => ((await auth.checkKey(key, 'read')).ok ? 'full' : 'denied'));
  const port = await listenOn(api, 'CONTROLLER_PORT', cfg.CONTROLLER_PORT, cfg.BIND_HOST).catch((err) => {
    redis.disconnect();
    subscriber.disconnect();
    throw err;
  });
  // A standby shows what the leader publishes; every controller listens for the routers' requests.
  const watch = every(
    cfg.ROUTER_HEARTBEAT_MS,
    'standby view',
    async () => {
      if (!term) seen = parseSnapshot(await redis.get(keys.pool)).snapshot ?? seen;
    },
    () => {},
  );
  if (!(await whenReady(redis, 2000))) log.warn('Redis does not answer: standing by until it does');
  await subscriber.subscribe(keys.commands).catch(() => undefined);
  election.start();
  feed.start();
  auth.start();

  let stopped: Promise<void> | undefined;
  return {
    controllerUrl: urlFor(cfg, port),
    id,
    leadership: () => election.status(),
    current: () => term?.controller,
    stop() {
      stopped ??= (async () => {
        stopping = true;
        clearInterval(watch);
        auth.stop();
        const t = term;
        if (t) {
          // A driver whose instances another controller can adopt hands them over; processes stop.
          // An engine (Swarm) keeps its replicas, Docker containers are detached: both are handed over.
          if (t.driver.mode === 'replicas' || t.driver.detach) {
            await stepDown('stopped (the pool is left for the next leader)');
          } else {
            term = undefined;
            for (const x of t.timers) clearInterval(x);
            t.autoscaler.stop();
            await t.controller.stop();
          }
        }
        await election.stop();
        feed.close();
        await closeServer(api);
        redis.disconnect();
        subscriber.disconnect();
      })();
      return stopped;
    },
  };
}
