// The composition root: builds the runtime driver, controller, router and both HTTP ports from one
// validated configuration, and owns their shutdown (drain, stop every instance, close the ports).
import type { Server } from 'node:http';
import { AuthGate } from './auth/gate.js';
import { KeyRing } from './auth/keys.js';
import { bearerOf } from './auth/policy.js';
import { createControllerServer } from './controller/api.js';
import { AutoscaleLoop } from './controller/autoscale-loop.js';
import { Controller } from './controller/controller.js';
import { nextLimits } from './controller/scaling-limits.js';
import { parseAllowedHosts } from './core/allowed-hosts.js';
import { authFilePath, type PlatformConfig } from './core/config.js';
import { YggError } from './core/errors.js';
import { closeServer, finishConnections, listen, stopAccepting } from './core/listen.js';
import type { Logger } from './core/logger.js';
import { isLiveFeedRequest, LiveFeed, routerTotals } from './observability/live-feed.js';
import { controllerStatusPage, lbStatusPage } from './observability/status-page.js';
import {
  autoscaleOptions,
  createDriver,
  createPoolControl,
  haproxyDataplane,
  listenOn,
  publicSummary,
  routerOptions,
  runService,
  urlFor,
} from './roles/parts.js';
import type { PoolControl } from './roles/pool-control.js';
import { createLbServer, type LbServerOptions } from './router/lb-server.js';
import { Router } from './router/router.js';
import type { RuntimeDriver } from './runtime/driver.js';
import { freePort } from './runtime/free-port.js';
import { DedicatedSessions } from './sessions/dedicated-sessions.js';

export interface Platform {
  lbUrl: string;
  controllerUrl: string;
  controller: PoolControl;
  router: Router;
  driver: RuntimeDriver;
  /** Requests in flight at an instance, whichever data plane carries them (HAProxy's as of its last `show stat`). */
  inflight(id: string): number;
  /** Drains and stops everything; idempotent. */
  stop(): Promise<void>;
}

export interface PlatformDeps {
  logger: Logger;
  /** Replaces the driver chosen by DRIVER (tests, simulations). */
  driver?: RuntimeDriver;
  /** Forward instances' output to this process's stdout/stderr (npm start does). */
  forwardOutput?: boolean;
}

export { createDriver };

