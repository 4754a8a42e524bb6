// Scaling: how fast the autoscaler reacts to a load step (first scale-up decision, first new instance
// ready, pool at its target) and how long the first request waits after scale to zero, on the process
// driver, with DATAPLANE=haproxy on processes (HAProxy's `show stat` is then the autoscaler's signal,
// and the Node router the activator from zero) and, when dockerd answers, on containers.
// Run alone: npx tsx bench/scaling.ts [--quick]
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { loadPlatformConfig } from '../src/core/config.js';
import type { ControllerEvent } from '../src/core/events.js';
import { createLogger } from '../src/core/logger.js';
import { type Platform, startPlatform } from '../src/platform.js';
import { makeDriver } from './cold-start.js';
import type { BenchSection } from './section.js';
import { median, round } from './stats.js';

type DriverKind = 'process' | 'docker';

/** What is measured: a driver, and the data plane in front of it. */
interface Variant {
  /** The row's label, and the figures' prefix. */
  name: 'process' | 'docker' | 'haproxy';
  driver: DriverKind;
  env: Record<string, string>;
}

const MAX_CONCURRENCY = 10;
const TARGET_UTILIZATION = 0.5;
const TARGET_PER_INSTANCE = MAX_CONCURRENCY * TARGET_UTILIZATION;
const MAX_INSTANCES = 4;
/** Closed-loop workers of the load step: 4× one instance's target. */
const WORKERS = 4 * TARGET_PER_INSTANCE;
/** What the step needs: ceil(WORKERS / target), within MAX_INSTANCES. */
const EXPECTED = Math.min(MAX_INSTANCES, Math.ceil(WORKERS / TARGET_PER_INSTANCE));
const PANIC_WINDOW_MS = 1000;
const WORK = { workMs: 100 };

/** Test-like settings: short windows so a step and a return to zero fit in seconds. */
const BASE_ENV: Record<string, string> = {
  LB_PORT: '0',
  CONTROLLER_PORT: '0',
  LOG_LEVEL: 'silent',
  HEALTH_CHECK_INTERVAL: '1000',
  STOP_GRACE_MS: '2000',
  DRAIN_TIMEOUT_MS: '5000',
  RESTART_BACKOFF_MS: '100',
  RESTART_BACKOFF_MAX_MS: '2000',
  MAX_CONCURRENCY: String(MAX_CONCURRENCY),
  TARGET_UTILIZATION: String(TARGET_UTILIZATION),
  // Concurrency alone decides, so the figures are the KPA path's; CPU is a separate signal.
  TARGET_CPU: '0',
};

/** Starts the platform in this process on `kind`, with its own Docker network and owner for docker. */
async function boot(
  variant: Variant,
  env: Record<string, string>,
): Promise<{ p: Platform; stop: () => Promise<void> }> {
  const kind = variant.driver;
  const cfg = loadPlatformConfig({ ...BASE_ENV, ...variant.env, ...env }, undefined);
  const logger = createLogger(cfg.LOG_LEVEL);
  if (kind === 'process') {
    const p = await startPlatform(cfg, { logger });
    return { p, stop: () => p.stop() };
  }
  const { driver, cleanup } = makeDriver('docker');
  let p: Platform;
  try {
    p = await startPlatform(cfg, { logger, driver });
  } catch (err) {
    await cleanup();
    throw err;
  }
  return {
    p,
    stop: async () => {
      try {
        await p.stop();
      } finally {
        await cleanup();
      }
    },
  };
}

export interface LoadOutcome {
  requests: number;
  /** Answers by HTTP status; 0 = no answer (connection error). */
  statuses: Record<string, number>;
}

/**
 * `workers` closed loops of one request each, back to back, until `until()` or `deadline` (ms since
 * epoch). One connection per worker, closed at the end.
 */
export async function closedLoop(opts: {
  url: string;
  method?: 'GET' | 'POST';
  body?: unknown;
  workers: number;
  deadline: number;
  until?: () => boolean;
}): Promise<LoadOutcome> {
  const dispatcher = new Agent({ connections: opts.workers, pipelining: 1 });
  const out: LoadOutcome = { requests: 0, statuses: {} };
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  const until = opts.until ?? (() => false);
  try {
    await Promise.all(
      Array.from({ length: opts.workers }, async () => {
        while (Date.now() < opts.deadline && !until()) {
          let status = 0;
          try {
            const res = await request(opts.url, {
              dispatcher,
              method: opts.method ?? (body === undefined ? 'GET' : 'POST'),
              ...(body !== undefined && { body, headers: { 'content-type': 'application/json' } }),
            });
            await res.body.dump();
            status = res.statusCode;
          } catch {
            await sleep(10);
          }
          out.requests++;
          out.statuses[status] = (out.statuses[status] ?? 0) + 1;
        }
      }),
    );
  } finally {
    await dispatcher.close();
  }
  return out;
}

