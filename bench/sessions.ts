// Dedicated sessions (issue 13), on each instance driver here (process; docker when dockerd and the
// agent image are there): a new session's first request when it claims a warm instance (WARM_INSTANCES=1,
// the pool refilled and quiet before each), against one that needs a cold start (WARM_INSTANCES=0), in
// the same run; and a paused session's next request (the resume) against a request to a running one.
// The platform is `yggdrasil start` with SESSION_MODE=dedicated, SESSION_IDLE_PAUSE_MS=300, pinned to
// the server core.
// Run alone: npx tsx bench/sessions.ts [--quick]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { type PlatformProcess, startPlatformProcess } from './procs.js';
import type { BenchSection } from './section.js';
import { median, round } from './stats.js';

type Kind = 'process' | 'docker';

interface Status {
  instances: Array<{ id: string; state: string; session?: string | null }>;
  events: Array<{ type: string; instance?: string; data?: { resumeMs?: number } }>;
}

function hasDocker(): boolean {
  try {
    execFileSync('docker', ['image', 'inspect', 'yggdrasil/agent:latest'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function status(p: PlatformProcess): Promise<Status> {
  return (await (await fetch(`${p.controllerUrl}/status`)).json()) as Status;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`bench sessions: not within ${timeoutMs} ms: ${what}`);
    await sleep(20);
  }
}

/** One request of a session; its latency (ms) and the instance that answered. */
async function timed(p: PlatformProcess, session: string): Promise<{ ms: number; instance: string }> {
  const t0 = performance.now();
  const res = await fetch(`${p.lbUrl}/process`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-session-id': session },
    body: '{}',
  });
  await res.arrayBuffer();
  const ms = performance.now() - t0;
  if (res.status !== 200) throw new Error(`bench sessions: session ${session} got ${res.status}`);
  return { ms, instance: res.headers.get('x-yggdrasil-instance') ?? '' };
}

interface KindResult {
  /** First requests of new sessions. */
  first: number[];
  resume: number[];
  running: number[];
}

async function measure(kind: Kind, rounds: number, warmInstances: number): Promise<KindResult> {
  const owner = `ygg-bench-${randomBytes(3).toString('hex')}`;
  const p = await startPlatformProcess({
    DRIVER: kind,
    DOCKER_OWNER: owner,
    DOCKER_NETWORK: owner,
    SESSION_MODE: 'dedicated',
    MIN_INSTANCES: String(warmInstances),
    MAX_INSTANCES: String(rounds + 2),
    WARM_INSTANCES: String(warmInstances),
    SESSION_IDLE_PAUSE_MS: '300',
    SESSION_IDLE_DELETE_MS: '0',
    HEALTH_CHECK_INTERVAL: '1000',
    STARTUP_PROBE_INTERVAL_MS: '10',
    STOP_GRACE_MS: '2000',
    DRAIN_TIMEOUT_MS: '2000',
  });
  const out: KindResult = { first: [], resume: [], running: [] };
  try {
    // The client's connection and the router's code paths warmed first (what is measured is the claim).
    for (let i = 0; i < 20; i++) await (await fetch(`${p.lbUrl}/health`)).arrayBuffer();
    const sessions: string[] = [];
    /** Each session's instance (/status names a session only by its tag). */
    const instances: string[] = [];
    for (let r = 0; r < rounds; r++) {
      // Quiet first: nothing starting, and (warm) the warm instance ready.
      let warmId = '';
      await until('the pool to settle', async () => {
        const s = await status(p);
        warmId = s.instances.find((i) => i.state === 'ready' && i.session === null)?.id ?? '';
        return !s.instances.some((i) => i.state === 'starting') && (warmInstances === 0 || warmId !== '');
      });
      await sleep(200);
      const id = `bench-${r}`;
      sessions.push(id);
      const first = await timed(p, id);
      if (warmInstances > 0 && first.instance !== warmId)
        throw new Error(`bench sessions: ${id} did not get the warm instance ${warmId}`);
      out.first.push(first.ms);
      instances.push(first.instance);
    }
    // Every session idles past SESSION_IDLE_PAUSE_MS: paused. Then each one's next request resumes it,
    // and a second request (running again) is the comparison.
    await until('every session paused', async () => {
      const s = await status(p);
      return instances.every((id) => s.instances.some((i) => i.id === id && i.state === 'paused'));
    });
    for (const id of sessions) {
      out.resume.push((await timed(p, id)).ms);
      out.running.push((await timed(p, id)).ms);
    }
    return out;
  } finally {
    await p.stop();
    // The Docker driver keeps its network for the next run to adopt: a bench run has none.
    if (kind === 'docker') {
      try {
        execFileSync('docker', ['network', 'rm', owner], { stdio: 'ignore' });
      } catch {}
    }
  }
}

export async function run(opts: { quick: boolean }): Promise<BenchSection> {
  const rounds = opts.quick ? 2 : 5;
  const kinds: Kind[] = hasDocker() ? ['process', 'docker'] : ['process'];
  const rows: BenchSection['rows'] = [];
  const figures: Record<string, number> = {};
  for (const kind of kinds) {
    const r = await measure(kind, rounds, 1);
    const c = await measure(kind, rounds, 0);
    const warm = median(r.first);
    const cold = median(c.first);
    const resume = median([...r.resume, ...c.resume]);
    const running = median([...r.running, ...c.running]);
    rows.push({
      driver: kind,
      'new session, warm instance (ms)': round(warm, 1),
      'new session, cold start (ms)': round(cold, 1),
      'cold / warm': round(cold / warm, 1),
      'request that resumes a paused session (ms)': round(resume, 1),
      'request to a running session (ms)': round(running, 1),
    });
    figures[`${kind}WarmClaimMs`] = round(warm, 2);
    figures[`${kind}ColdStartMs`] = round(cold, 2);
    figures[`${kind}ResumeRequestMs`] = round(resume, 2);
    figures[`${kind}RunningRequestMs`] = round(running, 2);
  }
  return {
    title: 'Dedicated sessions: warm claim, cold start, resume',
    rows,
    notes: [
      `Warm: WARM_INSTANCES=1; each of ${rounds} new sessions is sent once the warm instance is ready and nothing starts, and claims it (the pool then refills behind it). Cold: the same with WARM_INSTANCES=0, each new session waits for its instance to start and pass its health check. First request of the session (POST /process), as the client sees it; medians.`,
      `Then every session idles past SESSION_IDLE_PAUSE_MS=300 and is paused (SIGSTOP of the process group; docker pause). Its next request resumes it (SIGCONT; docker unpause) and is answered; a second request right after is the running comparison. Medians over ${2 * rounds} sessions.`,
      `Goals (issue 13): a warm claim under 50 ms on the process driver and under 100 ms on Docker.${kinds.includes('docker') ? '' : ' Docker was not measured here: no dockerd or yggdrasil/agent image.'}`,
    ],
    figures,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await run({ quick: process.argv.includes('--quick') }), null, 2));
}
