// The benchmark sections in their quick form: each runs, returns a well-formed section, and what it
// measured happened (the pool scaled up, the footprint was read, 1000 simulated instances got ready).
// Only correctness and shape: no absolute time is asserted, this machine's speed is not under test.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BenchSection } from '../bench/section.js';
import { ensureImages } from './helpers/docker.js';
import { requireService } from './helpers/services.js';

function assertShape(s: BenchSection, title: string): void {
  assert.equal(s.title, title);
  assert.ok(s.rows.length > 0, 'rows non-empty');
  const keys = Object.keys(s.rows[0]!);
  assert.ok(keys.length > 1, 'rows have columns');
  for (const row of s.rows) {
    assert.deepEqual(Object.keys(row), keys, `every row has the columns ${keys.join(', ')}`);
    for (const v of Object.values(row)) assert.ok(typeof v === 'string' || typeof v === 'number');
  }
  assert.ok(Array.isArray(s.notes) && s.notes.every((n) => typeof n === 'string' && n.length > 0));
  assert.ok(Object.keys(s.figures).length > 0, 'figures non-empty');
  for (const [k, v] of Object.entries(s.figures)) {
    assert.ok(Number.isFinite(v) && v >= 0, `figure ${k}=${v} is finite and not negative`);
  }
  assert.deepEqual(JSON.parse(JSON.stringify(s)), s, 'the section survives JSON');
}

/** These figures must be measured (> 0); others, such as idle CPU, may honestly be 0. */
function assertPositive(s: BenchSection, keys: string[]): void {
  for (const k of keys) {
    const v = s.figures[k];
    assert.ok(v !== undefined && Number.isFinite(v) && v > 0, `figure ${k}=${v} was measured (> 0)`);
  }
}

