// The shared run log (issue 13: "memory; Redis when REDIS_URL is set"). The router that runs a run keeps
// it in its own RunLog and mirrors every change here, so every router can serve it:
//   <prefix>:run:<id>          hash: state, times, request, status, headers, error, owner
//   <prefix>:run:<id>:events   stream: event n has the id `n-0`; the end of the run is `n-1`
//   <prefix>:run:<id>:body     string: the body of an answer that is not an event stream
// Writes are queued and sent as one pipeline per turn of the event loop (in order, never awaited by
// the run), followed by a PUBLISH of the run's id on <prefix>:runs:changed; followers read what is new
// with XRANGE. A DELETE on another router is a PUBLISH on <prefix>:runs:cancel. Keys expire
// RUN_RETENTION_MS after the run ends (RUN_TIMEOUT_MS + RUN_RETENTION_MS after it began, should its
// router die first); a run the router evicts for room (RUN_LOG_MAX_BYTES) is deleted here too. When
// Redis is away the run goes on; its mirror misses those changes (logged).
// A run whose router is gone (no heartbeat in <prefix>:routers for 3 × ROUTER_HEARTBEAT_MS, or this
// router's id again after a restart) can never finish: the first reader marks it failed
// YGG_ERR_RUN_LOST, atomically (LOST below), so its followers end and a DELETE says it is over.
import type { ChainableCommander, Redis } from 'ioredis';
import type { Logger } from '../core/logger.js';
import type { RunChange, RunEvent, RunState } from '../runs/run-log.js';
import type { RunSummary, SharedRuns } from '../runs/run-service.js';
import type { SharedKeys } from './keys.js';
import { whenReady } from './redis.js';

export interface RedisRunLogOptions {
  redis: Redis;
  /** A connection of its own for SUBSCRIBE. */
  subscriber: Redis;
  keys: SharedKeys;
  /** This router's id (who runs the run). */
  owner: string;
  retentionMs: number;
  runTimeoutMs: number;
  /** A router without a heartbeat for this long is gone (3 × ROUTER_HEARTBEAT_MS). */
  routerTtlMs: number;
  logger: Logger;
}

/** The error of a run whose router died. */
export const RUN_LOST = {
  code: 'YGG_ERR_RUN_LOST',
  message:
    'the router that ran the request stopped before it finished (killed or lost): the run has what it had recorded',
};

/**
 * KEYS: run hash, events stream, body. ARGV: finishedAt, error JSON, retention ms. A run still
 * queued or running becomes failed, with the end marker after its last event; else nothing (1 / 0).
 */
const LOST = `
local s = redis.call('HGET', KEYS[1], 'state')
if s ~= 'queued' and s ~= 'running' then return 0 end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local n, seq = 0, 0
if #last > 0 then
  local a, b = string.match(last[1][1], '^(%d+)-(%d+)$')
  n, seq = tonumber(a), tonumber(b)
end
if seq ~= 1 then redis.call('XADD', KEYS[2], n .. '-1', 'end', 'failed') end
redis.call('HSET', KEYS[1], 'state', 'failed', 'finishedAt', ARGV[1], 'error', ARGV[2], 'events', n)
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return 1
`;

/** Events read per XRANGE. */
const PAGE = 500;

export class RedisRunLog implements SharedRuns {
  private queue: Array<(p: ChainableCommander) => void> = [];
  private readonly touched = new Set<string>();
  /** Runs that finished in the batch being built (their keys get the short expiry, not the long one). */
  private readonly finishing = new Set<string>();
  private scheduled = false;
  private failing = false;
  private readonly followers = new Map<string, Set<() => void>>();
  private readonly cancelListeners: Array<(id: string) => void> = [];
  private readonly onMessage = (channel: string, id: string) => {
    if (channel === this.opts.keys.runsChanged) for (const f of this.followers.get(id) ?? []) f();
    else if (channel === this.opts.keys.runsCancel) for (const l of this.cancelListeners) l(id);
  };

  constructor(private readonly opts: RedisRunLogOptions) {}

  /**
   * Subscribes to the channels: now if Redis answers within 2 s, else once it does (after a first
   * subscription ioredis subscribes again by itself on every reconnect).
   */
  async start(): Promise<void> {
    const sub = this.opts.subscriber;
    sub.on('message', this.onMessage);
    sub.on('ready', this.subscribe);
    await whenReady(sub, 2000);
    await this.subscribe();
  }

