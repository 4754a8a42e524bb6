// Pieces every composition builds the same way from the configuration: the embedded platform
// (platform.ts), the router role and the controller role. Each returns options or a small object;
// none starts anything.

import type { Server } from 'node:http';
import { hostname } from 'node:os';
import type { KeyRing } from '../auth/keys.js';
import type { AutoscaleLoopOptions } from '../controller/autoscale-loop.js';
import { Controller, type ControllerOptions, type ControllerStatus } from '../controller/controller.js';
import { ReplicaController } from '../controller/replica-controller.js';
import type { PlatformConfig } from '../core/config.js';
import { parseEnvNames, readEnvFile } from '../core/env-file.js';
import type { EventLog } from '../core/events.js';
import { listen } from '../core/listen.js';
import { isPretty, type Logger } from '../core/logger.js';
import { configError } from '../core/options.js';
import type { RouterOptions } from '../router/router.js';
import { RunService, type SharedRuns } from '../runs/run-service.js';
import { agentEnvironment } from '../runtime/agent-env.js';
import type { InstanceDriver, RuntimeDriver } from '../runtime/driver.js';
import type { KubernetesDriverOptions } from '../runtime/kubernetes-driver.js';
import { ProcessDriver } from '../runtime/process-driver.js';
import type { PoolControl } from './pool-control.js';

