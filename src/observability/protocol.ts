// The live feed's wire format (Socket.IO on both ports), shared by the server, the CLI and the docs
// (docs/live-feed.md). Changing a field here is a protocol change: bump LIVE_FEED_VERSION.
import type { ControllerEvent } from '../core/events.js';

export const LIVE_FEED_VERSION = 2;

/**
 * Socket.IO path on the LB and controller ports; the client script is served at
 * `${LIVE_FEED_PATH}/socket.io.js`. On the LB port this path is the platform's, not the agents'.
 */
export const LIVE_FEED_PATH = '/_yggdrasil/socket.io';

/** Event names a client can listen to. */
export const LIVE_EVENTS = {
  /** Sent once on every (re)connection: the current state, recent history and recent events. */
  hello: 'hello',
  /** A stats snapshot every `intervalMs` (1 s). */
  stats: 'stats',
  /** One controller event (instance lifecycle, scaling decision, breaker change, driver error). */
  event: 'event',
} as const;

/** One instance as the status page shows it. */
export interface LiveInstance {
  id: string;
  state: string;
  inflight: number;
  sessions: number;
  /** CPU in cores (1 = one full core); null until sampled. */
  cpu: number | null;
  memoryBytes: number | null;
  /** closed, half-open, open; null while the router has no connection pool for it. */
  breaker: string | null;
  restarts: number;
  crashLoop: boolean;
  readyAt: string | null;
  /** Why it last failed (exit, health, start-up, replaced) and its last lines of stderr; null if never. */
  lastFailure: { at: string; reason: string; output: string[] } | null;
}

/** The `stats` payload. Rates and latency are over the last `windowMs` (5 s). */
export interface LiveStats {
  /** Milliseconds since the epoch. */
  at: number;
  requestsPerSecond: number;
  /** 5xx share of the requests in the window; null when there were none. */
  errorRatio: number | null;
  /**
   * 95th percentile of the time to first byte (queue wait included): the latency SLO, which a long
   * stream does not spoil; null with no requests.
   */
  p95LatencyMs: number | null;
  queueDepth: number;
  readyInstances: number;
  desiredInstances: number;
  minInstances: number;
  maxInstances: number;
  /** The autoscaler is in panic mode (scaling on the short window). */
  panic: boolean;
  instances: LiveInstance[];
}

/** One point of the charts' history (a `stats` without the per-instance list). */
export type LivePoint = Omit<LiveStats, 'instances' | 'minInstances' | 'maxInstances' | 'panic'>;

/** The `hello` payload. */
export interface LiveHello {
  version: typeof LIVE_FEED_VERSION;
  driver: string;
  intervalMs: number;
  windowMs: number;
  stats: LiveStats;
  /** Up to the last five minutes of points, oldest first. */
  history: LivePoint[];
  /** Up to the last 50 controller events, oldest first. */
  events: ControllerEvent[];
}

export type LiveEvent = ControllerEvent;