  private subscribed = false;
  private readonly subscribe = async (): Promise<void> => {
    if (this.subscribed || this.opts.subscriber.status !== 'ready') return;
    try {
      await this.opts.subscriber.subscribe(this.opts.keys.runsChanged, this.opts.keys.runsCancel);
      this.subscribed = true;
    } catch (err) {
      this.opts.logger.warn(
        { err: (err as Error).message },
        'subscribing to run changes failed; again on reconnect',
      );
    }
  };

  /** Resolves once every change observed so far was sent (or failed to be): a 202 waits for its run. */
  flushed(): Promise<void> {
    if (!this.scheduled) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private waiting: Array<() => void> = [];

  close(): void {
    this.opts.subscriber.off('message', this.onMessage);
    this.opts.subscriber.off('ready', this.subscribe);
    this.followers.clear();
  }

  observe(change: RunChange): void {
    const k = this.opts.keys;
    if (change.kind === 'evict') {
      // Evicted for room here: gone for every router (Redis holds no more than RUN_LOG_MAX_BYTES either).
      const id = change.id;
      this.push((p) => p.del(k.run(id), k.runEvents(id), k.runBody(id)));
      return;
    }
    const id = change.kind === 'create' || change.kind === 'finish' ? change.run.id : change.id;
    const hash = k.run(id);
    switch (change.kind) {
      case 'create': {
        const r = change.run;
        const fields: Record<string, string> = {
          id: r.id,
          state: r.state,
          createdAt: String(r.createdAt),
          method: r.method,
          path: r.path,
          owner: this.opts.owner,
        };
        if (r.session !== null) fields.session = r.session;
        this.push((p) => p.hset(hash, fields));
        break;
      }
      case 'start':
        this.push((p) => p.hset(hash, { state: 'running', startedAt: String(change.at) }));
        break;
      case 'respond':
        this.push((p) =>
          p.hset(hash, {
            status: String(change.status),
            headers: JSON.stringify(change.headers),
            sse: change.sse ? '1' : '0',
          }),
        );
        break;
      case 'event': {
        const key = k.runEvents(id);
        this.push((p) => p.xadd(key, `${change.event.id}-0`, 'l', JSON.stringify(change.event.lines)));
        break;
      }
      case 'body':
        this.push((p) => p.append(k.runBody(id), change.chunk));
        break;
      case 'finish': {
        const r = change.run;
        const fields: Record<string, string> = {
          state: r.state,
          finishedAt: String(r.finishedAt ?? Date.now()),
          events: String(r.events.length),
        };
        if (r.error) fields.error = JSON.stringify(r.error);
        const keep = this.opts.retentionMs;
        this.finishing.add(id);
        this.push((p) =>
          p
            .hset(hash, fields)
            .xadd(k.runEvents(id), `${r.events.length}-1`, 'end', r.state)
            .pexpire(hash, keep)
            .pexpire(k.runEvents(id), keep)
            .pexpire(k.runBody(id), keep),
        );
        break;
      }
    }
    this.touched.add(id);
  }

  private push(op: (p: ChainableCommander) => void): void {
    this.queue.push(op);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const ops = this.queue;
    this.queue = [];
    const waiting = this.waiting;
    this.waiting = [];
    const p = this.opts.redis.pipeline();
    for (const op of ops) op(p);
    // Every key a batch writes gets its expiry in that batch (a batch lost while Redis was away
    // leaves no key without one): RUN_RETENTION_MS after the end, or RUN_TIMEOUT_MS + RUN_RETENTION_MS
    // while it runs, should its router die first.
    const k = this.opts.keys;
    const running = this.opts.runTimeoutMs + this.opts.retentionMs + 60_000;
    for (const id of this.touched) {
      if (!this.finishing.has(id))
        for (const key of [k.run(id), k.runEvents(id), k.runBody(id)]) p.pexpire(key, running);
      p.publish(k.runsChanged, id);
    }
    this.touched.clear();
    this.finishing.clear();
    p.exec()
      .then((results) => {
        const err = results?.find(([e]) => e)?.[0];
        if (err) throw err;
        if (this.failing) this.opts.logger.info('the shared run log is written again');
        this.failing = false;
      })
      .catch((err: Error) => {
        if (!this.failing) {
          this.opts.logger.warn(
            { err: err.message },
            'the shared run log could not be written: other routers miss these runs’ changes (this router still has them)',
          );
        }
        this.failing = true;
      })
      .finally(() => {
        for (const w of waiting) w();
      });
  }

  async get(id: string, withBody: boolean): Promise<RunSummary | undefined> {
    const k = this.opts.keys;
    let h = await this.opts.redis.hgetall(k.run(id));
    if (!h.id) return undefined;
    if ((h.state === 'queued' || h.state === 'running') && !(await this.ownerLives(h.owner))) {
      await this.markLost(id);
      h = await this.opts.redis.hgetall(k.run(id));
      if (!h.id) return undefined;
    }
    const sse = h.sse === '1';
    const events = sse
      ? h.events !== undefined
        ? Number(h.events)
        : await this.opts.redis.xlen(k.runEvents(id))
      : 0;
    const body =
      withBody && !sse ? ((await this.opts.redis.getBuffer(k.runBody(id))) ?? Buffer.alloc(0)) : null;
    const num = (v: string | undefined) => (v === undefined ? null : Number(v));
    return {
      id,
      state: h.state as RunState,
      createdAt: Number(h.createdAt),
      startedAt: num(h.startedAt),
      finishedAt: num(h.finishedAt),
      method: h.method ?? 'GET',
      path: h.path ?? '/',
      session: h.session ?? null,
      status: num(h.status),
      headers: h.headers ? (JSON.parse(h.headers) as Record<string, string>) : null,
      sse,
      error: h.error ? (JSON.parse(h.error) as { code: string; message: string }) : null,
      events,
      body,
    };
  }

  async eventsAfter(
    id: string,
    after: number,
  ): Promise<{ events: RunEvent[]; end?: RunState; more: boolean }> {
    const entries = await this.opts.redis.xrange(
      this.opts.keys.runEvents(id),
      `(${after}-0`,
      '+',
      'COUNT',
      PAGE,
    );
    const events: RunEvent[] = [];
    let end: RunState | undefined;
    for (const [entryId, fields] of entries) {
      const [n, seq] = entryId.split('-').map(Number) as [number, number];
      if (seq === 1) end = fields[1] as RunState;
      else events.push({ id: n, lines: JSON.parse(fields[1] ?? '[]') as string[] });
    }
    return { events, ...(end ? { end } : {}), more: entries.length === PAGE };
  }

  /**
   * Whether the router that runs a run is alive. Not this router: get() is asked only for runs this
   * one does not hold, so a run under its id is a previous process's (restarted with the same id).
   */
  private async ownerLives(owner: string | undefined): Promise<boolean> {
    if (owner === undefined || owner === this.opts.owner) return false;
    const seen = await this.opts.redis.zscore(this.opts.keys.routers, owner);
    return seen !== null && Date.now() - Number(seen) <= this.opts.routerTtlMs;
  }

  private async markLost(id: string): Promise<void> {
    const k = this.opts.keys;
    const marked = await this.opts.redis.eval(
      LOST,
      3,
      k.run(id),
      k.runEvents(id),
      k.runBody(id),
      String(Date.now()),
      JSON.stringify(RUN_LOST),
      String(this.opts.retentionMs),
    );
    if (marked === 1) {
      this.opts.logger.warn({ run: id }, `run ${id} is lost: the router that ran it is gone`);
      await this.opts.redis.publish(k.runsChanged, id);
    }
  }

  follow(id: string, onChange: () => void): () => void {
    let set = this.followers.get(id);
    if (!set) {
      set = new Set();
      this.followers.set(id, set);
    }
    set.add(onChange);
    return () => {
      const s = this.followers.get(id);
      s?.delete(onChange);
      if (s?.size === 0) this.followers.delete(id);
    };
  }

  async cancel(id: string): Promise<void> {
    await this.opts.redis.publish(this.opts.keys.runsCancel, id);
  }

  onCancel(listener: (id: string) => void): void {
    this.cancelListeners.push(listener);
  }
}
