// The one error catalogue: every error Yggdrasil answers or exits with has a stable code here,
// the HTTP status it maps to, and a line of documentation (docs/errors.md is checked against it).

export interface ErrorSpec {
  /** HTTP status the error maps to (0 for errors that never reach HTTP, e.g. config errors). */
  status: number;
  /** What it means for the caller, one line. */
  doc: string;
}

export const ERROR_CATALOGUE = {
  YGG_ERR_BAD_REQUEST: {
    status: 400,
    doc: 'The request cannot be proxied as sent (malformed target, CONNECT, duplicate Host, bad framing).',
  },
  YGG_ERR_INVALID_JSON: { status: 400, doc: 'The request body is not valid JSON.' },
  YGG_ERR_VALIDATION: { status: 400, doc: 'A field of the request is missing, unknown or out of range.' },
  YGG_ERR_BODY_TOO_LARGE: { status: 413, doc: 'The request body is larger than MAX_BODY_BYTES.' },
  YGG_ERR_CLIENT_TIMEOUT: {
    status: 408,
    doc: 'The client did not send its request body within CLIENT_BODY_TIMEOUT_MS.',
  },
  YGG_ERR_HEADERS_TOO_LARGE: { status: 431, doc: 'The request headers are larger than the server accepts.' },
  YGG_ERR_UNAUTHORIZED: {
    status: 401,
    doc: 'The route needs an API key: none was sent (Authorization: Bearer <key>), or it is not valid.',
  },
  YGG_ERR_FORBIDDEN: { status: 403, doc: 'The key is valid but its role may not use this route.' },
  YGG_ERR_AUTH_NOT_CONFIGURED: {
    status: 403,
    doc: 'An admin route was called and no admin key exists yet: run `npm run add:auth -- --name NAME --role admin`.',
  },
  YGG_ERR_HOST_NOT_ALLOWED: {
    status: 403,
    doc: 'The Host of the request is not in ALLOWED_HOSTS (the status page, its feed and the admin API).',
  },
  YGG_ERR_NOT_FOUND: { status: 404, doc: 'No such route.' },
  YGG_ERR_RUN_NOT_FOUND: {
    status: 404,
    doc: 'No run with this id: it never existed, or it finished more than RUN_RETENTION_MS ago.',
  },
  YGG_ERR_RUN_NOT_A_STREAM: {
    status: 409,
    doc: 'GET /runs/{id}/stream on a run whose answer is not text/event-stream: GET /runs/{id} has its body.',
  },
  YGG_ERR_RUN_TIMEOUT: {
    status: 504,
    doc: 'The run took longer than RUN_TIMEOUT_MS; its request was aborted.',
  },
  YGG_ERR_RUN_LOG_FULL: {
    status: 507,
    doc: 'The run log had no room for the answer (RUN_LOG_MAX_BYTES, active runs only): the run was aborted.',
  },
  YGG_ERR_RUN_ACTIVE: {
    status: 409,
    doc: 'The session has a run in progress and SESSION_MULTITASK=reject: wait for it (GET /runs/{id}) or cancel it.',
  },
  YGG_ERR_RUN_LOST: {
    status: 502,
    doc: 'The router that ran the run stopped before it finished (killed, or cut off from Redis for 3 × ROUTER_HEARTBEAT_MS): the run keeps what it had recorded.',
  },
  YGG_ERR_RUN_CANCELLED: {
    status: 409,
    doc: 'The run was cancelled (DELETE /runs/{id}); its request was aborted.',
  },
  YGG_ERR_METHOD_NOT_ALLOWED: { status: 405, doc: 'The route exists but not for this HTTP method.' },
  YGG_ERR_UNKNOWN_INSTANCE: { status: 404, doc: 'No instance with this id is in the pool.' },
  YGG_ERR_INSTANCE_NOT_READY: {
    status: 503,
    doc: 'The instance exists but is not ready (starting, draining, failed or stopped).',
  },
  YGG_ERR_NO_INSTANCES: {
    status: 503,
    doc: 'No instance is ready or starting (every one failed and waits to restart): nothing to wait for.',
  },
  YGG_ERR_CAPACITY: {
    status: 503,
    doc: 'Every instance is at MAX_CONCURRENCY and the queue is full or the wait exceeded QUEUE_TIMEOUT_MS; or (SESSION_MODE=dedicated) a new session found all MAX_INSTANCES owned.',
  },
  YGG_ERR_SESSION_ENDED: {
    status: 410,
    doc: 'SESSION_MODE=dedicated: the session ended (idle for SESSION_IDLE_DELETE_MS, or ended by an admin) and its instance is gone; start a new session.',
  },
  YGG_ERR_SESSION_REQUIRED: {
    status: 400,
    doc: 'SESSION_MODE=dedicated: the request names no session (X-Session-Id or the ygg_session cookie); every session gets an instance of its own, so none is made up for an anonymous request.',
  },
  YGG_ERR_INSTANCE_OWNED: {
    status: 409,
    doc: 'SESSION_MODE=dedicated: the instance belongs to a session; it goes when the session ends (DELETE /sessions/{id}), not on its own.',
  },
  YGG_ERR_UNKNOWN_SESSION: {
    status: 404,
    doc: 'No live session with this id (admin API, SESSION_MODE=dedicated).',
  },
  YGG_ERR_CIRCUIT_OPEN: {
    status: 503,
    doc: 'Every candidate instance has its circuit breaker open after repeated failures.',
  },
  YGG_ERR_RATE_LIMITED: {
    status: 429,
    doc: 'Over a per-client limit (RATE_LIMIT_RPS, MAX_INFLIGHT_PER_CLIENT, MAX_SESSIONS_PER_CLIENT) or the nginx front’s rate.',
  },
  YGG_ERR_UPSTREAM: { status: 502, doc: 'The instance failed before sending a complete response.' },
  YGG_ERR_TIMEOUT: { status: 504, doc: 'The instance did not answer within REQUEST_TIMEOUT_MS.' },
  YGG_ERR_SHUTTING_DOWN: { status: 503, doc: 'Yggdrasil is stopping and takes no new requests.' },
  YGG_ERR_NOT_LEADER: {
    status: 503,
    doc: 'This controller stands by: the leading controller (named in the message) takes admin requests.',
  },
  YGG_ERR_AGENT_FAILURE: { status: 500, doc: 'The reference agent was asked to fail (`fail: true`).' },
  YGG_ERR_CONFIG: { status: 0, doc: 'A configuration value is invalid; start-up stops with exit code 2.' },
  YGG_ERR_DRIVER: { status: 0, doc: 'The runtime driver could not start, stop or inspect an instance.' },
  YGG_ERR_INTERNAL: { status: 500, doc: 'An unexpected error inside Yggdrasil (a bug: please report it).' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

export class YggError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;
  /** Seconds a client should wait before retrying (sent as Retry-After). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { details?: unknown; retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.name = 'YggError';
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    this.details = opts.details;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { error: { code: this.code, message: this.message } };
    if (this.details !== undefined) body.error.details = this.details;
    return body;
  }
}

export function isYggError(err: unknown): err is YggError {
  return err instanceof YggError;
}