describe('benchmark sections (quick)', () => {
  it('Engines: 1 → 5 → 1 on every runtime this machine has, each measured', {
    timeout: 900_000,
  }, async () => {
    // A fresh machine has no image yet: the sections measure Docker only where it has one.
    if (!requireService('docker')) ensureImages();
    const { run } = await import('../bench/engines.js');
    const sections = await run({ quick: true });
    assert.equal(sections.length, 1, 'the quick run leaves the rollout out');
    const s = sections[0]!;
    assertShape(s, 'Scale 1 → 5 → 1 on each runtime');
    assertPositive(s, ['processUpMs']);
    // Under CI every runtime is there (.ci/run starts dockerd and a swarm, and builds the control plane).
    if (process.env.CI === 'true') assertPositive(s, ['dockerUpMs', 'swarmUpMs', 'kubernetesUpMs']);
  });

  it('Compression and the cache: every case served, brotli shrinks the bytes, hits spare the agent (both data planes)', {
    timeout: 240_000,
  }, async () => {
    const { run } = await import('../bench/shaping.js');
    const s = await run({ quick: true });
    assertShape(s, 'Compression and the response cache');
    assert.equal(s.figures.errors, 0, 'no error in any case');
    assertPositive(s, ['case0Rps', 'case2Rps', 'case4Rps', 'case0AgentCpuUs']);
    assert.ok(s.figures.brBytesRatio! < 0.5, `brotli bytes / identity bytes = ${s.figures.brBytesRatio}`);
    // Same run: a hit never reaches the agent, so its CPU per answer is far below a miss's.
    assert.ok(s.figures.case4AgentCpuUs! * 4 < s.figures.case0AgentCpuUs!, JSON.stringify(s.figures));
    if (requireService('haproxy') === false) {
      assert.ok(
        s.figures.haproxyGzipBytesRatio! < 0.5,
        `haproxy gzip bytes ratio ${s.figures.haproxyGzipBytesRatio}`,
      );
      assert.ok(s.figures.case8AgentCpuUs! * 4 < s.figures.case6AgentCpuUs!, JSON.stringify(s.figures));
    }
  });

  it('HAProxy failover: the Node router served the port meanwhile, no agent restarted', {
    skip: requireService('haproxy'),
    timeout: 120_000,
  }, async () => {
    const { run } = await import('../bench/failover.js');
    const s = await run({ quick: true });
    assertShape(s, 'HAProxy failover (DATAPLANE=haproxy)');
    assertPositive(s, ['sent', 'nodeServedMs']);
    assert.equal(s.figures.agentsRestarted, 0);
    // Most requests are answered: only those HAProxy held, or sent before the Node router listened.
    assert.ok(s.figures.failed! * 4 < s.figures.sent!, JSON.stringify(s.figures));
    // From the Node router's start on nothing fails: not while it serves, not at the handover back
    // (HAProxy takes its socket; its keep-alive connections are not cut under a client reusing one).
    assert.equal(s.figures.failedAfterNode, 0, JSON.stringify(s.figures));
  });

  it('Runs: an agent stream recorded as a run, and the memory of active runs, each measured', {
    timeout: 120_000,
  }, async () => {
    const { run } = await import('../bench/runs.js');
    const s = await run({ quick: true });
    assertShape(s, 'Runs that outlive the connection');
    assertPositive(s, ['runEventsPerSecond', 'plainEventsPerSecond']);
  });

  it('Sessions: a warm claim, a cold start and a resume on each instance driver, each measured', {
    timeout: 900_000,
  }, async () => {
    if (!requireService('docker')) ensureImages();
    const { run } = await import('../bench/sessions.js');
    const s = await run({ quick: true });
    assertShape(s, 'Dedicated sessions: warm claim, cold start, resume');
    assertPositive(s, ['processWarmClaimMs', 'processColdStartMs', 'processResumeRequestMs']);
    if (process.env.CI === 'true')
      assertPositive(s, ['dockerWarmClaimMs', 'dockerColdStartMs', 'dockerResumeRequestMs']);
    // The warm pool is the point: a claim beats a cold start (a ratio in one run, no absolute time).
    assert.ok(s.figures.processWarmClaimMs! < s.figures.processColdStartMs!, 'warm claim < cold start');
  });

  it('Scaling: a load step scales the pool up, and a request after scale to zero is answered (both data planes)', {
    timeout: 120_000,
  }, async () => {
    const { run } = await import('../bench/scaling.js');
    const s = await run({ quick: true });
    assertShape(s, 'Scaling');
    assertPositive(s, [
      'process.scaleUpDecisionMs',
      'process.firstNewReadyMs',
      'process.poolAtTargetMs',
      'process.loadRequests',
      'process.scaleFromZeroMs',
      'process.coldStartMs',
    ]);
    assert.equal(s.figures['process.loadFailedRequests'], 0, 'every load request answered 200');
    // DATAPLANE=haproxy (haproxy is there under CI): its show stat drives the autoscaler, and from
    // zero the Node router is the activator.
    if (process.env.CI === 'true') {
      assertPositive(s, ['haproxy.scaleUpDecisionMs', 'haproxy.poolAtTargetMs', 'haproxy.scaleFromZeroMs']);
      assert.equal(
        s.figures['haproxy.loadFailedRequests'],
        0,
        'every load request through HAProxy answered 200',
      );
    }
    // The milestones come in order: decided, then a new instance, then the whole pool.
    assert.ok(s.figures['process.scaleUpDecisionMs']! <= s.figures['process.firstNewReadyMs']!);
    assert.ok(s.figures['process.firstNewReadyMs']! <= s.figures['process.poolAtTargetMs']!);
    assert.ok(
      s.rows.every((r) => String(r.driver).startsWith('process')),
      'quick runs only the process driver',
    );
  });

  it('Footprint: the platform child process and its agents are measured, and all of them are gone after', {
    timeout: 60_000,
  }, async () => {
    const { run } = await import('../bench/footprint.js');
    const s = await run({ quick: true });
    assertShape(s, 'Footprint');
    assertPositive(s, [
      'agents',
      'idleRssMB',
      'loadRssMB',
      'loadCpuPercent',
      'cpuPerRequestUs',
      'requestsServed',
      'requestsPerSecond',
      'agentIdleRssMB',
    ]);
    assert.ok(
      !s.notes.some((n) => /outlived|did not exit/.test(n)),
      `the platform stopped cleanly: ${s.notes.join(' ')}`,
    );
  });

  it('Control plane at scale: 1000 simulated instances get ready and each decision is timed', {
    timeout: 60_000,
  }, async () => {
    const { run } = await import('../bench/control-plane.js');
    const s = await run({ quick: true });
    assertShape(s, 'Control plane at scale');
    assert.equal(s.figures.instances, 1000);
    assertPositive(s, [
      'timeToAllReadyMs',
      'tickReconcileMedianMs',
      'tickReconcileP99Ms',
      'reconcileSteadyMedianMs',
      'reconcileHalveMedianMs',
      'kpaDecideMedianMs',
      'statusMedianMs',
      'heapDeltaMB',
      'rssMB',
      'rssPeakMB',
    ]);
    assert.ok(s.figures.tickReconcileMedianMs! <= s.figures.tickReconcileP99Ms!);
    for (const k of ['decisionLoopGoalMet', 'rssGoalMet']) assert.ok([0, 1].includes(s.figures[k]!), k);
  });

  it('Data plane: no slot is held after abandoned pipelined requests, and bad agents are ejected', {
    timeout: 120_000,
  }, async () => {
    const { run } = await import('../bench/data-plane.js');
    const [slots, eject] = await run({ quick: true });
    assertShape(slots!, 'Slots after abandoned pipelined requests');
    assert.equal(slots!.figures.slotsHeld, 0);
    assert.equal(slots!.figures.servedAfter, 30);
    assertShape(eject!, 'Ejecting a bad agent (defaults)');
    assert.equal(eject!.figures.hungEjectedRuns, 1, 'the hung agent was ejected');
    assert.equal(eject!.figures.frozenEjectedRuns, 1, 'the frozen agent was ejected');
  });
});
