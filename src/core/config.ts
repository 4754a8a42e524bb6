// The platform's configuration (controller, router, runtime): one table of options, read from the
// environment and an optional JSON file (YGG_CONFIG), validated once at start-up.
import { statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAddressList } from './address-list.js';
import { parseAllowedHosts } from './allowed-hosts.js';
import { parseEnvNames, readEnvFile } from './env-file.js';
import {
  bool,
  bytes,
  configError,
  int,
  num,
  oneOf,
  readConfigFile,
  resolveOptions,
  text,
  type ValuesOf,
} from './options.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

export const PLATFORM_OPTIONS = {
  NODE_ENV: oneOf(['development', 'production', 'staging', 'test'], 'development', 'Runtime environment.'),
  LOG_LEVEL: oneOf(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    'info',
    'Log level of the structured (pino) logs.',
  ),
  LOG_FORMAT: oneOf(
    ['auto', 'pretty', 'json'],
    'auto',
    'Log lines as one JSON object each (`json`) or as readable text (`pretty`); `auto` is pretty on a terminal.',
  ),
  LB_PORT: int(0, 65535, 8080, 'Port of the load balancer / router (0 picks a free port).'),
  CONTROLLER_PORT: int(0, 65535, 3000, 'Port of the controller API (0 picks a free port).'),
  BIND_HOST: text(
    '127.0.0.1',
    'Address both ports listen on (0.0.0.0 inside a container).',
    'an IP address or host name',
    /^[\w.:-]+$/,
  ),
  STATE_DIR: text(
    '',
    "Directory of yggdrasil's own files (the auth file). Empty = ~/.yggdrasil.",
    'a directory path',
  ),
  AUTH_FILE: text(
    '',
    'API keys (hashes only; written by `npm run add:auth`). Empty = <STATE_DIR>/auth.json.',
    'a file path',
  ),
  ALLOWED_HOSTS: text(
    '',
    'Host names the status page, its feed and the admin API answer to (names, *.suffixes, addresses, CIDR ranges; * = any). Empty = localhost names, loopback addresses and BIND_HOST.',
    'a comma list of host names, *.suffixes, addresses or CIDR ranges, or *',
  ),
  AUTH_REQUIRED: oneOf(
    ['auto', 'always', 'never'],
    'auto',
    'Whether read routes (status, metrics, the page and its feed) need a key: `auto` once any key exists. Admin routes always do.',
  ),
  DATAPLANE: oneOf(
    ['node', 'haproxy'],
    'node',
    "What serves LB_PORT: `node` = the Node router (every feature); `haproxy` = HAProxy (Debian's package) programmed at run time by the controller, the Node router behind it for the platform's routes, runs and scale from zero (README: Data planes).",
  ),
  HAPROXY_BIN: text('haproxy', 'The haproxy binary DATAPLANE=haproxy runs.'),
  DRIVER: oneOf(
    ['process', 'docker', 'swarm', 'kubernetes'],
    'process',
    "Runtime that runs the instances: `process` = local processes, `docker` = containers on Docker Engine, `swarm` = a replicated service of Docker Swarm mode, `kubernetes` = a Deployment (the cluster of KUBECONFIG, or the pod's own).",
  ),
  AGENT_COMMAND: text(
    '',
    'Command that starts your own agent (run by /bin/sh; gets PORT and AGENT_ID). Empty = the reference agent.',
  ),
  AGENT_CWD: text(
    '',
    'Working directory of AGENT_COMMAND. Empty = the directory yggdrasil was started in.',
    'a directory path',
  ),
  AGENT_ENV: text(
    '',
    "Variables of yggdrasil's own environment that the agents get (comma list); nothing else of it reaches them.",
    'a comma list of variable names',
  ),
  AGENT_ENV_FILE: text(
    '',
    'A file of KEY=VALUE lines (as docker --env-file) that every agent gets. Empty = none.',
    'a readable file path',
  ),
  AGENT_HEALTH_PATH: text(
    '/health',
    'Path the health checks GET on each instance (a 2xx answer = healthy).',
    'a path starting with /',
    /^\/[^\s#]*$/,
  ),
  AGENT_IMAGE: text('yggdrasil/agent:latest', 'Image of the agent (DRIVER=docker).'),
  DOCKER_NETWORK: text(
    'yggdrasil',
    'User-defined bridge network the agent containers join (DRIVER=docker).',
    'a network name',
    /^[\w.-]+$/,
  ),
  DOCKER_OWNER: text(
    'yggdrasil',
    'Value of the io.yggdrasil.owner label and container name prefix (DRIVER=docker); the pool label and <owner>-agents names with DRIVER=swarm and kubernetes (kubernetes: a lower-case letter first, then lower-case letters, digits and -, at most 49).',
    'a name',
    /^[a-z0-9][\w.-]*$/,
  ),
  KUBE_NAMESPACE: text(
    'default',
    "Namespace of the agents' Deployment and Service, and of the leader Lease (DRIVER=kubernetes).",
    'a DNS label',
    /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/,
  ),
  KUBECONFIG: text(
    '',
    'kubeconfig file of the cluster (DRIVER=kubernetes). Empty = ~/.kube/config, or the service account of the pod the controller runs in; when none is there the start stops (exit 2) naming KUBECONFIG.',
    'a file path',
  ),
  DOCKER_PUBLISH_PORTS: bool(
    true,
    'Publish agent ports on 127.0.0.1 (router on the host); false = reach them by name on DOCKER_NETWORK.',
  ),
  AGENT_CPU_LIMIT: num(0.01, 64, 0.5, 'CPU limit of one agent container, in cores (DRIVER=docker).'),
  AGENT_MEMORY_LIMIT: bytes(
    6 * 1024 * 1024,
    1024 ** 4,
    512 * 1024 * 1024,
    'Memory limit of one agent container (DRIVER=docker).',
  ),
  AGENT_CPU_RESERVATION: num(
    0.01,
    64,
    0.25,
    'CPU reserved for one agent container, in cores (as CPU shares; DRIVER=docker).',
  ),
  AGENT_MEMORY_RESERVATION: bytes(
    0,
    1024 ** 4,
    256 * 1024 * 1024,
    'Memory reserved for one agent container (soft limit; DRIVER=docker).',
  ),
  MIN_INSTANCES: int(0, 1000, 1, 'Fewest instances kept running.'),
  MAX_INSTANCES: int(1, 1000, 10, 'Most instances ever running.'),
  WARM_INSTANCES: int(
    0,
    1000,
    0,
    'Healthy idle instances kept ready beyond what the load needs (they count toward MAX_INSTANCES): a new dedicated session, or a burst, takes one instead of waiting for a cold start.',
  ),
  MAX_CONCURRENCY: int(1, 10000, 80, 'Most requests in flight at one instance.'),
  HEALTH_CHECK_INTERVAL: int(
    100,
    HOUR,
    30 * SECOND,
    'Milliseconds between health checks of a ready instance.',
  ),
  HEALTH_CHECK_TIMEOUT_MS: int(
    10,
    MINUTE,
    2 * SECOND,
    'A health check slower than this fails; after one failure the next checks come every second.',
  ),
  HEALTH_FAILURE_THRESHOLD: int(
    1,
    100,
    3,
    'Consecutive failed health checks before an instance is replaced.',
  ),
  STARTUP_TIMEOUT_MS: int(
    100,
    HOUR,
    30 * SECOND,
    'An instance not healthy this long after start is replaced.',
  ),
  STARTUP_PROBE_INTERVAL_MS: int(
    10,
    MINUTE,
    50,
    'Milliseconds between health checks while an instance starts.',
  ),
  RESTART_BACKOFF_MS: int(
    10,
    HOUR,
    SECOND,
    'Delay before the second restart of an instance that keeps crashing (doubles per crash); the first is at once.',
  ),
  RESTART_BACKOFF_MAX_MS: int(
    10,
    HOUR,
    MINUTE,
    'Longest delay between restarts of a crash-looping instance.',
  ),
  DRAIN_TIMEOUT_MS: int(
    0,
    HOUR,
    30 * SECOND,
    'How long a stopping instance may finish its in-flight requests.',
  ),
  STOP_GRACE_MS: int(0, HOUR, 10 * SECOND, 'Time between SIGTERM and SIGKILL when an instance is stopped.'),
  MAX_BODY_BYTES: int(1, 1024 * 1024 * 1024, 10 * 1024 * 1024, 'Largest request body accepted (413 above).'),
  CLIENT_BODY_TIMEOUT_MS: int(
    1,
    HOUR,
    30 * SECOND,
    'Longest time a client may take to send its whole request body (408 after).',
  ),
  REQUEST_TIMEOUT_MS: int(
    1,
    HOUR,
    5 * MINUTE,
    "Longest wait for an instance's response headers, and between two chunks of its body (504 after).",
  ),
  QUEUE_MAX: int(
    0,
    1_000_000,
    1000,
    'Most requests waiting for a free slot when every instance is full (503 above).',
  ),
  QUEUE_TIMEOUT_MS: int(1, HOUR, 10 * SECOND, 'Longest wait in the queue before a 503 with Retry-After.'),
  COMPRESSION: oneOf(
    ['off', 'on'],
    'off',
    '`on`: the router compresses answers of a compressible type (text, JSON, XML, JavaScript, SVG) with a Content-Length of at least COMPRESSION_MIN_BYTES, in brotli or gzip as the client prefers; never server-sent events or an answer the agent encoded. With DATAPLANE=haproxy, HAProxy gzips them (README: Data planes).',
  ),
  COMPRESSION_MIN_BYTES: bytes(
    0,
    1024 ** 3,
    1024,
    'COMPRESSION=on: smaller answers are sent as they are (compressing them costs more than it saves).',
  ),
  RESPONSE_CACHE_BYTES: bytes(
    0,
    16 * 1024 ** 3,
    0,
    "Room of the router's in-memory cache of GET answers an agent marks `Cache-Control: public` with max-age (Vary honoured; never a request with Authorization or a session, never an answer with Set-Cookie); an answer above an eighth of it is not kept. 0 = no cache.",
  ),
  SESSION_AFFINITY: bool(true, 'Keep a session (X-Session-Id header or ygg_session cookie) on one instance.'),
  SESSION_TTL_MS: int(1000, 7 * 24 * HOUR, 30 * MINUTE, 'A session idle this long is forgotten.'),
  SESSION_MODE: oneOf(
    ['shared', 'dedicated'],
    'shared',
    '`shared` = sessions share the pool (sticky to an instance); `dedicated` = every session gets an instance of its own, which only it can reach, paused when idle (`yggdrasil start` only).',
  ),
  SESSION_IDLE_PAUSE_MS: int(
    0,
    7 * 24 * HOUR,
    30 * SECOND,
    'SESSION_MODE=dedicated: a session idle this long has its instance paused (no CPU, memory kept); its next request resumes it. 0 = never.',
  ),
  SESSION_IDLE_DELETE_MS: int(
    0,
    7 * 24 * HOUR,
    30 * MINUTE,
    'SESSION_MODE=dedicated: a session idle this long ends and its instance stops; its next request gets 410 YGG_ERR_SESSION_ENDED. 0 = never.',
  ),
  RUN_TIMEOUT_MS: int(
    1000,
    24 * HOUR,
    HOUR,
    'Longest a run (a request sent with Prefer: respond-async) may take; REQUEST_TIMEOUT_MS does not bound it.',
  ),
  SESSION_MULTITASK: oneOf(
    ['enqueue', 'reject', 'interrupt'],
    'enqueue',
    'A request of a session while one of its runs is active: `enqueue` = it waits its turn (a plain request at most QUEUE_TIMEOUT_MS, then 409 YGG_ERR_RUN_ACTIVE), `reject` = 409 YGG_ERR_RUN_ACTIVE, `interrupt` = the active runs are cancelled and it goes ahead.',
  ),
  RUN_RETENTION_MS: int(1000, 7 * 24 * HOUR, HOUR, 'How long a finished run stays readable at /runs/{id}.'),
  RUN_LOG_MAX_BYTES: bytes(
    1024 * 1024,
    16 * 1024 ** 3,
    64 * 1024 * 1024,
    'Room for the answers of all runs together; finished runs are evicted oldest first, and with only active ones left a run is aborted (YGG_ERR_RUN_LOG_FULL).',
  ),
  MAX_RETRIES: int(
    0,
    10,
    2,
    'Retries elsewhere of a request that provably never reached an instance (connection refused); never after.',
  ),
  CLIENT_AUTH: oneOf(
    ['none', 'keys'],
    'none',
    "Proxied traffic needs a client key (`keys`); the key's name reaches the agent as X-Yggdrasil-Tenant.",
  ),
  RATE_LIMIT_RPS: int(
    0,
    1_000_000,
    0,
    'Requests per second one client (tenant, else address) may send; 0 = no limit.',
  ),
  RATE_LIMIT_BURST: int(0, 1_000_000, 0, 'Requests a client may send above RATE_LIMIT_RPS in a burst.'),
  MAX_INFLIGHT_PER_CLIENT: int(
    0,
    1_000_000,
    0,
    'Most requests one client may have in flight at once; 0 = no limit.',
  ),
  MAX_SESSIONS_PER_CLIENT: int(0, 1_000_000, 0, 'Most sessions one client may use at once; 0 = no limit.'),
  TRUSTED_PROXIES: text(
    '',
    'Proxies in front whose X-Forwarded-* and Forwarded headers are kept (comma list of addresses or CIDR ranges).',
    'a comma list of IP addresses or CIDR ranges (e.g. 127.0.0.1,10.0.0.0/8,::1)',
  ),
  BREAKER_FAILURES: int(
    1,
    1000,
    5,
    'Consecutive gateway failures of an instance (refused or reset connections, timeouts, 502/503/504) that open its breaker.',
  ),
  BREAKER_COUNT_5XX: bool(
    false,
    'Also count every other 5xx answer of an agent as a breaker failure (default: gateway failures only).',
  ),
  OUTLIER_STALL_MS: int(
    0,
    HOUR,
    2 * SECOND,
    'Eject an instance whose requests wait this long for response headers while it answers none (0 = off).',
  ),
  BREAKER_RESET_MS: int(
    10,
    HOUR,
    30 * SECOND,
    'First ejection time of an open breaker (doubles on repeated ejections).',
  ),
  REDIS_URL: text(
    '',
    'Redis that `yggdrasil router` and `yggdrasil controller` share the pool, sessions, load and leadership through (redis://host:port/db). Empty = none (`start` never needs it).',
    'a redis:// or rediss:// URL',
    /^(rediss?:\/\/\S+)?$/,
  ),
  REDIS_PREFIX: text(
    'ygg',
    'Prefix of every Redis key and channel of this pool (two pools on one Redis need two prefixes).',
    'letters, digits, and . _ : -',
    /^[\w.:-]+$/,
  ),
  NODE_ID: text(
    '',
    'Name of this router or controller in the shared state (leadership.holder). Empty = <hostname>-<pid>.',
    'letters, digits, and . _ : -',
    /^[\w.:-]*$/,
  ),
  ROUTER_HEARTBEAT_MS: int(
    50,
    MINUTE,
    SECOND,
    'How often each router reports its load and rereads the pool (a router silent for 3 heartbeats is gone).',
  ),
  LEADER_ELECTION: oneOf(
    ['auto', 'redis', 'kubernetes'],
    'auto',
    'Where the controllers elect their leader: `redis` (a lease key), `kubernetes` (a coordination.k8s.io Lease <DOCKER_OWNER>-controller in KUBE_NAMESPACE; the fencing term still comes from Redis), `auto` = kubernetes with DRIVER=kubernetes, else redis.',
  ),
  LEADER_LEASE_MS: int(
    300,
    10 * MINUTE,
    5 * SECOND,
    "The leading controller's lease; a standby takes over within 2 leases of its loss.",
  ),
  TARGET_UTILIZATION: num(0.01, 1, 0.7, 'Share of MAX_CONCURRENCY the autoscaler aims for per instance.'),
  TARGET_CPU: num(
    0,
    1,
    0.7,
    'CPU use per instance (share of its CPU limit) the autoscaler aims for; 0 turns it off.',
  ),
  STABLE_WINDOW_MS: int(1000, HOUR, MINUTE, 'Averaging window of the autoscaler (and how long panic lasts).'),
  PANIC_WINDOW_MS: int(100, HOUR, 6 * SECOND, 'Short window that detects bursts (panic mode).'),
  SCALE_INTERVAL_MS: int(100, MINUTE, 2 * SECOND, 'Time between autoscaler decisions.'),
  SCALE_TO_ZERO_GRACE_MS: int(
    0,
    HOUR,
    30 * SECOND,
    'With MIN_INSTANCES=0, idle time before the last instance stops.',
  ),
} as const;

export type PlatformConfig = ValuesOf<typeof PLATFORM_OPTIONS>;

/** Loads and cross-checks the platform configuration; throws YGG_ERR_CONFIG on the first bad value. */
export function loadPlatformConfig(
  env: NodeJS.ProcessEnv = process.env,
  configPath: string | undefined = env.YGG_CONFIG,
): PlatformConfig {
  const file = configPath ? readConfigFile(configPath, PLATFORM_OPTIONS) : {};
  const cfg = resolveOptions(PLATFORM_OPTIONS, env, file);
  // Rules between options: [broken, the one line that says what and why].
  const rules: Array<[boolean, string]> = [
    [
      cfg.MIN_INSTANCES > cfg.MAX_INSTANCES,
      `MIN_INSTANCES=${cfg.MIN_INSTANCES} > MAX_INSTANCES=${cfg.MAX_INSTANCES}: MIN_INSTANCES must be at most MAX_INSTANCES`,
    ],
    [
      cfg.LB_PORT !== 0 && cfg.LB_PORT === cfg.CONTROLLER_PORT,
      `LB_PORT=${cfg.LB_PORT} = CONTROLLER_PORT=${cfg.CONTROLLER_PORT}: the two ports must differ`,
    ],
    [
      cfg.RESTART_BACKOFF_MS > cfg.RESTART_BACKOFF_MAX_MS,
      `RESTART_BACKOFF_MS=${cfg.RESTART_BACKOFF_MS} > RESTART_BACKOFF_MAX_MS=${cfg.RESTART_BACKOFF_MAX_MS}: the first delay must not exceed the longest`,
    ],
    [
      cfg.AGENT_MEMORY_RESERVATION > cfg.AGENT_MEMORY_LIMIT,
      `AGENT_MEMORY_RESERVATION=${cfg.AGENT_MEMORY_RESERVATION} > AGENT_MEMORY_LIMIT=${cfg.AGENT_MEMORY_LIMIT}: the reservation must fit in the limit`,
    ],
    [
      cfg.AGENT_CWD !== '' && !isDirectory(cfg.AGENT_CWD),
      `AGENT_CWD=${cfg.AGENT_CWD} is not a directory: give the directory AGENT_COMMAND runs in`,
    ],
    [
      cfg.DATAPLANE === 'haproxy' &&
        (cfg.CLIENT_AUTH !== 'none' ||
          cfg.RATE_LIMIT_RPS > 0 ||
          cfg.MAX_INFLIGHT_PER_CLIENT > 0 ||
          cfg.MAX_SESSIONS_PER_CLIENT > 0),
      `DATAPLANE=haproxy with a per-client rule (CLIENT_AUTH=${cfg.CLIENT_AUTH}, RATE_LIMIT_RPS=${cfg.RATE_LIMIT_RPS}, MAX_INFLIGHT_PER_CLIENT=${cfg.MAX_INFLIGHT_PER_CLIENT}, MAX_SESSIONS_PER_CLIENT=${cfg.MAX_SESSIONS_PER_CLIENT}): the HAProxy data plane does not apply them; use DATAPLANE=node (README: Data planes)`,
    ],
    [
      cfg.DATAPLANE === 'haproxy' && cfg.SESSION_MODE === 'dedicated',
      'DATAPLANE=haproxy with SESSION_MODE=dedicated: an instance per session needs the Node router (DATAPLANE=node)',
    ],
    [
      cfg.WARM_INSTANCES > cfg.MAX_INSTANCES,
      `WARM_INSTANCES=${cfg.WARM_INSTANCES} > MAX_INSTANCES=${cfg.MAX_INSTANCES}: warm instances count toward MAX_INSTANCES`,
    ],
    [
      cfg.SESSION_IDLE_PAUSE_MS > 0 &&
        cfg.SESSION_IDLE_DELETE_MS > 0 &&
        cfg.SESSION_IDLE_PAUSE_MS >= cfg.SESSION_IDLE_DELETE_MS,
      `SESSION_IDLE_PAUSE_MS=${cfg.SESSION_IDLE_PAUSE_MS} >= SESSION_IDLE_DELETE_MS=${cfg.SESSION_IDLE_DELETE_MS}: an idle session is paused before it ends (or set SESSION_IDLE_PAUSE_MS=0)`,
    ],
    [
      cfg.SESSION_MODE === 'dedicated' && (cfg.DRIVER === 'swarm' || cfg.DRIVER === 'kubernetes'),
      `SESSION_MODE=dedicated with DRIVER=${cfg.DRIVER}: an instance per session needs a driver that starts and pauses each instance (DRIVER=process or docker)`,
    ],
    [
      cfg.WARM_INSTANCES > 0 && (cfg.DRIVER === 'swarm' || cfg.DRIVER === 'kubernetes'),
      `WARM_INSTANCES=${cfg.WARM_INSTANCES} with DRIVER=${cfg.DRIVER}: the warm pool needs DRIVER=process or docker (an engine's replicas: raise MIN_INSTANCES)`,
    ],
    [
      // The Deployment is <owner>-agents and the Service too: a DNS-1035 label (a letter first, at most 63).
      cfg.DRIVER === 'kubernetes' && !/^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$/.test(cfg.DOCKER_OWNER),
      `DOCKER_OWNER=${cfg.DOCKER_OWNER} cannot name a Kubernetes Deployment and Service (<owner>-agents): with DRIVER=kubernetes use a lower-case letter, then lower-case letters, digits and - (at most 49, not ending in -)`,
    ],
    [
      cfg.PANIC_WINDOW_MS > cfg.STABLE_WINDOW_MS,
      `PANIC_WINDOW_MS=${cfg.PANIC_WINDOW_MS} > STABLE_WINDOW_MS=${cfg.STABLE_WINDOW_MS}: the panic window must be the shorter one`,
    ],
  ];
  for (const [broken, message] of rules) if (broken) throw configError(message);
  try {
    parseAllowedHosts(cfg.ALLOWED_HOSTS, cfg.BIND_HOST);
  } catch (err) {
    throw configError(
      `ALLOWED_HOSTS=${JSON.stringify(cfg.ALLOWED_HOSTS)} is not allowed: ${(err as Error).message}; expected ${PLATFORM_OPTIONS.ALLOWED_HOSTS.allowed}`,
    );
  }
  try {
    parseEnvNames(cfg.AGENT_ENV);
  } catch (err) {
    throw configError(
      `AGENT_ENV=${JSON.stringify(cfg.AGENT_ENV)} is not allowed: ${(err as Error).message}; expected ${PLATFORM_OPTIONS.AGENT_ENV.allowed}`,
    );
  }
  if (cfg.AGENT_ENV_FILE !== '') {
    try {
      readEnvFile(cfg.AGENT_ENV_FILE);
    } catch (err) {
      throw configError(`AGENT_ENV_FILE=${cfg.AGENT_ENV_FILE}: ${(err as Error).message}`);
    }
  }
  try {
    parseAddressList(cfg.TRUSTED_PROXIES);
  } catch (err) {
    throw configError(
      `TRUSTED_PROXIES=${JSON.stringify(cfg.TRUSTED_PROXIES)} is not allowed: ${(err as Error).message}; expected ${PLATFORM_OPTIONS.TRUSTED_PROXIES.allowed}`,
    );
  }
  return cfg;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Where the API keys are: AUTH_FILE, else <STATE_DIR>/auth.json, else ~/.yggdrasil/auth.json. */
export function authFilePath(cfg: Pick<PlatformConfig, 'AUTH_FILE' | 'STATE_DIR'>): string {
  if (cfg.AUTH_FILE !== '') return resolve(cfg.AUTH_FILE);
  return join(cfg.STATE_DIR !== '' ? resolve(cfg.STATE_DIR) : join(homedir(), '.yggdrasil'), 'auth.json');
}