interface StepRun {
  decisionMs: number;
  firstReadyMs: number;
  atTargetMs: number;
  load: LoadOutcome;
}

/** One load step on a fresh pool of 1: times from the step to each milestone, from controller events. */
async function loadStep(variant: Variant): Promise<StepRun> {
  const kind = variant.name;
  const { p, stop } = await boot(variant, {
    MIN_INSTANCES: '1',
    MAX_INSTANCES: String(MAX_INSTANCES),
    STABLE_WINDOW_MS: '6000',
    PANIC_WINDOW_MS: String(PANIC_WINDOW_MS),
    SCALE_INTERVAL_MS: '250',
  });
  let unsubscribe = () => {};
  try {
    await p.controller.waitForReady(1, 60_000);
    // Idle samples fill the windows first, so the step is a step.
    await sleep(PANIC_WINDOW_MS);
    const seen: ControllerEvent[] = [];
    let decisionAt: number | undefined;
    let firstReadyAt: number | undefined;
    let atTargetAt: number | undefined;
    const start = Date.now();
    unsubscribe = p.controller.events.subscribe((e) => {
      if (e.at < start) return;
      if (e.type === 'scaled') seen.push(e);
      if (e.type === 'scaled' && decisionAt === undefined && Number(e.data?.to) > Number(e.data?.from)) {
        decisionAt = e.at;
      }
      if (e.type === 'instance_ready' && firstReadyAt === undefined) firstReadyAt = e.at;
      // Events are pushed synchronously as the state changes, so the counts are those of this moment.
      if (
        atTargetAt === undefined &&
        p.controller.desiredInstances === EXPECTED &&
        p.controller.readyCount() === EXPECTED
      ) {
        atTargetAt = e.at;
      }
    });
    const load = await closedLoop({
      url: `${p.lbUrl}/process`,
      body: WORK,
      workers: WORKERS,
      deadline: start + 60_000,
      // Half a second at the target shows the pool holds it.
      until: () => atTargetAt !== undefined && Date.now() >= atTargetAt + 500,
    });
    if (decisionAt === undefined || firstReadyAt === undefined || atTargetAt === undefined) {
      throw new Error(
        `${kind}: the load step did not reach ${EXPECTED} ready within 60 s; scaling events: ${seen.map((e) => e.message).join('; ')}`,
      );
    }
    return {
      decisionMs: decisionAt - start,
      firstReadyMs: firstReadyAt - start,
      atTargetMs: atTargetAt - start,
      load,
    };
  } finally {
    unsubscribe();
    await stop();
  }
}

interface ZeroRun {
  firstResponseMs: number;
  coldStartMs: number;
}

/** Scale from zero, `reps` times on one pool: wait until no instance is left, then time one request. */
async function scaleFromZero(variant: Variant, reps: number): Promise<ZeroRun[]> {
  const kind = variant.name;
  const { p, stop } = await boot(variant, {
    MIN_INSTANCES: '0',
    MAX_INSTANCES: '2',
    SCALE_TO_ZERO_GRACE_MS: '300',
    STABLE_WINDOW_MS: '1000',
    PANIC_WINDOW_MS: '500',
    SCALE_INTERVAL_MS: '100',
  });
  const runs: ZeroRun[] = [];
  try {
    // An untimed first request, so every timed one follows a real scale down to zero.
    const warm = await request(`${p.lbUrl}/process`, {
      method: 'POST',
      body: JSON.stringify({ input: 'warm' }),
      headers: { 'content-type': 'application/json' },
    });
    await warm.body.dump();
    for (let i = 0; i < reps; i++) {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const s = p.controller.status();
        if (s.instances.length === 0 && s.desiredInstances === 0) break;
        if (Date.now() > deadline) throw new Error(`${kind}: the pool did not scale to zero within 60 s`);
        await sleep(20);
      }
      const t0 = Date.now();
      const res = await request(`${p.lbUrl}/process`, {
        method: 'POST',
        body: JSON.stringify({ input: 'wake' }),
        headers: { 'content-type': 'application/json' },
      });
      await res.body.dump();
      const firstResponseMs = Date.now() - t0;
      if (res.statusCode !== 200) throw new Error(`${kind}: the wake request answered ${res.statusCode}`);
      const ready = p.controller.events
        .recent(200)
        .find((e) => e.type === 'instance_ready' && e.at >= t0 && typeof e.data?.coldStartMs === 'number');
      runs.push({ firstResponseMs, coldStartMs: Number(ready?.data?.coldStartMs ?? Number.NaN) });
    }
  } finally {
    await stop();
  }
  return runs;
}

