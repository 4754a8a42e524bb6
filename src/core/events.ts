// The pool's recent events (lifecycle, scaling, breakers), kept in a bounded ring for /status and
// pushed to subscribers (logs, metrics, the live feed). Shared vocabulary: the controller writes them,
// observability and the shared-state publisher read them.

import type { Logger } from './logger.js';

export type EventType =
  | 'instance_starting'
  | 'instance_ready'
  | 'instance_failed'
  | 'instance_restarting'
  | 'instance_draining'
  | 'instance_stopped'
  | 'instance_paused'
  | 'instance_resumed'
  | 'session_started'
  | 'session_ended'
  | 'scaled'
  | 'breaker'
  | 'driver_error'
  | 'leadership';

export interface ControllerEvent {
  at: number;
  type: EventType;
  instance?: string;
  message: string;
  data?: Record<string, unknown>;
}

/** An event, with `instance` and `data` only when there are some. */
export function poolEvent(
  at: number,
  type: EventType,
  instance: string | undefined,
  message: string,
  data?: Record<string, unknown>,
): ControllerEvent {
  return { at, type, message, ...(instance ? { instance } : {}), ...(data ? { data } : {}) };
}

/** Records a pool event and logs it (warn for failures, info otherwise): both controllers' one way. */
export function recordPoolEvent(
  events: EventLog,
  log: Logger,
  at: number,
  type: EventType,
  instance: string | undefined,
  message: string,
  data?: Record<string, unknown>,
): void {
  events.push(poolEvent(at, type, instance, message, data));
  const level = type === 'instance_failed' || type === 'driver_error' ? 'warn' : 'info';
  log[level]({ event: type, instance, ...data }, message);
}

export class EventLog {
  private readonly items: ControllerEvent[] = [];
  private readonly listeners: Array<(e: ControllerEvent) => void> = [];

  constructor(private readonly capacity = 200) {}

  push(e: ControllerEvent): void {
    this.items.push(e);
    if (this.items.length > this.capacity) this.items.shift();
    for (const l of this.listeners) l(e);
  }

  recent(limit = 50): ControllerEvent[] {
    return this.items.slice(-limit);
  }

  subscribe(listener: (e: ControllerEvent) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i !== -1) this.listeners.splice(i, 1);
    };
  }
}