export interface DriverDeps {
  logger: Logger;
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

/** What every container runtime (Docker, Swarm, Kubernetes) is given alike: image, owner, env, limits. */
function containerOptions(cfg: PlatformConfig) {
  return {
    image: cfg.AGENT_IMAGE,
    owner: cfg.DOCKER_OWNER,
    env: { ...givenEnv(cfg, false), LOG_LEVEL: cfg.LOG_LEVEL, MAX_BODY_BYTES: String(cfg.MAX_BODY_BYTES) },
    cpuLimit: cfg.AGENT_CPU_LIMIT,
    memoryLimitBytes: cfg.AGENT_MEMORY_LIMIT,
    cpuReservation: cfg.AGENT_CPU_RESERVATION,
    memoryReservationBytes: cfg.AGENT_MEMORY_RESERVATION,
  };
}

/** DRIVER=kubernetes's options (also what `agentManifests` renders without a cluster). */
export function kubernetesOptions(cfg: PlatformConfig, logger: Logger): KubernetesDriverOptions {
  return {
    ...containerOptions(cfg),
    namespace: cfg.KUBE_NAMESPACE,
    ...(cfg.KUBECONFIG ? { kubeconfig: cfg.KUBECONFIG } : {}),
    healthPath: cfg.AGENT_HEALTH_PATH,
    // The drain time, and 5 s more: the kill must not land as the drain ends.
    graceSeconds: Math.ceil(cfg.DRAIN_TIMEOUT_MS / 1000) + 5,
    logger,
  };
}

export async function createDriver(cfg: PlatformConfig, deps: DriverDeps): Promise<RuntimeDriver> {
  if (cfg.DRIVER === 'kubernetes') {
    const { KubernetesDriver } = await import('../runtime/kubernetes-driver.js');
    return new KubernetesDriver(kubernetesOptions(cfg, deps.logger));
  }
  if (cfg.DRIVER === 'swarm') {
    const { SwarmDriver } = await import('../runtime/swarm-driver.js');
    return new SwarmDriver({
      ...containerOptions(cfg),
      publishPorts: cfg.DOCKER_PUBLISH_PORTS,
      network: cfg.DOCKER_NETWORK,
      logger: deps.logger,
    });
  }
  if (cfg.DRIVER === 'docker') {
    // Loaded only when used: dockerode and its dependencies would weigh on every process-driver heap.
    const { DockerDriver } = await import('../runtime/docker-driver.js');
    return new DockerDriver({
      ...containerOptions(cfg),
      network: cfg.DOCKER_NETWORK,
      publishPorts: cfg.DOCKER_PUBLISH_PORTS,
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

/** DATAPLANE=haproxy: HAProxy on LB_PORT, programmed by the controller (loaded only when chosen). */
export async function haproxyDataplane(cfg: PlatformConfig, logger: Logger) {
  const { HaproxyDataplane } = await import('../dataplane/haproxy-dataplane.js');
  return new HaproxyDataplane({
    host: cfg.BIND_HOST,
    binary: cfg.HAPROXY_BIN,
    healthPath: cfg.AGENT_HEALTH_PATH,
    sessionAffinity: cfg.SESSION_AFFINITY,
    trustedProxies: cfg.TRUSTED_PROXIES.split(',')
      .map((a) => a.trim())
      .filter((a) => a !== ''),
    sessionTtlMs: cfg.SESSION_TTL_MS,
    queueTimeoutMs: cfg.QUEUE_TIMEOUT_MS,
    requestTimeoutMs: cfg.REQUEST_TIMEOUT_MS,
    clientBodyTimeoutMs: cfg.CLIENT_BODY_TIMEOUT_MS,
    maxBodyBytes: cfg.MAX_BODY_BYTES,
    compress: cfg.COMPRESSION === 'on',
    cacheBytes: cfg.RESPONSE_CACHE_BYTES,
    maxRetries: cfg.MAX_RETRIES,
    maxConcurrency: cfg.MAX_CONCURRENCY,
    queueMax: cfg.QUEUE_MAX,
    // The ids the controller gives out: up to MAX_INSTANCES live, and as many draining meanwhile.
    slots: 2 * cfg.MAX_INSTANCES + 2,
    healthIntervalMs: cfg.HEALTH_CHECK_INTERVAL,
    breakerFailures: cfg.BREAKER_FAILURES,
    breakerCount5xx: cfg.BREAKER_COUNT_5XX,
    drainTimeoutMs: cfg.DRAIN_TIMEOUT_MS,
    logger: logger.child({ part: 'haproxy' }),
  });
}

/** The runs of the load balancer port (Prefer: respond-async): in memory, and mirrored to `shared`. */
export function runService(cfg: PlatformConfig, logger: Logger, shared?: SharedRuns): RunService {
  return new RunService({
    ...(shared ? { shared } : {}),
    runTimeoutMs: cfg.RUN_TIMEOUT_MS,
    retentionMs: cfg.RUN_RETENTION_MS,
    maxBytes: cfg.RUN_LOG_MAX_BYTES,
    maxBodyBytes: cfg.MAX_BODY_BYTES,
    queueTimeoutMs: cfg.QUEUE_TIMEOUT_MS,
    multitask: cfg.SESSION_MULTITASK,
    logger: logger.child({ part: 'runs' }),
  });
}

/** Listens, turning "port taken" and "no such address" into a configuration error that names the option. */
export async function listenOn(server: Server, option: string, port: number, host: string): Promise<number> {
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

/** The URL a client on this machine reaches a port by. */
export function urlFor(cfg: PlatformConfig, port: number): string {
  const host = cfg.BIND_HOST === '0.0.0.0' ? '127.0.0.1' : cfg.BIND_HOST;
  return `http://${host}:${port}`;
}

/** This process's name in the shared state: NODE_ID, else <hostname>-<pid>. */
export function nodeId(cfg: PlatformConfig): string {
  return cfg.NODE_ID !== '' ? cfg.NODE_ID : `${hostname()}-${process.pid}`;
}

/** The control plane for a driver: the instance controller, or the replica controller for an engine. */
export function createPoolControl(
  cfg: PlatformConfig,
  driver: RuntimeDriver,
  logger: Logger,
  extra: { events?: EventLog; mayAct?: () => boolean } = {},
): PoolControl {
  if (driver.mode === 'replicas') {
    return new ReplicaController({
      driver,
      logger,
      minInstances: cfg.MIN_INSTANCES,
      maxInstances: cfg.MAX_INSTANCES,
      healthPath: cfg.AGENT_HEALTH_PATH,
      healthCheckTimeoutMs: cfg.HEALTH_CHECK_TIMEOUT_MS,
      ...(extra.events ? { events: extra.events } : {}),
      ...(extra.mayAct ? { mayAct: extra.mayAct } : {}),
    });
  }
  return new Controller({ ...controllerOptions(cfg, driver, logger), ...extra });
}

export function controllerOptions(
  cfg: PlatformConfig,
  driver: InstanceDriver,
  logger: Logger,
): ControllerOptions {
  return {
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
    dedicated: cfg.SESSION_MODE === 'dedicated',
    warmInstances: cfg.WARM_INSTANCES,
  };
}

/**
 * What runs only with `yggdrasil start` (router and controller in one process): SESSION_MODE=dedicated
 * (its session table) and DATAPLANE=haproxy (the controller programs the HAProxy beside its router).
 */
export function refuseEmbeddedOnly(cfg: PlatformConfig, role: string): void {
  if (cfg.DATAPLANE === 'haproxy') {
    throw configError(
      `DATAPLANE=haproxy with \`yggdrasil ${role}\`: the HAProxy data plane runs with \`yggdrasil start\` for now; set DATAPLANE=node for separate roles`,
    );
  }
  if (cfg.SESSION_MODE === 'dedicated') {
    throw configError(
      `SESSION_MODE=dedicated with \`yggdrasil ${role}\`: an instance per session runs with \`yggdrasil start\` (router and controller in one process); set SESSION_MODE=shared for separate roles`,
    );
  }
}

/** The router's options but its pool source (and what a role adds: sessions, breaker events). */
export function routerOptions(
  cfg: PlatformConfig,
  logger: Logger,
  keys: KeyRing,
): Omit<RouterOptions, 'pool'> {
  return {
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
    compressMinBytes: cfg.COMPRESSION === 'on' ? cfg.COMPRESSION_MIN_BYTES : undefined,
    responseCacheBytes: cfg.RESPONSE_CACHE_BYTES,
    trustedProxies: cfg.TRUSTED_PROXIES,
    logger: logger.child({ part: 'router' }),
    clients: {
      auth: cfg.CLIENT_AUTH,
      keys,
      rateRps: cfg.RATE_LIMIT_RPS,
      rateBurst: cfg.RATE_LIMIT_BURST,
      maxInflight: cfg.MAX_INFLIGHT_PER_CLIENT,
      maxSessions: cfg.MAX_SESSIONS_PER_CLIENT,
    },
  };
}

/** The autoscale loop's options but what it drives and reads. */
export function autoscaleOptions(
  cfg: PlatformConfig,
  cpuLimitCores: number,
): Omit<AutoscaleLoopOptions, 'target' | 'registry' | 'onError' | 'concurrency'> {
  return {
    minInstances: cfg.MIN_INSTANCES,
    maxInstances: cfg.MAX_INSTANCES,
    maxConcurrency: cfg.MAX_CONCURRENCY,
    targetUtilization: cfg.TARGET_UTILIZATION,
    targetCpu: cfg.TARGET_CPU,
    cpuLimitCores,
    stableWindowMs: cfg.STABLE_WINDOW_MS,
    panicWindowMs: cfg.PANIC_WINDOW_MS,
    scaleIntervalMs: cfg.SCALE_INTERVAL_MS,
    scaleToZeroGraceMs: cfg.SCALE_TO_ZERO_GRACE_MS,
  };
}

/**
 * The public port's anonymous view: how the pool is doing, none of its details (stderr, pids,
 * addresses, events): those need a read key there, or the controller port.
 */
export function publicSummary(
  s: Pick<ControllerStatus, 'readyInstances' | 'desiredInstances' | 'minInstances' | 'maxInstances'> & {
    instances: ReadonlyArray<{ state: string }>;
  },
  queue: { depth: number; max: number },
): Record<string, unknown> {
  const byState: Record<string, number> = {};
  for (const i of s.instances) byState[i.state] = (byState[i.state] ?? 0) + 1;
  return {
    readyInstances: s.readyInstances,
    desiredInstances: s.desiredInstances,
    minInstances: s.minInstances,
    maxInstances: s.maxInstances,
    instances: byState,
    queue,
  };
}
