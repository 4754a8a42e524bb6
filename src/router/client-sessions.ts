// MAX_SESSIONS_PER_CLIENT: how many sessions one client (a tenant, or an address) holds. A session is
// the client's from the first request that names it until SESSION_TTL_MS without one. Pure: `now` is
// an argument; the router asks before it lets a request open a session the client does not have.

export class ClientSessions {
  /** client → session id → last seen. */
  private readonly byClient = new Map<string, Map<string, number>>();

  constructor(
    private readonly maxPerClient: number,
    private readonly ttlMs: number,
  ) {}

  /**
   * Whether `client` may use `sessionId` now: always for one it holds (touched), for a new one only
   * under the cap (then it holds it).
   */
  admit(client: string, sessionId: string, now: number): boolean {
    let held = this.byClient.get(client);
    if (held?.has(sessionId)) {
      held.set(sessionId, now);
      return true;
    }
    if (held) this.expire(held, now);
    if ((held?.size ?? 0) >= this.maxPerClient) return false;
    if (!held) {
      held = new Map();
      this.byClient.set(client, held);
    }
    held.set(sessionId, now);
    return true;
  }

  /** Sessions `client` holds now. */
  count(client: string, now: number): number {
    const held = this.byClient.get(client);
    if (!held) return 0;
    this.expire(held, now);
    return held.size;
  }

  /** Forgets every idle session (and clients with none). */
  sweep(now: number): void {
    for (const [client, held] of this.byClient) {
      this.expire(held, now);
      if (held.size === 0) this.byClient.delete(client);
    }
  }

  private expire(held: Map<string, number>, now: number): void {
    for (const [id, seen] of held) if (now - seen > this.ttlMs) held.delete(id);
  }
}