function works(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore', timeout: 15_000 });
    return true;
  } catch {
    return false;
  }
}

export async function run(opts: { quick: boolean }): Promise<BenchSection> {
  const variants: Variant[] = [{ name: 'process', driver: 'process', env: {} }];
  const notes: string[] = [];
  if (works('haproxy', ['-v']))
    variants.push({ name: 'haproxy', driver: 'process', env: { DATAPLANE: 'haproxy' } });
  else notes.push('no haproxy here: DATAPLANE=haproxy was not measured (apt-get install haproxy).');
  if (!opts.quick) {
    if (works('docker', ['info'])) variants.push({ name: 'docker', driver: 'docker', env: {} });
    else notes.push('`docker info` failed: the docker driver was not measured.');
  }
  const rows: BenchSection['rows'] = [];
  const figures: Record<string, number> = {};
  const add = (driver: Variant['name'], measurement: string, key: string, samples: number[]) => {
    const ok = samples.filter(Number.isFinite);
    rows.push({
      driver: driver === 'haproxy' ? 'process, DATAPLANE=haproxy' : driver,
      measurement,
      runs: ok.length,
      'median ms': round(median(ok)),
      'min ms': round(Math.min(...ok)),
      'max ms': round(Math.max(...ok)),
    });
    figures[`${driver}.${key}`] = round(median(ok));
  };
  for (const variant of variants) {
    const driver = variant.name;
    const stepReps = opts.quick ? 1 : 3;
    const steps: StepRun[] = [];
    for (let i = 0; i < stepReps; i++) steps.push(await loadStep(variant));
    add(
      driver,
      'load step → first scale-up decision',
      'scaleUpDecisionMs',
      steps.map((s) => s.decisionMs),
    );
    add(
      driver,
      'load step → first new instance ready',
      'firstNewReadyMs',
      steps.map((s) => s.firstReadyMs),
    );
    add(
      driver,
      `load step → pool at target (${EXPECTED} ready = desired)`,
      'poolAtTargetMs',
      steps.map((s) => s.atTargetMs),
    );
    const requests = steps.reduce((n, s) => n + s.load.requests, 0);
    const failed = steps.reduce((n, s) => n + s.load.requests - (s.load.statuses[200] ?? 0), 0);
    figures[`${driver}.loadRequests`] = requests;
    figures[`${driver}.loadFailedRequests`] = failed;
    notes.push(
      `${driver}: ${stepReps} load step(s), ${requests} requests during the steps, ${failed} not answered 200.`,
    );

    const zeroReps = opts.quick ? 1 : driver === 'docker' ? 3 : 5;
    const zero = await scaleFromZero(variant, zeroReps);
    add(
      driver,
      'scale from zero → first response',
      'scaleFromZeroMs',
      zero.map((z) => z.firstResponseMs),
    );
    add(
      driver,
      'scale from zero: of which instance cold start',
      'coldStartMs',
      zero.map((z) => z.coldStartMs),
    );
  }
  notes.unshift(
    `Load step: a fresh pool of 1 (MIN_INSTANCES=1, MAX_INSTANCES=${MAX_INSTANCES}, MAX_CONCURRENCY=${MAX_CONCURRENCY}, TARGET_UTILIZATION=${TARGET_UTILIZATION} → target ${TARGET_PER_INSTANCE} per instance; STABLE_WINDOW_MS=6000, PANIC_WINDOW_MS=${PANIC_WINDOW_MS}, SCALE_INTERVAL_MS=250, TARGET_CPU=0), idle for one panic window, then ${WORKERS} closed-loop workers POST /process ${JSON.stringify(WORK)} (4× one instance's target). Times are from the step to the controller's events: the first 'scaled' upwards, the first instance_ready, and the moment ready = desired = ${EXPECTED}.`,
    'Scale from zero: after one untimed request, MIN_INSTANCES=0, SCALE_TO_ZERO_GRACE_MS=300, STABLE_WINDOW_MS=1000, PANIC_WINDOW_MS=500, SCALE_INTERVAL_MS=100; after the pool has no instance left, one POST /process is timed from send to complete answer (the router holds it while the activator starts an instance).',
  );
  return { title: 'Scaling', rows, notes, figures };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await run({ quick: process.argv.includes('--quick') }), null, 2));
}
