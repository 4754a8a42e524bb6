// Pure: which dedicated sessions' instances to pause, and which sessions to end, now. A session with a
// request in flight (an open stream or WebSocket included) is never idle; idle time counts from the end
// of its last request. No I/O; `now` is an argument.
import type { InstanceState } from '../core/pool.js';

export interface IdleSession {
  id: string;
  /** Its instance's state. */
  state: InstanceState;
  inflight: number;
  lastActiveAt: number;
}

export interface IdleLimits {
  /** SESSION_IDLE_PAUSE_MS (0 = never). */
  pauseMs: number;
  /** SESSION_IDLE_DELETE_MS (0 = never). */
  deleteMs: number;
}

export interface IdlePlan {
  pause: string[];
  end: string[];
}

export function idlePlan(sessions: Iterable<IdleSession>, now: number, limits: IdleLimits): IdlePlan {
  const plan: IdlePlan = { pause: [], end: [] };
  for (const s of sessions) {
    if (s.inflight > 0) continue;
    const idle = now - s.lastActiveAt;
    if (limits.deleteMs > 0 && idle >= limits.deleteMs) plan.end.push(s.id);
    else if (limits.pauseMs > 0 && idle >= limits.pauseMs && s.state === 'ready') plan.pause.push(s.id);
  }
  return plan;
}

/** How often the sweep looks: a quarter of the shorter limit, between 25 ms and 1 s. */
export function sweepIntervalMs(limits: IdleLimits): number {
  const set = [limits.pauseMs, limits.deleteMs].filter((ms) => ms > 0);
  if (set.length === 0) return 1000;
  return Math.max(25, Math.min(1000, Math.floor(Math.min(...set) / 4)));
}
