// Where the shared state lives in Redis: every key and channel of one pool, under REDIS_PREFIX.

export interface SharedKeys {
  /** "holder term" of the leading controller, with the lease as its expiry. */
  leader: string;
  /** The last term handed out (INCR): the fencing token of every leader write. */
  term: string;
  /** The pool snapshot the leader published last (JSON). */
  pool: string;
  /** Pool snapshots as they change (pub/sub; the same JSON). */
  poolChannel: string;
  /** Routers by their last heartbeat (sorted set, score = ms). */
  routers: string;
  /** Each router's last report (hash: router id → JSON). */
  reports: string;
  /** Routers → leader: demand (a request waits with nothing ready), replace requests (pub/sub). */
  commands: string;
  /** A session's binding: "instanceId incarnation", expiring after SESSION_TTL_MS. */
  session(id: string): string;
  /** An instance's sessions by last use (sorted set, score = ms), for the scale-down choice. */
  sessionsOf(instanceId: string): string;
  /** sessionsOf(id) = sessionsPrefix + id (for scripts). */
  sessionsPrefix: string;
  /** Prefix of the per-client rate limit keys. */
  rateLimits: string;
  /** A run's record (hash), its events (stream, ids `n-0`, the end `n-1`) and its body (string). */
  run(id: string): string;
  runEvents(id: string): string;
  runBody(id: string): string;
  /** Run ids whose record changed (pub/sub), and runs to cancel wherever they run. */
  runsChanged: string;
  runsCancel: string;
}

export function sharedKeys(prefix: string): SharedKeys {
  const p = prefix;
  return {
    leader: `${p}:leader`,
    term: `${p}:term`,
    pool: `${p}:pool`,
    poolChannel: `${p}:pool:changed`,
    routers: `${p}:routers`,
    reports: `${p}:reports`,
    commands: `${p}:commands`,
    session: (id) => `${p}:session:${id}`,
    sessionsOf: (id) => `${p}:sessions:${id}`,
    sessionsPrefix: `${p}:sessions:`,
    rateLimits: `${p}:rl`,
    run: (id) => `${p}:run:${id}`,
    runEvents: (id) => `${p}:run:${id}:events`,
    runBody: (id) => `${p}:run:${id}:body`,
    runsChanged: `${p}:runs:changed`,
    runsCancel: `${p}:runs:cancel`,
  };
}
