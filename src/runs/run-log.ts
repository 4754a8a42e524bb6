// The run log (issue 13: runs that outlive the connection): what a run started with
// `Prefer: respond-async` answered, kept for clients that come back. Its state
// (queued → running → done | failed | cancelled), the agent's status and headers, and its body: for
// `text/event-stream` as numbered events (a client resumes after Last-Event-ID), else as bytes. Bounded
// in bytes (finished runs are evicted oldest first; when only active ones are left an append is
// refused and the caller cancels that run) and in time (finished runs are kept RUN_RETENTION_MS).
// Pure: time is an argument, no I/O; the router drives it and serves it.
import { splitEvents } from './sse-split.js';

export type RunState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

const FINISHED: ReadonlySet<RunState> = new Set(['done', 'failed', 'cancelled']);
export const isFinished = (s: RunState): boolean => FINISHED.has(s);

export interface RunEvent {
  /** 1, 2, 3 … in the order the agent sent them. */
  id: number;
  lines: string[];
}

export interface RunRecord {
  id: string;
  state: RunState;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  method: string;
  path: string;
  session: string | null;
  tenant: string | null;
  status: number | null;
  headers: Record<string, string> | null;
  sse: boolean;
  body: Buffer[];
  events: RunEvent[];
  /** An event the agent has begun but not ended yet. */
  pending: string;
  bytes: number;
  error: { code: string; message: string } | null;
}

export type RunUpdate =
  | { kind: 'event'; event: RunEvent }
  | { kind: 'body'; chunk: Buffer }
  | { kind: 'end'; state: RunState };

/** What happened to a run, in order: what a mirror (the shared run log in Redis) copies. */
export type RunChange =
  | { kind: 'create'; run: RunRecord }
  | { kind: 'start'; id: string; at: number }
  | { kind: 'respond'; id: string; status: number; headers: Record<string, string>; sse: boolean }
  | { kind: 'event'; id: string; event: RunEvent }
  | { kind: 'body'; id: string; chunk: Buffer }
  | { kind: 'finish'; run: RunRecord }
  /** Dropped for room (RUN_LOG_MAX_BYTES) before its retention ran out: the mirror drops it too. */
  | { kind: 'evict'; id: string };

export interface RunLogOptions {
  /** RUN_LOG_MAX_BYTES: bodies and events of all runs together. */
  maxBytes: number;
  /** RUN_RETENTION_MS: how long a finished run is kept. */
  retentionMs: number;
  /** Told every change, in order (the shared run log mirrors them). */
  observer?: (change: RunChange) => void;
}

export class RunLog {
  private readonly runs = new Map<string, RunRecord>();
  private readonly listeners = new Map<string, Set<(u: RunUpdate) => void>>();
  private total = 0;

