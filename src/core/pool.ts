// The pool's vocabulary, shared by every part: what an instance is, its states, and how the data plane
// sees a member. The controller produces these, the router and observability consume them, and the
// shared-state layer (Redis) carries them between processes; none of them imports another for it.

export interface Endpoint {
  host: string;
  port: number;
}

/**
 * An instance slot's state. failed = waiting out its restart backoff; paused = a dedicated session's
 * instance frozen while the session is idle (SIGSTOP, docker pause), resuming = on its way back.
 */
export type InstanceState = 'starting' | 'ready' | 'draining' | 'stopped' | 'failed' | 'paused' | 'resuming';

export const INSTANCE_STATES: readonly InstanceState[] = [
  'starting',
  'ready',
  'draining',
  'stopped',
  'failed',
  'paused',
  'resuming',
];

/** States that count toward the desired number of instances (failed = waiting to restart). */
export function isLive(state: InstanceState): boolean {
  return state !== 'draining' && state !== 'stopped';
}

/** An instance as the data plane needs it: only ready and draining ones are members. */
export interface PoolMember {
  id: string;
  /** Unique per run: a restarted instance keeps its id but gets a new incarnation. */
  incarnation: string;
  endpoint: Endpoint;
  state: InstanceState;
}

/**
 * Whether capacity can come when none is ready: 'starting' while an instance starts or will soon,
 * 'none' when every instance failed and waits out a long backoff (requests are answered at once).
 */
export type PoolOutlook = 'ready' | 'starting' | 'none';

export function urlOf(endpoint: Endpoint): string {
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return `http://${host}:${endpoint.port}`;
}
