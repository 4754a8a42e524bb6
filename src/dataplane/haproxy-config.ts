// Pure: HAProxy's configuration for DATAPLANE=haproxy (no I/O). HAProxy takes the load balancer port.
// The pool's servers are slots agent-1..agent-N declared by a server-template, in maintenance, with no
// address: the controller gives a slot its instance's address and sets it ready at run time through the
// Runtime API (haproxy-runtime.ts), and puts it back in maintenance to drain it; an id past the slots
// is added with `add server`. Slots, not `add server` for all: on HAProxy 2.6 a server added at run
// time never reuses a connection to its instance (show stat: connect = stot, reuse = 0), which halved
// the requests per second (9.2k against 25.8k through a slot, same agent). What HAProxy cannot do the Node router does, on a loopback port
// behind it (the activator backend): the platform's own routes (/health, /status, /metrics, /runs/…,
// /agent/…, the live feed), runs (Prefer: respond-async), and every request while no instance is
// ready (scale from zero: it holds them while one starts, as Knative's activator does).
import type { ErrorCode } from '../core/errors.js';

export interface HaproxyConfigInput {
  /**
   * The load balancer port: an address to bind, or a listening socket HAProxy inherits as this fd
   * (the Node router's while it served the port: both accept until the router lets go, no gap).
   */
  bind: { host: string; port: number } | { fd: number };
  /** The Runtime API's unix socket. */
  socketPath: string;
  /** The Node router's internal port (loopback). */
  activatorPort: number;
  /** HAProxy's own Prometheus exporter, on loopback only (scraped through /sd/agents). */
  metricsPort: number;
  /** Where the error files are (errorFiles() writes them). */
  errorDir: string;
  healthPath: string;
  /** SESSION_AFFINITY: the stick table on X-Session-Id and ygg_session. @default true */
  sessionAffinity?: boolean;
  /** TRUSTED_PROXIES (addresses, CIDR ranges): their X-Forwarded-For/-Proto/-Host are kept, XFF extended. */
  trustedProxies?: readonly string[];
  sessionTtlMs: number;
  queueTimeoutMs: number;
  requestTimeoutMs: number;
  clientBodyTimeoutMs: number;
  /** MAX_BODY_BYTES: a declared Content-Length above it is refused with 413 before the body is read. */
  maxBodyBytes: number;
  /** COMPRESSION=on: HAProxy gzips compressible answers (2.6 has no brotli and no minimum size). */
  compress?: boolean;
  /** RESPONSE_CACHE_BYTES (0 or undefined = off): HAProxy's own cache, rounded up to whole MiB. */
  cacheBytes?: number;
  maxRetries: number;
  /** DRAIN_TIMEOUT_MS: how long a stopping HAProxy lets open requests finish (hard-stop-after). */
  drainTimeoutMs: number;
  /** Slots agent-1..agent-<slots> (the ids the controller gives out: up to MAX_INSTANCES and those draining). */
  slots: number;
  server: ServerOptions;
}

export interface ServerOptions {
  maxConcurrency: number;
  queueMax: number;
  healthIntervalMs: number;
  failures: number;
  /** BREAKER_COUNT_5XX: a 5xx the instance answers counts as a failure (layer 7), not only gateway errors. */
  count5xx?: boolean;
}

function bindAddress(b: HaproxyConfigInput['bind']): string {
  if ('fd' in b) return `fd@${b.fd}`;
  return `${b.host.includes(':') ? `[${b.host}]` : b.host}:${b.port}`;
}

/** What every server has: the concurrency limit, the queue bound, health checks and ejection. */
export function serverOptions(o: ServerOptions): string {
  return [
    `maxconn ${o.maxConcurrency}`,
    `maxqueue ${o.queueMax}`,
    `check inter ${Math.max(100, o.healthIntervalMs)} fall 3 rise 1`,
    // Ejection, as the Node router's breaker: connection failures (layer 4), and the instance's own 5xx
    // answers only with BREAKER_COUNT_5XX (layer 7).
    `observe ${o.count5xx ? 'layer7' : 'layer4'} error-limit ${Math.max(1, o.failures)} on-error mark-down`,
  ].join(' ');
}

