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
import { parseEnvNames, readEnvFile } from './core/env-file.js';
import { YggError } from './core/errors.js';
import { closeServer, listen } from './core/listen.js';
import { isPretty, type Logger } from './core/logger.js';
import { configError } from './core/options.js';
import { isLiveFeedRequest, LiveFeed, routerTotals } from './observability/live-feed.js';
import { controllerStatusPage, lbStatusPage } from './observability/status-page.js';
import { createLbServer } from './router/lb-server.js';
import { Router } from './router/router.js';
import { agentEnvironment } from './runtime/agent-env.js';
import type { InstanceDriver } from './runtime/driver.js';
import { ProcessDriver } from './runtime/process-driver.js';

export interface Platform {
  lbUrl: string;
  controllerUrl: string;
  controller: Controller;
  router: Router;
  driver: InstanceDriver;
  /** Drains and stops everything; idempotent. */
  stop(): Promise<void>;
}

export interface PlatformDeps {
  logger: Logger;
  /** Replaces the driver chosen by DRIVER (tests, simulations). */
  driver?: InstanceDriver;
  /** Forward instances' output to this process's stdout/stderr (npm start does). */
  forwardOutput?: boolean;
}

/** What every agent is given of the platform's environment (AGENT_ENV, AGENT_ENV_FILE), and no more. */
function givenEnv(cfg: PlatformConfig, basics: boolean): Record<string, string> {
  return agentEnvironment({
    parent: process.env,
    names: parseEnvNames(cfg.AGENT_ENV),
    ...(cfg.AGENT_ENV_FILE ? { file: readEnvFile(cfg.AGENT_ENV_FILE) } : {}),
    basics,
  });
}

export async function createDriver(cfg: PlatformConfig, deps: PlatformDeps): Promise<InstanceDriver> {
  if (cfg.DRIVER === 'docker') {
    // Loaded only when used: dockerode and its dependencies would weigh on every process-driver heap.
    const { DockerDriver } = await import('./runtime/docker-driver.js');
    return new DockerDriver({
      image: cfg.AGENT_IMAGE,
      network: cfg.DOCKER_NETWORK,
      owner: cfg.DOCKER_OWNER,
      publishPorts: cfg.DOCKER_PUBLISH_PORTS,
      cpuLimit: cfg.AGENT_CPU_LIMIT,
      memoryLimitBytes: cfg.AGENT_MEMORY_LIMIT,
      cpuReservation: cfg.AGENT_CPU_RESERVATION,
      memoryReservationBytes: cfg.AGENT_MEMORY_RESERVATION,
      env: { ...givenEnv(cfg, false), LOG_LEVEL: cfg.LOG_LEVEL, MAX_BODY_BYTES: String(cfg.MAX_BODY_BYTES) },
      logger: deps.logger,
    });
  }
  return new ProcessDriver({
    command: cfg.AGENT_COMMAND,
    ...(cfg.AGENT_CWD ? { cwd: cfg.AGENT_CWD } : {}),
    host: '127.0.0.1',
    logger: deps.logger,
    forwardOutput: deps.forwardOutput ?? false,
    // The reference agent logs like the platform: readable lines when the platform's are.
    env: {
      ...givenEnv(cfg, true),
      LOG_LEVEL: cfg.LOG_LEVEL,
      LOG_FORMAT: isPretty(cfg.LOG_FORMAT) ? 'pretty' : 'json',
      MAX_BODY_BYTES: String(cfg.MAX_BODY_BYTES),
    },
  });
}

/** Listens, turning "port taken" and "no such address" into a configuration error that names the option. */
async function listenOn(server: Server, option: string, port: number, host: string): Promise<number> {
  try {
    return await listen(server, port, host);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'EADDRINUSE')
      throw configError(
        `${option}=${port} is already in use on ${host}: stop what holds it or choose another port`,
      );
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
      throw configError(`BIND_HOST=${host} is not an address of this machine`);
    if (code === 'EACCES')
      throw configError(`${option}=${port} needs privileges on ${host}: choose a port above 1023`);
    throw err;
  }
}