  constructor(private readonly opts: RunLogOptions) {}

  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.runs.size;
  }

  create(
    id: string,
    meta: { method: string; path: string; session?: string | undefined; tenant?: string | undefined },
    now: number,
  ): RunRecord {
    const r: RunRecord = {
      id,
      state: 'queued',
      createdAt: now,
      startedAt: null,
      finishedAt: null,
      method: meta.method,
      path: meta.path,
      session: meta.session ?? null,
      tenant: meta.tenant ?? null,
      status: null,
      headers: null,
      sse: false,
      body: [],
      events: [],
      pending: '',
      bytes: 0,
      error: null,
    };
    this.runs.set(id, r);
    this.opts.observer?.({ kind: 'create', run: r });
    return r;
  }

  get(id: string): RunRecord | undefined {
    return this.runs.get(id);
  }

  /**
   * The session's oldest run that is queued or running (SESSION_MULTITASK decides what to do); with
   * `before`, only one created before that run (the one it waits for).
   */
  activeOf(session: string, before?: string): RunRecord | undefined {
    for (const r of this.runs.values()) {
      if (r.id === before) return undefined;
      if (r.session === session && !isFinished(r.state)) return r;
    }
    return undefined;
  }

  /** Every queued or running run. */
  allActive(): RunRecord[] {
    return [...this.runs.values()].filter((r) => !isFinished(r.state));
  }

  /** Every queued or running run of the session. */
  allActiveOf(session: string): RunRecord[] {
    return [...this.runs.values()].filter((r) => r.session === session && !isFinished(r.state));
  }

  start(id: string, now: number): void {
    const r = this.runs.get(id);
    if (r && r.state === 'queued') {
      r.state = 'running';
      r.startedAt = now;
      this.opts.observer?.({ kind: 'start', id, at: now });
    }
  }

  /** The agent's answer begins. */
  respond(id: string, status: number, headers: Record<string, string>): void {
    const r = this.runs.get(id);
    if (!r || isFinished(r.state)) return;
    r.status = status;
    r.headers = headers;
    r.sse = /^text\/event-stream\b/i.test(headers['content-type'] ?? '');
    this.opts.observer?.({ kind: 'respond', id, status, headers, sse: r.sse });
  }

  /** Records a chunk of the answer; false when the log is full of active runs (cancel this one). */
  append(id: string, chunk: Buffer, now: number): boolean {
    const r = this.runs.get(id);
    if (!r || isFinished(r.state)) return true;
    if (!this.makeRoom(chunk.length, now)) return false;
    r.bytes += chunk.length;
    this.total += chunk.length;
    if (!r.sse) {
      r.body.push(chunk);
      this.opts.observer?.({ kind: 'body', id, chunk });
      this.emit(id, { kind: 'body', chunk });
      return true;
    }
    const cut = splitEvents(r.pending + chunk.toString('utf8'));
    r.pending = cut.rest;
    for (const lines of cut.events) this.addEvent(r, lines);
    return true;
  }

  private addEvent(r: RunRecord, lines: string[]): void {
    const event = { id: r.events.length + 1, lines };
    r.events.push(event);
    this.opts.observer?.({ kind: 'event', id: r.id, event });
    this.emit(r.id, { kind: 'event', event });
  }

  finish(
    id: string,
    state: Exclude<RunState, 'queued' | 'running'>,
    now: number,
    error?: RunRecord['error'],
  ): void {
    const r = this.runs.get(id);
    if (!r || isFinished(r.state)) return;
    if (r.sse && r.pending.trim() !== '') {
      // An event the agent never ended with a blank line is still an event (as a browser sees it).
      const lines = splitEvents(`${r.pending}\n\n`).events[0] ?? [];
      if (lines.length > 0) this.addEvent(r, lines);
    }
    r.pending = '';
    r.state = state;
    r.finishedAt = now;
    r.error = error ?? null;
    this.opts.observer?.({ kind: 'finish', run: r });
    this.emit(id, { kind: 'end', state });
    this.listeners.delete(id);
  }

  /** Events after `lastEventId` (0: all). */
  eventsAfter(id: string, lastEventId: number): RunEvent[] {
    const r = this.runs.get(id);
    if (!r) return [];
    return r.events.slice(Math.max(0, Math.min(lastEventId, r.events.length)));
  }

  /** Follows a run from now on; the returned function stops following. */
  subscribe(id: string, listener: (u: RunUpdate) => void): () => void {
    let set = this.listeners.get(id);
    if (!set) {
      set = new Set();
      this.listeners.set(id, set);
    }
    set.add(listener);
    return () => {
      this.listeners.get(id)?.delete(listener);
    };
  }

  /** Drops finished runs past their retention; returns how many went. */
  sweep(now: number): number {
    let n = 0;
    for (const r of this.runs.values()) {
      if (r.finishedAt !== null && now - r.finishedAt >= this.opts.retentionMs) {
        this.drop(r);
        n++;
      }
    }
    return n;
  }

  /** Evicts finished runs, oldest first, until `bytes` more fit; false if they cannot. */
  private makeRoom(bytes: number, now: number): boolean {
    if (this.total + bytes <= this.opts.maxBytes) return true;
    this.sweep(now);
    for (const r of this.runs.values()) {
      if (this.total + bytes <= this.opts.maxBytes) break;
      if (r.finishedAt !== null) {
        this.drop(r);
        this.opts.observer?.({ kind: 'evict', id: r.id });
      }
    }
    return this.total + bytes <= this.opts.maxBytes;
  }

  private drop(r: RunRecord): void {
    this.total -= r.bytes;
    this.runs.delete(r.id);
    this.listeners.delete(r.id);
  }

  private emit(id: string, u: RunUpdate): void {
    const set = this.listeners.get(id);
    if (set) for (const l of set) l(u);
  }
}
