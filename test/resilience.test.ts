// Failure handling of the data plane on real processes: an agent killed under load (no POST runs
// twice, only its in-flight requests fail), retries away from an instance that refuses connections,
// and per-instance circuit breakers (open on 500s, traffic moves away, close after recovery, 503 when
// every breaker is open). The agents are test/fixtures/counting-agent.mjs, which logs every POST it
// receives to COUNT_LOG and answers 500 on /api/* while FAIL_FILE names it.
import assert from 'node:assert/strict';
import { unlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Platform } from '../src/platform.js';
import { logLines, metric, routerMetrics, settled, withCountingPlatform } from './helpers/agents.js';
import { isAlive, json, waitFor } from './helpers/platform.js';

const pidOf = (p: Platform, id: string) =>
  p.controller.status().instances.find((i) => i.id === id)?.meta.pid as number | undefined;

const portOf = (p: Platform, id: string) =>
  p.controller.status().instances.find((i) => i.id === id)?.meta.port as number | undefined;

const metrics = routerMetrics;
const withPlatform = withCountingPlatform;
const countLog = (file: string) => logLines(file) as Array<[string, string]>;

/** Whether a TCP connection to the port is refused (nothing listens there any more). */
const refuses = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });

const INSTANCE = 'x-yggdrasil-instance';

interface ErrorBody {
  error: { code: string; message: string };
}

const post = (p: Platform, id: string, workMs: number) =>
  fetch(`${p.lbUrl}/process`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id, workMs }),
  });

interface Answer {
  status: number;
  instance: string | null;
  body: string;
  /** The request was sent after the instance was killed. */
  sentAfterKill: boolean;
}

