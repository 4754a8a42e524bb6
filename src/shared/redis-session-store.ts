// The session table shared by every router: Redis holds each binding (with SESSION_TTL_MS as its
// expiry) and each instance's sessions by last use; a near cache (the memory store) answers the hot
// path, so a request of a known session costs no round trip. Writes go out in the background, are
// caught and counted; touches are written at most every TTL/20 per session. When Redis is unreachable
// the near cache keeps serving the sessions this router knows.
import type { Redis } from 'ioredis';
import type { Logger } from '../core/logger.js';
import {
  MemorySessionStore,
  type SessionBinding,
  type SessionStore,
  type SessionTarget,
} from '../router/session-store.js';
import type { SharedKeys } from './keys.js';
import type { SharedScripts } from './scripts.js';

export interface RedisSessionStoreOptions {
  redis: Redis;
  scripts: SharedScripts;
  keys: SharedKeys;
  ttlMs: number;
  logger: Logger;
  /** Counts a failed remote read or write (a metric). */
  onError?: (op: 'read' | 'write') => void;
}

const encode = (t: SessionTarget) => `${t.instanceId} ${t.incarnation}`;

function decode(text: string | null): SessionTarget | undefined {
  if (!text) return undefined;
  const at = text.indexOf(' ');
  if (at <= 0) return undefined;
  return { instanceId: text.slice(0, at), incarnation: text.slice(at + 1) };
}

export class RedisSessionStore implements SessionStore {
  private readonly near: MemorySessionStore;
  /** When each cached session was last written to Redis (touch throttling). */
  private readonly written = new Map<string, number>();
  private readonly touchEveryMs: number;
  private failures = 0;

  constructor(private readonly opts: RedisSessionStoreOptions) {
    this.near = new MemorySessionStore({ ttlMs: opts.ttlMs });
    this.touchEveryMs = Math.max(1000, Math.floor(opts.ttlMs / 20));
  }

  /** Remote reads and writes that failed since start. */
  get errors(): number {
    return this.failures;
  }

  get(sessionId: string, now: number): SessionBinding | undefined | Promise<SessionBinding | undefined> {
    const cached = this.near.get(sessionId, now);
    if (cached) return cached;
    return this.fresh(sessionId, now);
  }

  /** The binding as the shared table has it now (bypassing the near cache), cached on the way back. */
  async fresh(sessionId: string, now: number): Promise<SessionBinding | undefined> {
    let text: string | null;
    try {
      text = await this.opts.redis.get(this.opts.keys.session(sessionId));
    } catch (err) {
      this.failed('read', err);
      return this.near.get(sessionId, now);
    }
    const target = decode(text);
    if (!target) return undefined;
    this.near.set(sessionId, target, now);
    this.written.set(sessionId, now);
    return { ...target, lastSeen: now };
  }

  set(sessionId: string, target: SessionTarget, now: number): Promise<void> {
    this.near.set(sessionId, target, now);
    this.written.set(sessionId, now);
    const { scripts, keys, ttlMs } = this.opts;
    // One script: the binding, its instance's set, and out of the set of the instance it was on.
    const done = scripts
      .sessionSet(
        keys.session(sessionId),
        keys.sessionsOf(target.instanceId),
        encode(target),
        ttlMs,
        now,
        sessionId,
        target.instanceId,
        keys.sessionsPrefix,
      )
      .then(() => [] as Array<[Error | null, unknown]>);
    return this.write(done);
  }

  touch(sessionId: string, now: number): Promise<void> | undefined {
    const b = this.near.get(sessionId, now);
    this.near.touch(sessionId, now);
    if (!b) return undefined;
    const last = this.written.get(sessionId) ?? 0;
    if (now - last < this.touchEveryMs) return undefined;
    this.written.set(sessionId, now);
    const { redis, keys, ttlMs } = this.opts;
    return this.write(
      redis
        .multi()
        .pexpire(keys.session(sessionId), ttlMs)
        .zadd(keys.sessionsOf(b.instanceId), now, sessionId)
        .exec(),
    );
  }

  delete(sessionId: string): Promise<void> {
    this.near.delete(sessionId);
    this.written.delete(sessionId);
    const { scripts, keys } = this.opts;
    return this.write(
      scripts
        .sessionDelete(keys.session(sessionId), keys.sessionsPrefix, sessionId)
        .then(() => [] as Array<[Error | null, unknown]>),
    );
  }

  /** The sessions this router holds for an instance (the leader counts the shared table itself). */
  countByInstance(instanceId: string): number {
    return this.near.countByInstance(instanceId);
  }

  sweep(now: number): number {
    const n = this.near.sweep(now);
    if (this.written.size > this.near.size()) {
      for (const id of this.written.keys()) if (this.near.get(id, now) === undefined) this.written.delete(id);
    }
    return n;
  }

  size(): number {
    return this.near.size();
  }

  private async write(p: Promise<Array<[Error | null, unknown]> | null>): Promise<void> {
    try {
      const replies = await p;
      for (const [err] of replies ?? []) if (err) throw err;
    } catch (err) {
      this.failed('write', err);
    }
  }

  private failed(op: 'read' | 'write', err: unknown): void {
    this.failures++;
    this.opts.onError?.(op);
    if (this.failures === 1 || this.failures % 1000 === 0) {
      this.opts.logger.warn(
        { err: (err as Error).message, failures: this.failures },
        `session store ${op} failed`,
      );
    }
  }
}
