// A router's view of the pool through Redis: the leader's snapshots by subscription, a full read at
// every resync (a router that starts late or missed a message converges within one), and requests
// back to the leader (demand, replace) as messages. When Redis is unreachable the last view stays in
// force and the follower says why it is degraded.
import type { Redis } from 'ioredis';
import type { Logger } from '../core/logger.js';
import type { InstanceState, PoolMember, PoolOutlook } from '../core/pool.js';
import type { PoolSource } from '../router/pool-source.js';
import type { SharedKeys } from './keys.js';
import { isNewer, type PoolSnapshot, parseSnapshot } from './pool-snapshot.js';

export type ControllerCommand = { type: 'demand' } | { type: 'replace'; instance: string; reason: string };

export interface PoolFollowerOptions {
  /** Commands and resyncs. */
  redis: Redis;
  /** A connection of its own for the subscription. */
  subscriber: Redis;
  keys: SharedKeys;
  logger: Logger;
  /** A health check of one endpoint (the router checks a suspect itself). */
  probe: (member: PoolMember) => Promise<boolean | undefined>;
  now?: () => number;
}

export class PoolFollower implements PoolSource {
  private snapshot: PoolSnapshot | undefined;
  private readonly listeners: Array<(members: readonly PoolMember[]) => void> = [];
  private lastError: string | undefined;
  private lastSyncAt: number | undefined;
  private readonly now: () => number;
  /** Demand messages at most this often (a queue of waiting requests asks once, not per request). */
  private lastDemandAt = 0;
  private subscribed = false;

  constructor(private readonly opts: PoolFollowerOptions) {
    this.now = opts.now ?? Date.now;
    opts.subscriber.on('message', (channel: string, text: string) => {
      if (channel === opts.keys.poolChannel) this.apply(text);
    });
  }

  async start(): Promise<void> {
    await this.resync();
  }

  /** Reads the snapshot in full (every heartbeat, and once at start); subscribes when not yet. */
  async resync(): Promise<void> {
    try {
      // ioredis subscribes again by itself after a reconnect, once a first subscription succeeded.
      if (!this.subscribed) {
        await this.opts.subscriber.subscribe(this.opts.keys.poolChannel);
        this.subscribed = true;
      }
      const text = await this.opts.redis.get(this.opts.keys.pool);
      this.lastSyncAt = this.now();
      this.lastError = undefined;
      if (text !== null) this.apply(text);
    } catch (err) {
      this.lastError = `redis unreachable: ${(err as Error).message}`;
    }
  }

  /** Why the view may be stale (undefined when Redis answered at the last resync). */
  degraded(): string | undefined {
    return this.lastError;
  }

  current(): PoolSnapshot | undefined {
    return this.snapshot;
  }

  syncedAt(): number | undefined {
    return this.lastSyncAt;
  }

  // ---- PoolSource ---------------------------------------------------------------------------

  onMembers(listener: (members: readonly PoolMember[]) => void): void {
    this.listeners.push(listener);
    listener(this.snapshot?.members ?? []);
  }

  lookup(id: string): { state: InstanceState } | undefined {
    return this.snapshot?.instances.find((i) => i.id === id);
  }

  outlook(): PoolOutlook {
    // Before the first snapshot the pool is coming: requests wait (bounded by QUEUE_TIMEOUT_MS).
    return this.snapshot?.outlook ?? 'starting';
  }

  demand(): void {
    const now = this.now();
    if (now - this.lastDemandAt < 100) return;
    this.lastDemandAt = now;
    this.send({ type: 'demand' });
  }

  replace(instance: string, reason: string): void {
    this.send({ type: 'replace', instance, reason });
  }

  async probe(instance: string): Promise<boolean | undefined> {
    const m = this.snapshot?.members.find((x) => x.id === instance);
    return m ? this.opts.probe(m) : undefined;
  }

  private send(cmd: ControllerCommand): void {
    this.opts.redis.publish(this.opts.keys.commands, JSON.stringify(cmd)).catch((err: Error) => {
      this.opts.logger.warn(
        { err: err.message, cmd: cmd.type },
        'could not reach the controller through Redis',
      );
    });
  }

  private apply(text: string): void {
    const { snapshot, error } = parseSnapshot(text);
    if (error) {
      this.lastError = error;
      this.opts.logger.warn(error);
      return;
    }
    if (!snapshot || !isNewer(snapshot, this.snapshot)) return;
    this.snapshot = snapshot;
    for (const l of this.listeners) l(snapshot.members);
  }
}
