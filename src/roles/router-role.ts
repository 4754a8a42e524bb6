// `yggdrasil router`: the data plane alone, on LB_PORT. It finds the pool through Redis (REDIS_URL,
// no other address): the leader's snapshots, the shared session table, and its share of each
// instance's capacity among the live routers. It reports its load every ROUTER_HEARTBEAT_MS. When
// Redis is unreachable it keeps routing with its last view and says `degraded` in /health and metrics.
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Counter, Gauge } from 'prom-client';
import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import { AuthGate } from '../auth/gate.js';
import { KeyRing } from '../auth/keys.js';
import { bearerOf } from '../auth/policy.js';
import { probeHealth } from '../controller/health-probe.js';
import { parseAllowedHosts } from '../core/allowed-hosts.js';
import { every } from '../core/background.js';
import { authFilePath, type PlatformConfig } from '../core/config.js';
import { EventLog } from '../core/events.js';
import { closeServer } from '../core/listen.js';
import type { Logger } from '../core/logger.js';
import { type FeedStatus, isLiveFeedRequest, LiveFeed, routerTotals } from '../observability/live-feed.js';
import { lbStatusPage } from '../observability/status-page.js';
import { createLbServer } from '../router/lb-server.js';
import { Router } from '../router/router.js';
import { sharedKeys } from '../shared/keys.js';
import { sharedStateGauge } from '../shared/metrics.js';
import { PoolFollower } from '../shared/pool-follower.js';
import { connectRedis, whenReady } from '../shared/redis.js';
import { RedisRunLog } from '../shared/redis-run-log.js';
import { RedisSessionStore } from '../shared/redis-session-store.js';
import { RouterPresence } from '../shared/router-presence.js';
import { sharedScripts } from '../shared/scripts.js';
import {
  listenOn,
  nodeId,
  publicSummary,
  refuseEmbeddedOnly,
  routerOptions,
  runService,
  urlFor,
} from './parts.js';

export interface RouterRole {
  lbUrl: string;
  id: string;
  router: Router;
  /** Why the shared state may be stale, or undefined. */
  degraded(): string | undefined;
  stop(): Promise<void>;
}

