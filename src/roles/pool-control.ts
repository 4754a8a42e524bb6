// What the compositions (platform.ts, the controller role) need of a control plane, declared here by
// them: the instance controller (processes, Docker) and the replica controller (Swarm, Kubernetes)
// both provide it.
import type { Registry } from 'prom-client';
import type { ControllerStatus, LoadSource } from '../controller/controller.js';
import type { ScalingLimits } from '../controller/scaling-limits.js';
import type { BackgroundErrorHandler } from '../core/background.js';
import type { EventLog } from '../core/events.js';
import type { InstanceState, PoolMember, PoolOutlook } from '../core/pool.js';

export interface PoolControl {
  readonly events: EventLog;
  readonly metrics: { registry: Registry };
  readonly backgroundError: BackgroundErrorHandler;
  readonly desiredInstances: number;
  start(): Promise<void>;
  /** Drains and stops the pool (what `npm start`'s Ctrl-C does). */
  stop(): Promise<void>;
  /** Lets the pool go without touching it (a deposed leader). */
  abandon(): Promise<void>;
  onPoolChange(listener: (members: PoolMember[]) => void): void;
  members(): PoolMember[];
  member(id: string): { state: InstanceState } | undefined;
  outlook(): PoolOutlook;
  replace(id: string, reason: string): void;
  checkNow(id: string): Promise<boolean | undefined>;
  setLoadSource(load: LoadSource): void;
  status(): ControllerStatus;
  readyCount(): number;
  usageOfReady(): ReadonlyArray<{ cpu: number | undefined }>;
  setDesired(count: number, reason: string, data?: Record<string, unknown>): void;
  scalingLimits(): ScalingLimits;
  setScalingLimits(next: ScalingLimits, by: string): void;
  drainInstance(id: string, restart: boolean, by: string): 'accepted' | 'unknown' | 'owned' | InstanceState;
  waitForReady(count: number, timeoutMs: number): Promise<void>;
}