export async function startPlatform(cfg: PlatformConfig, deps: PlatformDeps): Promise<Platform> {
  const { logger } = deps;
  const driver = deps.driver ?? (await createDriver(cfg, deps));
  const auth = new AuthGate(new KeyRing(authFilePath(cfg)), cfg.AUTH_REQUIRED);
  const hosts = parseAllowedHosts(cfg.ALLOWED_HOSTS, cfg.BIND_HOST);
  const controller = new Controller({
    driver,
    logger,
    minInstances: cfg.MIN_INSTANCES,
    maxInstances: cfg.MAX_INSTANCES,
    healthCheckIntervalMs: cfg.HEALTH_CHECK_INTERVAL,
    healthCheckTimeoutMs: cfg.HEALTH_CHECK_TIMEOUT_MS,
    healthPath: cfg.AGENT_HEALTH_PATH,
    healthFailureThreshold: cfg.HEALTH_FAILURE_THRESHOLD,
    startupTimeoutMs: cfg.STARTUP_TIMEOUT_MS,
    startupProbeIntervalMs: cfg.STARTUP_PROBE_INTERVAL_MS,
    restartBackoffMs: cfg.RESTART_BACKOFF_MS,
    restartBackoffMaxMs: cfg.RESTART_BACKOFF_MAX_MS,
    drainTimeoutMs: cfg.DRAIN_TIMEOUT_MS,
    stopGraceMs: cfg.STOP_GRACE_MS,
  });
  let autoscaler: AutoscaleLoop | undefined;
  const router = new Router({
    maxConcurrency: cfg.MAX_CONCURRENCY,
    maxBodyBytes: cfg.MAX_BODY_BYTES,
    requestTimeoutMs: cfg.REQUEST_TIMEOUT_MS,
    clientBodyTimeoutMs: cfg.CLIENT_BODY_TIMEOUT_MS,
    queueMax: cfg.QUEUE_MAX,
    queueTimeoutMs: cfg.QUEUE_TIMEOUT_MS,
    sessionAffinity: cfg.SESSION_AFFINITY,
    sessionTtlMs: cfg.SESSION_TTL_MS,
    maxRetries: cfg.MAX_RETRIES,
    breakerFailures: cfg.BREAKER_FAILURES,
    breakerResetMs: cfg.BREAKER_RESET_MS,
    breakerCount5xx: cfg.BREAKER_COUNT_5XX,
    outlierStallMs: cfg.OUTLIER_STALL_MS,
    trustedProxies: cfg.TRUSTED_PROXIES,
    logger: logger.child({ part: 'router' }),
    lookup: (id) => controller.member(id),
    onDemand: () => autoscaler?.activate(),
    outlook: () => controller.outlook(),
    onReplace: (id, reason) => controller.replace(id, reason),
    probe: (id) => controller.checkNow(id),
    clients: {
      auth: cfg.CLIENT_AUTH,
      keys: auth.ring,
      rateRps: cfg.RATE_LIMIT_RPS,
      rateBurst: cfg.RATE_LIMIT_BURST,
      maxInflight: cfg.MAX_INFLIGHT_PER_CLIENT,
      maxSessions: cfg.MAX_SESSIONS_PER_CLIENT,
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
  controller.onPoolChange((members) => router.upstreams.sync(members));
  controller.setLoadSource({
    inflight: (id) => router.inflight(id),
    sessions: (id) => router.sessionCount(id),
  });
  autoscaler = new AutoscaleLoop({
    controller,
    concurrency: () => router.concurrency(),
    minInstances: cfg.MIN_INSTANCES,
    maxInstances: cfg.MAX_INSTANCES,
    maxConcurrency: cfg.MAX_CONCURRENCY,
    targetUtilization: cfg.TARGET_UTILIZATION,
    targetCpu: cfg.TARGET_CPU,
    cpuLimitCores: driver.cpuLimitCores,
    stableWindowMs: cfg.STABLE_WINDOW_MS,
    panicWindowMs: cfg.PANIC_WINDOW_MS,
    scaleIntervalMs: cfg.SCALE_INTERVAL_MS,
    scaleToZeroGraceMs: cfg.SCALE_TO_ZERO_GRACE_MS,
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
  // The public port's anonymous view: how the pool is doing, none of its details (stderr, pids,
  // addresses, events): those need a read key there, or the controller port.
  const publicStatus = () => {
    const s = controller.status();
    const byState: Record<string, number> = {};
    for (const i of s.instances) byState[i.state] = (byState[i.state] ?? 0) + 1;
    return {
      readyInstances: s.readyInstances,
      desiredInstances: s.desiredInstances,
      minInstances: s.minInstances,
      maxInstances: s.maxInstances,
      instances: byState,
      queue: { depth: router.queued(), max: cfg.QUEUE_MAX },
    };
  };
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

  const host = cfg.BIND_HOST === '0.0.0.0' ? '127.0.0.1' : cfg.BIND_HOST;
  let stopped: Promise<void> | undefined;
  return {
    lbUrl: `http://${host}:${lbPort}`,
    controllerUrl: `http://${host}:${controllerPort}`,
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