export async function startRouterRole(cfg: PlatformConfig, deps: { logger: Logger }): Promise<RouterRole> {
  const { logger } = deps;
  refuseEmbeddedOnly(cfg, 'router');
  const id = nodeId(cfg);
  const redis = connectRedis(cfg.REDIS_URL, logger, `router ${id}`);
  const subscriber = connectRedis(cfg.REDIS_URL, logger, `router ${id} (pool feed)`);
  const keys = sharedKeys(cfg.REDIS_PREFIX);
  const auth = new AuthGate(new KeyRing(authFilePath(cfg)), cfg.AUTH_REQUIRED);
  const hosts = parseAllowedHosts(cfg.ALLOWED_HOSTS, cfg.BIND_HOST);
  const follower = new PoolFollower({
    redis,
    subscriber,
    keys,
    logger,
    probe: async (m) =>
      (await probeHealth(m.endpoint, cfg.AGENT_HEALTH_PATH, cfg.HEALTH_CHECK_TIMEOUT_MS)).ok,
  });
  const events = new EventLog();
  let storeErrors: { inc(labels: { op: string }): void } | undefined;
  const sessions = new RedisSessionStore({
    redis,
    scripts: sharedScripts(redis),
    keys,
    ttlMs: cfg.SESSION_TTL_MS,
    logger,
    onError: (op) => storeErrors?.inc({ op }),
  });
  const base = routerOptions(cfg, logger, auth.ring);
  const router = new Router({
    ...base,
    // RATE_LIMIT_RPS across every router together; this router's own counts while Redis is away.
    clients: base.clients && {
      ...base.clients,
      limiter: (o) =>
        new RateLimiterRedis({
          ...o,
          storeClient: redis,
          keyPrefix: `${keys.rateLimits}:${o.keyPrefix}`,
          rejectIfRedisNotReady: true,
          insuranceLimiter: new RateLimiterMemory(o),
        }),
    },
    pool: follower,
    sessions,
    onBreaker: (instance, t) =>
      events.push({
        at: t.at,
        type: 'breaker',
        instance,
        message: `circuit breaker of ${instance} (router ${id}): ${t.from} → ${t.to}`,
        data: { from: t.from, to: t.to, router: id },
      }),
  });
  const presence = new RouterPresence({
    redis,
    keys,
    id,
    total: cfg.MAX_CONCURRENCY,
    heartbeatMs: cfg.ROUTER_HEARTBEAT_MS,
    router: {
      instances: () =>
        router.upstreams.all().map((u) => ({ id: u.id, limit: u.limit, inflight: u.inflight })),
      queued: () => router.queued(),
      setLimit: (instance, n) => {
        const up = router.upstreams.get(instance);
        if (up) router.slots.setLimit(up, n);
      },
    },
  });
  router.upstreams.setInitialLimit((instance) => presence.initialShare(instance));

  let presenceError: string | undefined;
  const degraded = () => follower.degraded() ?? presenceError;
  const registry = router.metrics.registry;
  sharedStateGauge(registry, 'router', () => !degraded());
  new Gauge({
    name: 'yggdrasil_router_peers',
    help: 'Routers serving the pool as this one saw them at its last heartbeat (itself included).',
    registers: [registry],
    collect() {
      this.set(presence.peers().length);
    },
  });
  new Gauge({
    name: 'yggdrasil_router_capacity_share',
    help: "This router's share of each instance's MAX_CONCURRENCY (the slots it may hold on it).",
    labelNames: ['instance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const u of router.upstreams.all()) this.set({ instance: u.id }, u.limit);
    },
  });
  storeErrors = new Counter({
    name: 'yggdrasil_router_session_store_errors_total',
    help: 'Reads and writes of the shared session table that failed (the near cache answered instead).',
    labelNames: ['op'],
    registers: [registry],
  });

  const heartbeat = async () => {
    try {
      await presence.beat();
      presenceError = undefined;
    } catch (err) {
      presenceError = `redis unreachable: ${(err as Error).message}`;
    }
    await follower.resync();
  };
  await whenReady(redis, 2000);
  await heartbeat();
  const timer = every(cfg.ROUTER_HEARTBEAT_MS, 'router heartbeat', heartbeat, (loop, err) =>
    logger.error({ err, loop }, `router background task failed: ${loop}`),
  );
  if (degraded())
    logger.warn({ reason: degraded() }, 'starting without the shared state: no pool until Redis answers');

  // The leader's /status as it published it, with this router's own view added (breakers, shares).
  const fullStatus = (): FeedStatus & Record<string, unknown> => {
    const breakers = router.breakerStates();
    const snap = follower.current();
    const s = (snap?.status ?? {}) as Partial<FeedStatus> & Record<string, unknown>;
    return {
      ...s,
      driver: s.driver ?? 'unknown',
      desiredInstances: snap?.desiredInstances ?? 0,
      minInstances: snap?.minInstances ?? cfg.MIN_INSTANCES,
      maxInstances: snap?.maxInstances ?? cfg.MAX_INSTANCES,
      readyInstances: snap?.readyInstances ?? 0,
      autoscaler: s.autoscaler ?? { lastDecision: null },
      instances: (s.instances ?? []).map((i) => ({
        ...i,
        breaker: breakers[String(i.id)]?.state ?? null,
        share: router.upstreams.get(String(i.id))?.limit ?? null,
      })),
      maxConcurrency: cfg.MAX_CONCURRENCY,
      queue: {
        depth: router.queued(),
        max: cfg.QUEUE_MAX,
        timeoutMs: cfg.QUEUE_TIMEOUT_MS,
      } as FeedStatus['queue'],
      router: {
        id,
        peers: presence.peers(),
        sharedState: degraded() ? { ok: false, reason: degraded() } : { ok: true },
      },
    };
  };
  const summary = () => {
    const snap = follower.current();
    return publicSummary(
      snap ?? {
        readyInstances: 0,
        desiredInstances: 0,
        minInstances: cfg.MIN_INSTANCES,
        maxInstances: cfg.MAX_INSTANCES,
        instances: [],
      },
      { depth: router.queued(), max: cfg.QUEUE_MAX },
    );
  };
  const feed = new LiveFeed({
    status: fullStatus,
    events,
    totals: routerTotals(router.metrics),
    logger: logger.child({ part: 'live-feed' }),
    hosts,
  });
  // Runs: run by the router that took them, mirrored in Redis, so any router serves them.
  const runsSubscriber = connectRedis(cfg.REDIS_URL, logger, `router ${id} (runs)`);
  const sharedRuns = new RedisRunLog({
    redis,
    subscriber: runsSubscriber,
    keys,
    owner: id,
    retentionMs: cfg.RUN_RETENTION_MS,
    runTimeoutMs: cfg.RUN_TIMEOUT_MS,
    routerTtlMs: presence.ttlMs,
    logger: logger.child({ part: 'runs' }),
  });
  await sharedRuns.start();
  const runs = runService(cfg, logger, sharedRuns);
  const lb: Server = createLbServer({
    router,
    runs,
    logger,
    status: async (req) =>
      (await auth.isReader(bearerOf(req.headers.authorization))) ? fullStatus() : summary(),
    statusPage: lbStatusPage,
    skipUpgrade: isLiveFeedRequest,
    hosts,
    health: () => {
      const snap = follower.current();
      const ready = snap?.readyInstances ?? 0;
      const reason = degraded();
      // Serving from the last view is not a failure: degraded, not unavailable.
      const ok = ready > 0 || (snap !== undefined && snap.minInstances === 0);
      return {
        ok,
        body: {
          status: !ok ? 'unavailable' : reason ? 'degraded' : 'ok',
          ...(reason ? { reason } : {}),
          readyInstances: ready,
          desiredInstances: snap?.desiredInstances ?? 0,
          router: id,
        },
      };
    },
  });
  feed.attach(lb, async (key) => ((await auth.isReader(key)) ? 'full' : 'public'));
  const lbPort = await listenOn(lb, 'LB_PORT', cfg.LB_PORT, cfg.BIND_HOST).catch(async (err) => {
    clearInterval(timer);
    runs.close();
    sharedRuns.close();
    await router.close();
    redis.disconnect();
    subscriber.disconnect();
    runsSubscriber.disconnect();
    throw err;
  });
  feed.start();
  auth.start();
  logger.info({ router: id, lbPort }, 'router up');

  let stopped: Promise<void> | undefined;
  return {
    lbUrl: urlFor(cfg, lbPort),
    id,
    router,
    degraded,
    stop() {
      stopped ??= (async () => {
        auth.stop();
        const closed = closeServer(lb);
        // Requests it accepted finish first (up to DRAIN_TIMEOUT_MS), with its share kept meanwhile.
        const deadline = Date.now() + cfg.DRAIN_TIMEOUT_MS;
        while (router.concurrency() > 0 && Date.now() < deadline) await sleep(25);
        clearInterval(timer);
        feed.close();
        runs.close();
        await router.close();
        await closed;
        // Its share goes back to the others at their next heartbeat, now that nothing is in flight.
        await presence.leave().catch(() => {});
        sharedRuns.close();
        redis.disconnect();
        subscriber.disconnect();
        runsSubscriber.disconnect();
      })();
      return stopped;
    },
  };
}
