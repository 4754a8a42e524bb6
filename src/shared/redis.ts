// Connections to the shared Redis (ioredis): commands fail fast instead of queueing while Redis is
// away (the callers keep their last view and say they are degraded), time out when Redis hangs
// (SIGSTOP, a full network), and reconnect with backoff. Errors are logged once per outage.
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { Logger } from '../core/logger.js';

/** A command that gets no answer in this long has failed (Redis paused or unreachable). */
const COMMAND_TIMEOUT_MS = 1000;

export function connectRedis(url: string, logger: Logger, name: string): Redis {
  const redis = new Redis(url, {
    connectionName: name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 1000),
  });
  let down = false;
  redis.on('error', (err: Error) => {
    if (down) return;
    down = true;
    logger.warn({ err: err.message, redis: redactUrl(url) }, `redis unreachable (${name}); retrying`);
  });
  redis.on('ready', () => {
    if (down) logger.info({ redis: redactUrl(url) }, `redis reachable again (${name})`);
    down = false;
  });
  return redis;
}

/** Waits until the connection is ready, at most `ms`; false when it is not (the caller goes on degraded). */
export async function whenReady(redis: Redis, ms: number): Promise<boolean> {
  if (redis.status === 'ready') return true;
  const ac = new AbortController();
  const ok = await Promise.race([
    once(redis, 'ready', { signal: ac.signal }).then(
      () => true,
      () => false,
    ),
    sleep(ms, false, { signal: ac.signal }).catch(() => false),
  ]);
  ac.abort();
  return ok;
}

/** The URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis://…';
  }
}
