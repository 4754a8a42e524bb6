// The runtime driver interface: how the controller runs instances on a runtime, declared by the controller
// that uses it. Two shapes, because runtimes differ in who owns replicas:
// - InstanceDriver ("start/stop this instance"): local processes, Docker Engine. The controller owns each
//   instance's life and names it (agent-<n>).
// - ReplicaDriver ("set desired replicas, list endpoints"): Docker Swarm, Kubernetes. The engine owns
//   replicas; the controller sets a count, watches endpoints appear and go, and drains through the router.

import type { Endpoint } from '../core/pool.js';

export type { Endpoint } from '../core/pool.js';
export { urlOf } from '../core/pool.js';

export interface InstanceSpec {
  /** Pool name of the instance: agent-<n>. */
  id: string;
  /** Extra environment for the instance (PORT and AGENT_ID are set by the driver). */
  env?: Record<string, string>;
}

export interface InstanceHandle {
  id: string;
  /** Unique per run: a restarted instance keeps its id but gets a new incarnation. */
  incarnation: string;
  endpoint: Endpoint;
  startedAt: number;
  /** Runtime-specific facts shown in status (pid, container id, node). */
  meta: Record<string, string | number>;
}

export interface ExitInfo {
  id: string;
  incarnation: string;
  code: number | null;
  signal: string | null;
  /** Last lines the instance wrote to stderr, when the runtime has them. */
  lastOutput: string[];
}

export interface ResourceUsage {
  /** CPU seconds used since the instance started (user + system). */
  cpuSeconds: number;
  /** Resident memory in bytes. */
  memoryBytes: number;
  /** When this was read (ms since epoch). */
  at: number;
}

interface DriverBase {
  /** Short name shown in status: process, docker, swarm, kubernetes, simulated. */
  readonly kind: string;
  /** CPU limit of one instance in cores (the autoscaler's CPU signal is a share of it). */
  readonly cpuLimitCores: number;
  /** CPU and memory of one instance, or undefined when it is gone or the runtime cannot tell. */
  usage(id: string): Promise<ResourceUsage | undefined>;
  /** Stops everything this driver started and releases its resources. */
  close(): Promise<void>;
}

export interface InstanceDriver extends DriverBase {
  readonly mode: 'instances';
  /** Starts one instance; resolves once the runtime has started it (not once it is healthy). */
  start(spec: InstanceSpec): Promise<InstanceHandle>;
  /** Graceful stop: SIGTERM (or the runtime's equivalent), `graceMs`, then a hard kill. Resolves when gone. */
  stop(id: string, graceMs: number): Promise<void>;
  /** Instances this driver owns that are already running (adopted after a controller restart). */
  adopt(): Promise<InstanceHandle[]>;
  /** Called once for every instance that exits, whether asked to or not. */
  onExit(listener: (exit: ExitInfo) => void): void;
  /**
   * Freezes a running instance: it keeps its memory and uses no CPU (SIGSTOP to its process group,
   * docker pause). stop() of a paused instance still drains it (the driver thaws it for its SIGTERM).
   */
  pause(id: string): Promise<void>;
  /** Thaws a paused instance; resolves once it runs again. */
  resume(id: string): Promise<void>;
  /**
   * Forgets every instance without stopping it, for another controller to adopt (a deposed leader).
   * Absent where instances cannot outlive this process (local processes).
   */
  detach?(): void;
}

/** A replica as the engine reports it: `terminating` is drained by the router. */
export type ReplicaCondition = 'starting' | 'ready' | 'terminating';

export interface Replica {
  /** The engine's name of it (task id, pod name): stable for its life. */
  id: string;
  /** Unique per run (a replaced replica gets a new one). */
  incarnation: string;
  /** Where the router reaches it; undefined while the engine has not placed it yet. */
  endpoint: Endpoint | undefined;
  condition: ReplicaCondition;
  meta: Record<string, string | number>;
}

/** What the engine runs now, and how many it was asked for (by us, a person or its own autoscaler). */
export interface ReplicaSnapshot {
  desired: number;
  replicas: Replica[];
}

export interface ReplicaDriver extends DriverBase {
  readonly mode: 'replicas';
  /**
   * Asks the engine for `count` replicas. `preferVictims` names the replicas to remove first when it
   * scales down: a hint, the engine decides (Swarm drains the chosen task; Kubernetes takes a
   * pod-deletion-cost).
   */
  scale(count: number, opts?: { preferVictims?: readonly string[] }): Promise<void>;
  /** Calls `listener` with every snapshot from now on (the current one first); returns the unsubscribe. */
  watch(listener: (snapshot: ReplicaSnapshot) => void): () => void;
  /**
   * Resolves once the engine has been read a first time after watch() (before that a snapshot may be
   * empty only because nothing was read yet): what a restarted controller adopts.
   */
  synced(): Promise<void>;
  /** Removes what this driver created on the engine (the service, the Deployment). */
  down?(): Promise<boolean>;
  /** What down() removes, in words: "swarm service ygg-agents". */
  readonly target: string;
}

export type RuntimeDriver = InstanceDriver | ReplicaDriver;
