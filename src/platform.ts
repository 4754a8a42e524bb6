// The composition root: builds the runtime driver, controller, router and both HTTP ports from one
// validated configuration, and owns their shutdown (drain, stop every instance, close the ports).
import type { Server } from 'node:http';
import { AuthGate } from './auth/gate.js';
import { KeyRing } from './auth/keys.js';
import { bearerOf } from './auth/policy.js';
import { createControllerServer } from './controller/api.js';
import { AutoscaleLoop } from './controller/autoscale-loop.js';
import { nextLimits } from './controller/scaling-limits.js';
import { parseAllowedHosts } from './core/allowed-hosts.js';
import { authFilePath, type PlatformConfig } from './core/config.js';
import { YggError } from './core/errors.js';
import { closeServer } from './core/listen.js';
import type { Logger } from './core/logger.js';
import { isLiveFeedRequest, LiveFeed, routerTotals } from './observability/live-feed.js';
import { controllerStatusPage, lbStatusPage } from './observability/status-page.js';
import {
  autoscaleOptions,
  createDriver,
  createPoolControl,
  listenOn,
  publicSummary,
  routerOptions,
  urlFor,
} from './roles/parts.js';
import type { PoolControl } from './roles/pool-control.js';
import { createLbServer } from './router/lb-server.js';
import { Router } from './router/router.js';
import type { RuntimeDriver } from './runtime/driver.js';

export interface Platform {
  lbUrl: string;
  controllerUrl: string;
  controller: PoolControl;
  router: Router;
  driver: RuntimeDriver;
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
  const auth = new AuthGate(new KeyRing(authFilePath(cfg)), cfg.AUTH_REQUIRED);
  const hosts = parseAllowedHosts(cfg.ALLOWED_HOSTS, cfg.BIND_HOST);
  const controller = createPoolControl(cfg, driver, logger);
  let autoscaler: AutoscaleLoop | undefined;
  const router = new Router({
    ...routerOptions(cfg, logger, auth.ring),
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
  controller.setLoadSource({
    inflight: (id) => router.inflight(id),
    sessions: (id) => router.sessionCount(id),
  });
  autoscaler = new AutoscaleLoop({
    target: controller,
    registry: controller.metrics.registry,
    onError: controller.backgroundError,
    concurrency: () => router.concurrency(),
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
  const lb: Server = createLbServer({
    router,
    logger,
    status: async (req) =>
      (await auth.isReader(bearerOf(req.headers.authorization))) ? status() : publicStatus(),
    statusPage: lbStatusPage,
    skipUpgrade: isLiveFeedRequest,
    hosts,
    health: () => {
      const ready = controller.readyCount();
      // With scale to zero, an empty pool is healthy: the first request starts an instance.
      const ok = ready > 0 || cfg.MIN_INSTANCES === 0;
      return {
        ok,
        body: {
          status: ok ? 'ok' : 'unavailable',
          readyInstances: ready,
          desiredInstances: controller.desiredInstances,
        },
      };
    },
  });
  const api: Server = createControllerServer({
    logger,
    status,
    registry: controller.metrics.registry,
    statusPage: controllerStatusPage,
    scrapeTargets: () =>
      controller.members().map((m) => ({
        targets: [`${m.endpoint.host}:${m.endpoint.port}`],
        labels: { instance_id: m.id, driver: driver.kind },
      })),
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
    },
  });
  feed.attach(lb, async (key) => ((await auth.isReader(key)) ? 'full' : 'public'));
  feed.attach(api, async (key) => ((await auth.checkKey(key, 'read')).ok ? 'full' : 'denied'));
  const lbPort = await listenOn(lb, 'LB_PORT', cfg.LB_PORT, cfg.BIND_HOST);
  const controllerPort = await listenOn(api, 'CONTROLLER_PORT', cfg.CONTROLLER_PORT, cfg.BIND_HOST).catch(
    async (err) => {
      await closeServer(lb);
      throw err;
    },
  );
  await controller.start();
  scaler.start();
  feed.start();
  auth.start();

  let stopped: Promise<void> | undefined;
  return {
    lbUrl: urlFor(cfg, lbPort),
    controllerUrl: urlFor(cfg, controllerPort),
    controller,
    router,
    driver,
    stop() {
      stopped ??= (async () => {
        auth.stop();
        const lbClosed = closeServer(lb);
        scaler.stop();
        await controller.stop();
        // After the drain, so live clients see it; before the ports close, which wait for them.
        feed.close();
        await router.close();
        await Promise.all([lbClosed, closeServer(api)]);
      })();
      return stopped;
    },
  };
}