const seconds = (ms: number) => `${Math.max(1, Math.ceil(ms))}ms`;

export function renderHaproxyConfig(i: HaproxyConfigInput): string {
  const trusted = (i.trustedProxies ?? []).length > 0;
  const unlessTrusted = (header: string) =>
    trusted ? ` unless trusted_proxy { req.hdr(${header}) -m found }` : '';
  return `# Written by Yggdrasil (DATAPLANE=haproxy); servers are added at run time through the Runtime API.
global
  stats socket ${i.socketPath} mode 600 level admin
  nbthread 1
  hard-stop-after ${seconds(i.drainTimeoutMs)}

defaults
  mode http
  option http-keep-alive
  http-reuse safe
  timeout connect 5s
  timeout client 65s
  timeout http-request ${seconds(i.clientBodyTimeoutMs)}
  timeout server ${seconds(i.requestTimeoutMs)}
  timeout queue ${seconds(i.queueTimeoutMs)}
  timeout tunnel 1h
  # Every answer HAProxy makes itself (the frontend's rules, its parser, a queue or server that
  # failed, in either backend): JSON with a stable code, as the router's.
${[...EDGE_ERRORS, ...ERRORS].map((e) => `  errorfile ${e.status} ${i.errorDir}/${e.status}.http`).join('\n')}
${i.cacheBytes ? cacheSection(i.cacheBytes) : ''}
frontend lb
  bind ${bindAddress(i.bind)}
  # The edge, as the Node router's (edge.ts): OPTIONS * is answered here; CONNECT, the asterisk form
  # otherwise, an absolute form naming another authority than Host and HTTP/1.0 with a chunked body
  # get 400, a declared body over MAX_BODY_BYTES 413; HAProxy's own parse refusals get the same JSON.
  http-request return status 200 hdr allow "${ALLOW}" if { method OPTIONS } { url * }
  http-request deny deny_status 400 if { method CONNECT } || !{ url_beg / } !{ url_beg -i http:// https:// }
  http-request set-var(txn.host) req.hdr(host)
  http-request deny deny_status 400 if { url_beg -i http:// https:// } !{ url,field(3,/),strcmp(txn.host) eq 0 }
  http-request deny deny_status 400 if { req.ver 1.0 } { req.hdr(transfer-encoding) -m found }
  http-request deny deny_status 413 if { req.hdr_val(content-length) gt ${i.maxBodyBytes} }
  http-request set-uri %[pathq] if { url_beg -i http:// https:// }
  # Host is passed as sent; X-Forwarded-* are set here, over any client value (as the Node router
  # does), but a TRUSTED_PROXIES peer's are kept (and its X-Forwarded-For extended with its address).
${
  trusted
    ? `  acl trusted_proxy src ${(i.trustedProxies ?? []).join(' ')}
`
    : ''
}  http-request del-header X-Forwarded-For${trusted ? ' unless trusted_proxy' : ''}
  http-request del-header Forwarded
  http-request del-header X-Yggdrasil-Tenant
  option forwardfor
  http-request set-header X-Forwarded-Proto http${unlessTrusted('x-forwarded-proto')}
  http-request set-header X-Forwarded-Host %[req.hdr(host)]${unlessTrusted('x-forwarded-host')}
  acl platform path /health /status /metrics
  acl platform path_beg /runs/ /agent/ /socket.io/
  acl async req.hdr(prefer) -m sub respond-async
  acl none_ready nbsrv(agents) eq 0
  use_backend activator if platform || async || none_ready
  default_backend agents

backend agents
  balance leastconn
  option httpchk GET ${i.healthPath}
${
  i.sessionAffinity === false
    ? '  # SESSION_AFFINITY=false: sessions are not pinned.\n'
    : `  # Session affinity: X-Session-Id, else the ygg_session cookie.
  stick-table type string len 256 size 1m expire ${seconds(i.sessionTtlMs)}
  stick on req.hdr(x-session-id)
  stick on req.cook(ygg_session)
`
}  # Retried elsewhere only when the connection failed (nothing reached an instance).
  retries ${i.maxRetries}
  option redispatch
  retry-on conn-failure
${i.cacheBytes ? CACHE_RULES : ''}  http-response set-header X-Yggdrasil-Instance %s unless { res.cache_hit }
${i.compress ? `  # COMPRESSION=on: the Node router's types; never server-sent events (not listed).\n  compression algo gzip\n  compression type ${COMPRESSIBLE_TYPES}\n` : ''}  server-template agent- 1-${i.slots} 127.0.0.1:1 disabled ${serverOptions(i.server)}

backend activator
  server router 127.0.0.1:${i.activatorPort}

frontend metrics
  bind 127.0.0.1:${i.metricsPort}
  http-request use-service prometheus-exporter if { path /metrics }
  http-request return status 404
`;
}

const MIB = 1024 * 1024;

/**
 * RESPONSE_CACHE_BYTES as HAProxy's cache: whole MiB (its unit, 1 to 4095), an entry at most an eighth
 * of it as the Node router's, kept as long as the answer says (`max-age` here is only a ceiling), and
 * `Vary` honoured (HAProxy manages Accept-Encoding, Referer and Origin; an answer varying on any other
 * header is not stored).
 */
function cacheSection(bytes: number): string {
  const mib = Math.min(4095, Math.max(1, Math.ceil(bytes / MIB)));
  return `
cache answers
  total-max-size ${mib}
  max-object-size ${Math.floor(Math.min(bytes, mib * MIB) / 8)}
  max-age 86400
  process-vary on
`;
}

/**
 * The cache policy of cache-policy.ts, as far as HAProxy expresses it: only GET without Authorization,
 * X-Session-Id or the ygg_session cookie uses the cache or fills it (HAProxy itself also refuses
 * Authorization, a status other than 200, private/no-store/no-cache); only an answer marked public and
 * without Set-Cookie is stored. Hits say so in X-Yggdrasil-Cache and name no instance.
 */
const CACHE_RULES = `  http-request set-var(txn.cacheable) bool(true) if METH_GET !{ req.hdr(authorization) -m found } !{ req.hdr(x-session-id) -m found } !{ req.cook(ygg_session) -m found } !{ req.hdr(cache-control) -m sub -i no-store }
  http-request cache-use answers if { var(txn.cacheable) -m bool }
  http-response cache-store answers if { res.hdr(cache-control) -m sub -i public } !{ res.hdr(set-cookie) -m found }
  http-response set-header X-Yggdrasil-Cache hit if { res.cache_hit }
  http-response set-header X-Yggdrasil-Cache miss if !{ res.cache_hit } { var(txn.cacheable) -m bool }
`;

/** The types COMPRESSION=on compresses (as compression.ts, which also takes any text/* but SSE and +json/+xml). */
const COMPRESSIBLE_TYPES =
  'text/plain text/html text/css text/csv text/markdown text/xml application/json application/problem+json application/javascript application/xml image/svg+xml application/wasm';

/** What OPTIONS * answers (the Node router's list). */
const ALLOW = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';

interface ErrorAnswer {
  status: number;
  reason: string;
  code: ErrorCode;
  message: string;
  retryAfter?: number;
}

const ERRORS: ErrorAnswer[] = [
  {
    status: 503,
    reason: 'Service Unavailable',
    code: 'YGG_ERR_CAPACITY',
    message: 'every instance is at MAX_CONCURRENCY and the wait exceeded QUEUE_TIMEOUT_MS',
    retryAfter: 1,
  },
  {
    status: 504,
    reason: 'Gateway Timeout',
    code: 'YGG_ERR_TIMEOUT',
    message: 'the instance did not answer within REQUEST_TIMEOUT_MS',
  },
  {
    status: 502,
    reason: 'Bad Gateway',
    code: 'YGG_ERR_UPSTREAM',
    message: 'the instance failed before sending a complete response',
  },
];

/** What the frontend refuses itself (before a backend is chosen). */
const EDGE_ERRORS: ErrorAnswer[] = [
  {
    status: 400,
    reason: 'Bad Request',
    code: 'YGG_ERR_BAD_REQUEST',
    message:
      'the request is malformed or not one the load balancer serves (CONNECT, asterisk form, another authority, HTTP/1.0 chunked)',
  },
  {
    status: 408,
    reason: 'Request Timeout',
    code: 'YGG_ERR_CLIENT_TIMEOUT',
    message: 'the request head did not arrive within CLIENT_BODY_TIMEOUT_MS',
  },
  {
    status: 413,
    reason: 'Payload Too Large',
    code: 'YGG_ERR_BODY_TOO_LARGE',
    message: 'the request body is larger than MAX_BODY_BYTES',
  },
];

/** The error files HAProxy answers with: the same JSON body (and Retry-After) as the Node router. */
export function errorFiles(): Array<{ name: string; content: string }> {
  return [...EDGE_ERRORS, ...ERRORS].map((e) => {
    const body = `${JSON.stringify({ error: { code: e.code, message: e.message } })}\n`;
    const head = [
      `HTTP/1.1 ${e.status} ${e.reason}`,
      'content-type: application/json; charset=utf-8',
      `content-length: ${Buffer.byteLength(body)}`,
      'cache-control: no-store',
      ...(e.retryAfter ? [`retry-after: ${e.retryAfter}`] : []),
      'connection: close',
    ];
    return { name: `${e.status}.http`, content: `${head.join('\r\n')}\r\n\r\n${body}` };
  });
}

/** The slot number of an instance id (agent-<n>), when the template declares it; else undefined. */
export function slotOf(id: string, slots: number): number | undefined {
  const m = /^agent-(\d+)$/.exec(id);
  const n = m ? Number(m[1]) : Number.NaN;
  return Number.isInteger(n) && n >= 1 && n <= slots ? n : undefined;
}

/** The Runtime API commands that put an instance in its slot and let it take requests. */
export function fillSlotCommands(id: string, endpoint: { host: string; port: number }): string[] {
  return [
    `set server agents/${id} addr ${endpoint.host} port ${endpoint.port}`,
    `set server agents/${id} state ready`,
  ];
}

/** The Runtime API command that adds an instance past the slots as a server (it starts in maintenance). */
export function addServerCommand(
  id: string,
  endpoint: { host: string; port: number },
  opts: ServerOptions,
): string {
  const addr = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return `add server agents/${id} ${addr}:${endpoint.port} ${serverOptions(opts)}`;
}

/** One row of `show stat` (CSV) that matters here. */
export interface ServerStat {
  backend: string;
  server: string;
  /** Requests queued (for this server, or the backend's own queue on its BACKEND row). */
  queued: number;
  /** Sessions in flight. */
  current: number;
  status: string;
}

export function parseShowStat(csv: string): ServerStat[] {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = lines[0]?.replace(/^# /, '').split(',') ?? [];
  const col = (name: string) => header.indexOf(name);
  const [px, sv, qcur, scur, status] = ['pxname', 'svname', 'qcur', 'scur', 'status'].map(col) as [
    number,
    number,
    number,
    number,
    number,
  ];
  return lines.slice(1).map((l) => {
    const f = l.split(',');
    return {
      backend: f[px] ?? '',
      server: f[sv] ?? '',
      queued: Number(f[qcur] || 0),
      current: Number(f[scur] || 0),
      status: f[status] ?? '',
    };
  });
}