describe('resilience', () => {
  it('an agent killed mid-load: requests that had not reached it succeed elsewhere, no POST runs twice', async () => {
    const MAX_CONCURRENCY = 10;
    const N = 300;
    const WORKERS = 30;
    await withPlatform(
      {
        MIN_INSTANCES: '3',
        MAX_INSTANCES: '3',
        MAX_CONCURRENCY: String(MAX_CONCURRENCY),
      },
      (dir) => ({ COUNT_LOG: join(dir, 'count.log') }),
      async (p, dir) => {
        await p.controller.waitForReady(3, 15_000);
        const victim = 'agent-2';
        const victimPid = pidOf(p, victim)!;
        assert.ok(victimPid > 0);

        const answers: Array<Answer | { error: string } | undefined> = new Array(N);
        let next = 0;
        let done = 0;
        let killed = false;
        const worker = async () => {
          for (let i = next++; i < N; i = next++) {
            const sentAfterKill = killed;
            let answer: Answer | { error: string };
            try {
              const res = await post(p, `req-${i}`, 30);
              answer = {
                status: res.status,
                instance: res.headers.get(INSTANCE),
                body: await res.text(),
                sentAfterKill,
              };
            } catch (err) {
              answer = { error: String((err as { cause?: unknown }).cause ?? err) };
            }
            assert.equal(answers[i], undefined, `request ${i} answered twice`);
            answers[i] = answer;
            if (++done >= N / 3 && !killed) {
              killed = true;
              process.kill(victimPid, 'SIGKILL');
            }
          }
        };
        let timer: NodeJS.Timeout | undefined;
        const hung = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`only ${done} of ${N} requests answered after 40 s`)),
            40_000,
          );
        });
        try {
          await Promise.race([Promise.all(Array.from({ length: WORKERS }, worker)), hung]);
        } finally {
          clearTimeout(timer);
        }
        assert.equal(killed, true);

        // Exactly one answer each, every one a 200 or the documented 502 of the killed instance.
        const ok = new Map<string, string>();
        let failed = 0;
        for (const [i, a] of answers.entries()) {
          assert.ok(a !== undefined, `request ${i} got no answer`);
          assert.ok(!('error' in a), `request ${i} got no HTTP answer: ${'error' in a ? a.error : ''}`);
          if (a.status === 200) {
            const body = JSON.parse(a.body) as { id?: string; agentId: string };
            assert.equal(
              body.id,
              `req-${i}`,
              `request ${i} answered 200 by ${body.agentId}, which got no id`,
            );
            assert.equal(a.instance, body.agentId);
            ok.set(body.id!, body.agentId);
            continue;
          }
          failed++;
          assert.equal(a.status, 502, `request ${i}: unexpected answer ${a.status} ${a.body}`);
          assert.equal((JSON.parse(a.body) as ErrorBody).error.code, 'YGG_ERR_UPSTREAM');
          assert.equal(
            a.instance,
            victim,
            `request ${i} failed on ${a.instance}, not on the killed instance`,
          );
        }
        assert.ok(
          failed <= MAX_CONCURRENCY,
          `${failed} requests failed; only the ${MAX_CONCURRENCY} that could be in flight at the killed instance may`,
        );

        // No POST ran twice, and every 200 ran exactly once, on the instance that answered.
        const log = countLog(join(dir, 'count.log'));
        const runs = new Map<string, string[]>();
        for (const [id, agent] of log) runs.set(id, [...(runs.get(id) ?? []), agent]);
        const twice = [...runs].filter(([, agents]) => agents.length > 1);
        assert.deepEqual(twice, [], 'a POST ran more than once');
        for (const [id, agent] of ok) assert.deepEqual(runs.get(id), [agent], `${id} answered 200`);
        assert.ok(log.length <= N);

        // The load went on without the killed instance.
        const servedAfterKill = answers.filter(
          (a) => a && !('error' in a) && a.sentAfterKill && a.status === 200 && a.instance !== victim,
        ).length;
        assert.ok(
          servedAfterKill >= N / 4,
          `only ${servedAfterKill} requests sent after the kill served elsewhere`,
        );

        // The killed slot is replaced by a new process.
        await p.controller.waitForReady(3, 10_000);
        const replacement = pidOf(p, victim);
        assert.ok(replacement !== undefined && replacement !== victimPid && isAlive(replacement));
        assert.match(
          p.controller.status().instances.find((i) => i.id === victim)?.lastFailure?.reason ?? '',
          /SIGKILL/,
        );
      },
    );
  });

  it('GET requests are retried on another instance when an instance refuses connections', async () => {
    const BREAKER_FAILURES = 3;
    await withPlatform(
      {
        MIN_INSTANCES: '2',
        MAX_INSTANCES: '2',
        SESSION_AFFINITY: 'false',
        BREAKER_FAILURES: String(BREAKER_FAILURES),
        BREAKER_RESET_MS: '60000',
        // The controller must not notice and replace it during the test: only the router's retry acts.
        HEALTH_CHECK_INTERVAL: '60000',
      },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(2, 15_000);
        await refuseConnections(p, 'agent-1');
        const servedBefore =
          metric(await metrics(p), 'yggdrasil_router_requests_total', 'instance="agent-2",code="200"') ?? 0;
        for (let i = 0; i < 40; i++) {
          const res = await fetch(`${p.lbUrl}/api/r?i=${i}`);
          assert.equal(res.status, 200, `request ${i}: ${res.status}`);
          assert.equal(res.headers.get(INSTANCE), 'agent-2');
          assert.equal((await json<{ agentId: string }>(res)).agentId, 'agent-2');
        }
        await settled(p);
        // Two choices put about half of them on agent-1 first, until its breaker counted
        // BREAKER_FAILURES refused connections and took it out: exactly that many retries.
        const text = await metrics(p);
        assert.equal(metric(text, 'yggdrasil_router_retries_total', 'reason="unreached"'), BREAKER_FAILURES);
        assert.equal(metric(text, 'yggdrasil_router_retries_total', 'reason="failed"'), undefined);
        assert.equal(
          metric(text, 'yggdrasil_router_requests_total', 'instance="agent-2",code="200"'),
          servedBefore + 40,
        );
        assert.equal(
          metric(text, 'yggdrasil_router_requests_total', 'instance="agent-1",code="502"'),
          undefined,
        );
        assert.equal(p.router.breakerStates()['agent-1']?.state, 'open');
        assert.equal(p.router.breakerStates()['agent-2']?.state, 'closed');
      },
    );
  });

  it('POST requests that never reached an instance refusing connections are retried elsewhere, once', async () => {
    await withPlatform(
      {
        MIN_INSTANCES: '2',
        MAX_INSTANCES: '2',
        SESSION_AFFINITY: 'false',
        BREAKER_FAILURES: '1000',
        HEALTH_CHECK_INTERVAL: '60000',
      },
      (dir) => ({ COUNT_LOG: join(dir, 'count.log') }),
      async (p, dir) => {
        await p.controller.waitForReady(2, 15_000);
        await refuseConnections(p, 'agent-1');
        const N = 20;
        for (let i = 0; i < N; i++) {
          const res = await post(p, `post-${i}`, 0);
          const body = await res.text();
          assert.equal(res.status, 200, `post-${i}: ${res.status} ${body}`);
          assert.equal(res.headers.get(INSTANCE), 'agent-2');
        }
        await settled(p);
        const log = countLog(join(dir, 'count.log'));
        assert.deepEqual(
          log,
          Array.from({ length: N }, (_, i) => [`post-${i}`, 'agent-2']),
        );
        const retries = metric(await metrics(p), 'yggdrasil_router_retries_total', 'reason="unreached"') ?? 0;
        assert.ok(retries >= 1, 'no request was sent to agent-1 first: nothing was tested');
        // A healthy instance is not blamed for another instance's refused connections.
        assert.equal(p.router.breakerStates()['agent-2']?.consecutiveFailures, 0);
      },
    );
  });

  it('an agent answering 500s (BREAKER_COUNT_5XX=true) gets its breaker opened, traffic moves away, and it comes back after it recovers', async () => {
    const BREAKER_FAILURES = 3;
    // Long enough that the 20 requests of the open phase fit in the ejection on a loaded machine.
    const BREAKER_RESET_MS = 2000;
    await withPlatform(
      {
        MIN_INSTANCES: '2',
        MAX_INSTANCES: '2',
        SESSION_AFFINITY: 'false',
        BREAKER_FAILURES: String(BREAKER_FAILURES),
        BREAKER_RESET_MS: String(BREAKER_RESET_MS),
        BREAKER_COUNT_5XX: 'true',
      },
      (dir) => ({ FAIL_FILE: join(dir, 'fail') }),
      async (p, dir) => {
        const failFile = join(dir, 'fail');
        writeFileSync(failFile, 'agent-1\n');
        await p.controller.waitForReady(2, 15_000);
        const breaker = () => p.router.breakerStates()['agent-1']?.state;

        // Sequential requests: agent-1 answers 500 until its breaker opens after exactly BREAKER_FAILURES.
        let failures = 0;
        for (let i = 0; i < 200 && failures < BREAKER_FAILURES; i++) {
          const res = await fetch(`${p.lbUrl}/api/x?i=${i}`);
          const from = res.headers.get(INSTANCE);
          await res.arrayBuffer();
          await settled(p);
          if (from === 'agent-1') {
            assert.equal(res.status, 500);
            failures++;
            assert.equal(
              breaker(),
              failures < BREAKER_FAILURES ? 'closed' : 'open',
              `after ${failures} 500s`,
            );
          } else {
            assert.equal([from, res.status].join(' '), 'agent-2 200');
          }
        }
        assert.equal(failures, BREAKER_FAILURES);
        const openedAt = Date.now();

        // While open, everything goes to agent-2.
        for (let i = 0; i < 20; i++) {
          const res = await fetch(`${p.lbUrl}/api/open?i=${i}`);
          assert.equal(res.status, 200);
          assert.equal(res.headers.get(INSTANCE), 'agent-2');
          await res.arrayBuffer();
        }
        const status = await json<{ instances: Array<{ id: string; breaker: string | null }> }>(
          await fetch(`${p.controllerUrl}/status`),
        );
        assert.deepEqual(
          status.instances.map((i) => [i.id, i.breaker]),
          [
            ['agent-1', 'open'],
            ['agent-2', 'closed'],
          ],
        );
        const text = await metrics(p);
        assert.equal(metric(text, 'yggdrasil_router_breaker_state', 'instance="agent-1"'), 2);
        assert.equal(metric(text, 'yggdrasil_router_breaker_state', 'instance="agent-2"'), 0);
        assert.equal(
          metric(text, 'yggdrasil_router_requests_total', 'instance="agent-1",code="500"'),
          BREAKER_FAILURES,
        );
        assert.ok(
          Date.now() - openedAt < BREAKER_RESET_MS,
          'the open phase outlasted the ejection: inconclusive',
        );
        const opened = p.controller
          .status()
          .events.filter((e) => e.type === 'breaker' && e.instance === 'agent-1' && e.data?.to === 'open');
        assert.equal(opened.length, 1);
        assert.equal(opened[0]?.data?.ejectionMs, BREAKER_RESET_MS);

        // Recovery: once the ejection ends, one probe reaches agent-1 and closes its breaker.
        unlinkSync(failFile);
        await waitFor('the ejection to end', () => breaker() !== 'open', BREAKER_RESET_MS + 10_000);
        let back: Response | undefined;
        await waitFor(
          'a request to reach agent-1 again',
          async () => {
            const res = await fetch(`${p.lbUrl}/api/back`);
            await res.arrayBuffer();
            if (res.headers.get(INSTANCE) === 'agent-1') back = res;
            return back;
          },
          5000,
          0,
        );
        assert.equal(back?.status, 200);
        await settled(p);
        assert.equal(breaker(), 'closed');
        const transitions = p.controller
          .status()
          .events.filter((e) => e.type === 'breaker' && e.instance === 'agent-1')
          .map((e) => `${e.data?.from} → ${e.data?.to}`);
        assert.equal(transitions[0], 'closed → open');
        assert.equal(transitions.at(-1), 'half-open → closed');
      },
    );
  });

  it('the open → half-open change of a breaker is reported like the others (event and metric)', async () => {
    await withPlatform(
      {
        MIN_INSTANCES: '1',
        MAX_INSTANCES: '1',
        BREAKER_FAILURES: '1',
        BREAKER_RESET_MS: '300',
        BREAKER_COUNT_5XX: 'true',
      },
      (dir) => ({ FAIL_FILE: join(dir, 'fail') }),
      async (p, dir) => {
        writeFileSync(join(dir, 'fail'), 'agent-1\n');
        await p.controller.waitForReady(1, 15_000);
        const first = await fetch(`${p.lbUrl}/api/x`);
        assert.equal(first.status, 500);
        await first.arrayBuffer();
        await settled(p);
        assert.equal(p.router.breakerStates()['agent-1']?.state, 'open');
        unlinkSync(join(dir, 'fail'));
        await waitFor('the ejection to end', () => p.router.breakerStates()['agent-1']?.state !== 'open');
        const probe = await fetch(`${p.lbUrl}/api/x`);
        assert.equal(probe.status, 200);
        await probe.arrayBuffer();
        await settled(p);
        assert.equal(p.router.breakerStates()['agent-1']?.state, 'closed');
        const transitions = p.controller
          .status()
          .events.filter((e) => e.type === 'breaker')
          .map((e) => `${e.data?.from} → ${e.data?.to}`);
        assert.deepEqual(transitions, ['closed → open', 'open → half-open', 'half-open → closed']);
        const name = 'yggdrasil_router_breaker_transitions_total';
        assert.equal(metric(await metrics(p), name, 'instance="agent-1",to="half-open"'), 1);
      },
    );
  });

  it('when every breaker is open the router answers 503 YGG_ERR_CIRCUIT_OPEN fast', async () => {
    await withPlatform(
      {
        MIN_INSTANCES: '1',
        MAX_INSTANCES: '1',
        BREAKER_FAILURES: '2',
        BREAKER_RESET_MS: '5000',
        BREAKER_COUNT_5XX: 'true',
        QUEUE_TIMEOUT_MS: '5000',
      },
      (dir) => ({ FAIL_FILE: join(dir, 'fail') }),
      async (p, dir) => {
        writeFileSync(join(dir, 'fail'), 'agent-1\n');
        await p.controller.waitForReady(1, 15_000);
        for (let i = 0; i < 2; i++) {
          const res = await fetch(`${p.lbUrl}/api/x`);
          assert.equal(res.status, 500);
          assert.equal(res.headers.get(INSTANCE), 'agent-1');
          await res.arrayBuffer();
          await settled(p);
        }
        assert.equal(p.router.breakerStates()['agent-1']?.state, 'open');

        const started = performance.now();
        const res = await fetch(`${p.lbUrl}/api/x`);
        const elapsed = performance.now() - started;
        assert.equal(res.status, 503);
        assert.equal((await json<ErrorBody>(res)).error.code, 'YGG_ERR_CIRCUIT_OPEN');
        const retryAfter = Number(res.headers.get('retry-after'));
        assert.ok(retryAfter >= 1 && retryAfter <= 5, `Retry-After: ${res.headers.get('retry-after')}`);
        assert.equal(res.headers.get(INSTANCE), null, 'no instance was reached');
        // QUEUE_TIMEOUT_MS is 5000: an answer that waited in the queue comes after it.
        assert.ok(elapsed < 4000, `answered after ${Math.round(elapsed)} ms: it waited in the queue`);
        const text = await metrics(p);
        assert.equal(metric(text, 'yggdrasil_router_requests_total', 'instance="none",code="503"'), 1);
        assert.equal(metric(text, 'yggdrasil_router_requests_total', 'instance="agent-1",code="500"'), 2);
      },
    );
  });
});

/**
 * Makes an instance stop accepting connections while its process lives on (SIGUSR2 to the counting
 * agent), and waits until the router holds no connection to it: every new attempt is then refused.
 */
async function refuseConnections(p: Platform, id: string): Promise<void> {
  // Warm the router's connections to both instances first, so closing them is part of the test.
  for (let i = 0; i < 10; i++) await (await fetch(`${p.lbUrl}/api/warm`)).arrayBuffer();
  await settled(p);
  const pid = pidOf(p, id)!;
  const port = portOf(p, id)!;
  process.kill(pid, 'SIGUSR2');
  await waitFor(`${id} to refuse connections`, () => refuses(port));
  await waitFor(
    `the router to drop its connections to ${id}`,
    () => p.router.upstreams.get(id)?.pool.size === 0,
  );
  assert.ok(isAlive(pid), `${id} should still run`);
}