export async function startPlatform(cfg: PlatformConfig, deps: PlatformDeps): Promise<Platform> {
  const { logger } = deps;
  const driver = deps.driver ?? (await createDriver(cfg, deps));
  // DATAPLANE=haproxy: HAProxy takes LB_PORT; the Node router listens behind it on loopback.
  const dataplane = cfg.DATAPLANE === 'haproxy' ? await haproxyDataplane(cfg, logger) : undefined;
  const auth = new AuthGate(new KeyRing(authFilePath(cfg)), cfg.AUTH_REQUIRED);
  const hosts = parseAllowedHosts(cfg.ALLOWED_HOSTS, cfg.BIND_HOST);
  const controller = createPoolControl(cfg, driver, logger);
  // SESSION_MODE=dedicated (an instance driver: config.ts refuses the others): sessions own instances.
  const sessions =
    cfg.SESSION_MODE === 'dedicated' && controller instanceof Controller
      ? new DedicatedSessions({
          instances: controller,
          pauseMs: cfg.SESSION_IDLE_PAUSE_MS,
          deleteMs: cfg.SESSION_IDLE_DELETE_MS,
          startupTimeoutMs: cfg.STARTUP_TIMEOUT_MS,
          endedTtlMs: Math.max(cfg.SESSION_TTL_MS, cfg.SESSION_IDLE_DELETE_MS),
          events: controller.events,
          registry: controller.metrics.registry,
          logger,
          onError: controller.backgroundError,
        })
      : undefined;
  if (sessions && controller instanceof Controller) {
    controller.onOwnedLost((instance, _owner, reason) => sessions.instanceLost(instance, reason));
  }
  let autoscaler: AutoscaleLoop | undefined;
  const base = routerOptions(cfg, logger, auth.ring);
  const router = new Router({
    ...base,
    // Behind HAProxy the peer is HAProxy: the client address is the one it adds to X-Forwarded-For.
    ...(dataplane
      ? { trustedProxies: [base.trustedProxies, '127.0.0.1', '::1'].filter(Boolean).join(',') }
      : {}),
    ...(sessions ? { dedicated: sessions } : {}),
    pool: {
      onMembers: (listener) => controller.onPoolChange(listener),
      lookup: (id) => controller.member(id),
      outlook: () => controller.outlook(),
      demand: () => autoscaler?.activate(),
      replace: (id, reason) => controller.replace(id, reason),
      probe: (id) => controller.checkNow(id),
    },
    onBreaker: (instance, t) =>
      controller.events.push({
        at: t.at,
        type: 'breaker',
        instance,
        message: `circuit breaker of ${instance}: ${t.from} → ${t.to}`,
        data: { from: t.from, to: t.to, ...(t.ejectionMs !== undefined ? { ejectionMs: t.ejectionMs } : {}) },
      }),
  });
  const inflight = (id: string) => router.inflight(id) + (dataplane?.inflight(id) ?? 0);
  controller.setLoadSource({
    inflight,
    sessions: (id) => router.sessionCount(id),
  });
  autoscaler = new AutoscaleLoop({
    target: controller,
    registry: controller.metrics.registry,
    onError: controller.backgroundError,
    concurrency: () => router.concurrency() + (dataplane?.concurrency() ?? 0),
    ...autoscaleOptions(cfg, driver.cpuLimitCores),
  });
  const scaler = autoscaler;

  const status = () => {
    const s = controller.status();
    const breakers = router.breakerStates();
    return {
      ...s,
      instances: s.instances.map((i) => ({ ...i, breaker: breakers[i.id]?.state ?? null })),
      maxConcurrency: cfg.MAX_CONCURRENCY,
      queue: { depth: router.queued(), max: cfg.QUEUE_MAX, timeoutMs: cfg.QUEUE_TIMEOUT_MS },
      autoscaler: scaler.status(),
      sessionMode: cfg.SESSION_MODE,
      warmInstances: cfg.WARM_INSTANCES,
      dataplane: dataplane ? { kind: 'haproxy', ...dataplane.status() } : { kind: 'node' },
      // By tag: a session id lets its holder reach the instance, and /status needs only a read key.
      ...(sessions ? { sessions: sessions.list().map(({ session: _id, ...rest }) => rest) } : {}),
    };
  };
  const feed = new LiveFeed({
    status,
    events: controller.events,
    totals: routerTotals(router.metrics),
    logger: logger.child({ part: 'live-feed' }),
    hosts,
  });
  const publicStatus = () =>
    publicSummary(controller.status(), { depth: router.queued(), max: cfg.QUEUE_MAX });
  const runs = runService(cfg, logger);
  const lbOptions: LbServerOptions = {
    router,
    runs,
    logger,
    status: async (req) =>
      (await auth.isReader(bearerOf(req.headers.authorization))) ? status() : publicStatus(),
    statusPage: lbStatusPage,
    skipUpgrade: isLiveFeedRequest,
    hosts,
    health: () => {
      const ready = controller.readyCount();
      // With scale to zero, an empty pool is healthy: the first request starts an instance (and a
      // dedicated session's request starts its own).
      const ok = ready > 0 || cfg.MIN_INSTANCES === 0 || sessions !== undefined;
      return {
        ok,
        body: {
          status: ok ? 'ok' : 'unavailable',
          readyInstances: ready,
          desiredInstances: controller.desiredInstances,
        },
      };
    },
  };
  const lb: Server = createLbServer(lbOptions);
  // DATAPLANE=haproxy: while HAProxy is down the Node router serves its port too, with a server of its
  // own there (the same routes and router). HAProxy is started again on that server's listening
  // socket (its fd), and the server stops accepting once HAProxy answers: the port is never closed.
  let fallback: Server | undefined;
  /** Fallback servers that stopped accepting (HAProxy has the port): their connections end on their own, or at the stop. */
  const retired = new Set<Server>();
  dataplane?.setFailover({
    async take(port) {
      const server = createLbServer(lbOptions);
      await listen(server, port, cfg.BIND_HOST);
      fallback = server;
    },
    listener() {
      return (fallback as unknown as { _handle?: { fd?: number } } | undefined)?._handle?.fd;
    },
    async release() {
      const server = fallback;
      fallback = undefined;
      if (!server) return;
      // It stops accepting at once; its connections, idle keep-alive ones too, end on their own: a
      // client reusing one is never cut (the handover refuses nothing).
      stopAccepting(server);
      retired.add(server);
      server.once('close', () => retired.delete(server));
    },
  });
  const api: Server = createControllerServer({
    logger,
    status,
    registry: controller.metrics.registry,
    statusPage: controllerStatusPage,
    scrapeTargets: () => [
      ...controller.members().map((m) => ({
        targets: [`${m.endpoint.host}:${m.endpoint.port}`],
        labels: { instance_id: m.id, driver: driver.kind },
      })),
      // DATAPLANE=haproxy: its own exporter (per-server requests, queue, connections).
      ...(dataplane
        ? [{ targets: [dataplane.status().metrics], labels: { instance_id: 'haproxy', driver: 'haproxy' } }]
        : []),
    ],
    auth,
    hosts,
    admin: {
      setScaling(body, by) {
        const next = nextLimits(controller.scalingLimits(), body);
        if (next instanceof YggError) return next;
        scaler.setLimits(next.minInstances, next.maxInstances);
        controller.setScalingLimits(next, by);
        return { ...next, desiredInstances: controller.desiredInstances };
      },
      drain: (id, restart, by) => controller.drainInstance(id, restart, by),
      ...(sessions ? { sessions } : {}),
    },
  });
  feed.attach(lb, async (key) => ((await auth.isReader(key)) ? 'full' : 'public'));
  feed.attach(api, async (key) => ((await auth.checkKey(key, 'read')).ok ? 'full' : 'denied'));
  const lbPort = dataplane
    ? await listen(lb, 0, '127.0.0.1')
    : await listenOn(lb, 'LB_PORT', cfg.LB_PORT, cfg.BIND_HOST);
  const controllerPort = await listenOn(api, 'CONTROLLER_PORT', cfg.CONTROLLER_PORT, cfg.BIND_HOST).catch(
    async (err) => {
      await closeServer(lb);
      throw err;
    },
  );
  let publicPort = lbPort;
  if (dataplane) {
    publicPort = cfg.LB_PORT === 0 ? await freePort(cfg.BIND_HOST) : cfg.LB_PORT;
    try {
      await dataplane.start({ port: publicPort, activatorPort: lbPort });
    } catch (err) {
      await Promise.all([closeServer(lb), closeServer(api), dataplane.close()]);
      throw err;
    }
    controller.onPoolChange((members) => dataplane.sync(members));
  }
  try {
    await controller.start();
  } catch (err) {
    // Nothing it started outlives the failed start: HAProxy, the ports, the instances so far.
    await dataplane?.close();
    await Promise.all([closeServer(lb), closeServer(api), controller.stop().catch(() => {})]);
    throw err;
  }
  // Dedicated sessions size the pool themselves (their instances plus the warm ones).
  if (sessions) sessions.start();
  else scaler.start();
  feed.start();
  auth.start();

  let stopped: Promise<void> | undefined;
  return {
    lbUrl: urlFor(cfg, publicPort),
    controllerUrl: urlFor(cfg, controllerPort),
    controller,
    router,
    driver,
    inflight,
    stop() {
      stopped ??= (async () => {
        auth.stop();
        // HAProxy stops taking connections first (the ones open finish), then the router's port.
        await dataplane?.close();
        const lbClosed = closeServer(lb);
        scaler.stop();
        sessions?.close();
        await controller.stop();
        // After the drain, so live clients see it; before the ports close, which wait for them.
        feed.close();
        runs.close();
        await router.close();
        await Promise.all([lbClosed, closeServer(api), ...[...retired].map(finishConnections)]);
      })();
      return stopped;
    },
  };
}
