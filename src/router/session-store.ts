// The sticky-session table: which instance (and which run of it) each session is pinned to. An
// interface the router uses, and the in-memory store behind it. Pure: `now` is an argument.

/** A store backed by a network service (Redis) answers with promises; the memory one answers at once. */
export type Awaitable<T> = T | Promise<T>;

export interface SessionTarget {
  instanceId: string;
  /** The run of the instance the session lives in; a restart makes a new one and loses the session. */
  incarnation: string;
}

export interface SessionBinding extends SessionTarget {
  /** Last time the session was set or touched (ms). */
  lastSeen: number;
}

/**
 * Sticky-session table. Callers `await` every result so a remote store can replace the memory one;
 * a binding idle for more than the store's TTL is gone.
 */
export interface SessionStore {
  /** The live binding, or undefined when there is none or it has been idle longer than the TTL. */
  get(sessionId: string, now: number): Awaitable<SessionBinding | undefined>;
  /** Pins (or re-pins) a session; lastSeen = now. */
  set(sessionId: string, target: SessionTarget, now: number): Awaitable<void>;
  /**
   * The binding as a shared table has it now, past any near cache: asked before moving a session
   * whose cached instance is gone, since another router may have moved it already. Stores without a
   * cache leave it out.
   */
  fresh?(sessionId: string, now: number): Promise<SessionBinding | undefined>;
  /** Marks a live session as used at `now`; an expired or unknown one is not revived. */
  touch(sessionId: string, now: number): Awaitable<void>;
  delete(sessionId: string): Awaitable<void>;
  /** Bindings held for an instance id (all incarnations), expired ones included until swept. */
  countByInstance(instanceId: string): Awaitable<number>;
  /** Removes the expired bindings; returns how many. */
  sweep(now: number): Awaitable<number>;
  /** Bindings held, expired ones included until swept. */
  size(): Awaitable<number>;
}

export interface MemorySessionStoreOptions {
  /** A session idle for more than this is gone (SESSION_TTL_MS). */
  ttlMs: number;
  /**
   * Most sessions held; setting one more evicts the least recently seen.
   * @default 100000
   */
  maxSessions?: number;
}

/**
 * In-memory store. The Map keeps bindings in the order they were last set or touched, which is
 * least recently seen first as long as `now` does not go backwards (pass a monotonic clock): that
 * order makes eviction O(1) and lets sweep stop at the first live binding.
 */
export class MemorySessionStore implements SessionStore {
  readonly ttlMs: number;
  readonly maxSessions: number;
  private readonly sessions = new Map<string, SessionBinding>();
  /** Bindings per instance id, so countByInstance is O(1); an id leaves the map at zero. */
  private readonly perInstance = new Map<string, number>();
  private evictedTotal = 0;

  constructor(options: MemorySessionStoreOptions) {
    const { ttlMs, maxSessions = 100_000 } = options;
    if (!(Number.isFinite(ttlMs) && ttlMs > 0)) {
      throw new TypeError(`MemorySessionStore: ttlMs=${ttlMs} is invalid: must be a number > 0`);
    }
    if (!(Number.isInteger(maxSessions) && maxSessions >= 1)) {
      throw new TypeError(
        `MemorySessionStore: maxSessions=${maxSessions} is invalid: must be an integer >= 1`,
      );
    }
    this.ttlMs = ttlMs;
    this.maxSessions = maxSessions;
  }

  /** Sessions evicted to stay within maxSessions since start (for a counter metric). */
  get evicted(): number {
    return this.evictedTotal;
  }

  get(sessionId: string, now: number): SessionBinding | undefined {
    const b = this.sessions.get(sessionId);
    if (b === undefined) return undefined;
    if (this.expired(b, now)) {
      this.remove(sessionId, b);
      return undefined;
    }
    return { ...b };
  }

  set(sessionId: string, target: SessionTarget, now: number): void {
    const old = this.sessions.get(sessionId);
    if (old !== undefined) {
      this.remove(sessionId, old);
    } else if (this.sessions.size >= this.maxSessions) {
      const [oldestId, oldest] = this.sessions.entries().next().value!;
      this.remove(oldestId, oldest);
      this.evictedTotal += 1;
    }
    this.sessions.set(sessionId, {
      instanceId: target.instanceId,
      incarnation: target.incarnation,
      lastSeen: now,
    });
    this.perInstance.set(target.instanceId, (this.perInstance.get(target.instanceId) ?? 0) + 1);
  }

  touch(sessionId: string, now: number): void {
    const b = this.sessions.get(sessionId);
    if (b === undefined) return;
    if (this.expired(b, now)) {
      this.remove(sessionId, b);
      return;
    }
    // Re-insert to move it to the most recently seen end.
    this.sessions.delete(sessionId);
    b.lastSeen = now;
    this.sessions.set(sessionId, b);
  }

  delete(sessionId: string): void {
    const b = this.sessions.get(sessionId);
    if (b !== undefined) this.remove(sessionId, b);
  }

  countByInstance(instanceId: string): number {
    return this.perInstance.get(instanceId) ?? 0;
  }

  sweep(now: number): number {
    let removed = 0;
    for (const [id, b] of this.sessions) {
      if (!this.expired(b, now)) break;
      this.remove(id, b);
      removed += 1;
    }
    return removed;
  }

  size(): number {
    return this.sessions.size;
  }

  private expired(b: SessionBinding, now: number): boolean {
    return now - b.lastSeen > this.ttlMs;
  }

  private remove(sessionId: string, b: SessionBinding): void {
    this.sessions.delete(sessionId);
    const n = (this.perInstance.get(b.instanceId) ?? 0) - 1;
    if (n > 0) this.perInstance.set(b.instanceId, n);
    else this.perInstance.delete(b.instanceId);
  }
}
