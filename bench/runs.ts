// Runs that outlive the connection (issue 13): how fast the run log records an agent's event stream
// (one run, the agent sending 200 000 events as fast as it can), next to the same stream proxied to a
// client as a plain request in the same run; and what an active run costs in memory (200 runs held
// open at once, the platform's RSS before and after). The platform is `yggdrasil start` pinned to the
// server core, the agent test/fixtures/sse-agent.mjs.
// Run alone: npx tsx bench/runs.ts [--quick]
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { rssBytes, startPlatformProcess } from './procs.js';
import type { BenchSection } from './section.js';
import { median, round } from './stats.js';

const SSE_AGENT = new URL('../test/fixtures/sse-agent.mjs', import.meta.url).pathname;

interface RunView {
  state: string;
  startedAt: string | null;
  finishedAt: string | null;
  answer?: { events?: number };
}

async function runView(lb: string, id: string, dispatcher: Agent): Promise<RunView> {
  return ((await (await request(`${lb}/runs/${id}`, { dispatcher })).body.json()) as { run: RunView }).run;
}

async function startRun(lb: string, path: string, dispatcher: Agent): Promise<string> {
  const res = await request(`${lb}${path}`, {
    method: 'POST',
    headers: { prefer: 'respond-async' },
    body: '{}',
    dispatcher,
  });
  const body = (await res.body.json()) as { run: { id: string } };
  if (res.statusCode !== 202) throw new Error(`expected 202, got ${res.statusCode}`);
  return body.run.id;
}

export async function run(opts: { quick: boolean }): Promise<BenchSection> {
  const events = opts.quick ? 5000 : 200_000;
  const held = 200;
  const rounds = opts.quick ? 1 : 5;
  const p = await startPlatformProcess({
    MIN_INSTANCES: '1',
    MAX_INSTANCES: '1',
    MAX_CONCURRENCY: String(held + 20),
    AGENT_COMMAND: `${process.execPath} ${SSE_AGENT}`,
  });
  const dispatcher = new Agent({ connections: 16 });
  try {
    // Memory per active run first, on a platform that has done nothing else yet (after the streams
    // below, a collection could shrink the heap while the runs are held).
    await sleep(1000);
    const before = await rssBytes(p.pid);
    const ids = await Promise.all(
      Array.from({ length: held }, () => startRun(p.lbUrl, '/stream?n=100000&ms=1000', dispatcher)),
    );
    await sleep(2500);
    const after = await rssBytes(p.pid);
    const states = await Promise.all(ids.map((id) => runView(p.lbUrl, id, dispatcher)));
    const running = states.filter((s) => s.state === 'running').length;
    await Promise.all(
      ids.map((id) =>
        request(`${p.lbUrl}/runs/${id}`, { method: 'DELETE', dispatcher }).then((r) => r.body.dump()),
      ),
    );
    const logged: number[] = [];
    const plain: number[] = [];
    for (let r = 0; r < rounds; r++) {
      // A plain streamed request: the client reads every byte.
      const t0 = performance.now();
      const res = await request(`${p.lbUrl}/stream?n=${events}&ms=0`, { dispatcher });
      // Every byte read (body.dump() stops after 128 KiB: the figure was of that, not of the stream),
      // and the events counted: four line ends each.
      let lineEnds = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lineEnds++;
      }
      if (lineEnds / 4 !== events) throw new Error(`plain stream: ${lineEnds / 4} events of ${events}`);
      plain.push(events / ((performance.now() - t0) / 1000));
      // The same stream as a run: recorded in the log, no client reading.
      const id = await startRun(p.lbUrl, `/stream?n=${events}&ms=0`, dispatcher);
      let v = await runView(p.lbUrl, id, dispatcher);
      while (!v.finishedAt) {
        await sleep(20);
        v = await runView(p.lbUrl, id, dispatcher);
      }
      if (v.state !== 'done' || v.answer?.events !== events)
        throw new Error(`run ${id}: ${JSON.stringify(v)}`);
      logged.push(events / ((Date.parse(v.finishedAt) - Date.parse(v.startedAt!)) / 1000));
    }

    const perRunKB = (after - before) / held / 1024;
    const loggedMedian = median(logged);
    const plainMedian = median(plain);
    return {
      title: 'Runs that outlive the connection',
      rows: [
        {
          measure: `one agent stream of ${events} events`,
          'plain request (events/s)': Math.round(plainMedian),
          'recorded as a run (events/s)': Math.round(loggedMedian),
          'run / plain': round(loggedMedian / plainMedian, 2),
        },
        {
          measure: `${held} runs active at once (${running} running when measured)`,
          'plain request (events/s)': '',
          'recorded as a run (events/s)': '',
          'run / plain': `${round(perRunKB, 1)} KiB of RSS per active run`,
        },
      ],
      notes: [
        `The agent (test/fixtures/sse-agent.mjs) writes ${events} events of ~40 bytes as fast as the connection takes them. Plain: a client reads them through the router. Run: POST with Prefer: respond-async, the router records every event in the run log (split and numbered), finishedAt − startedAt; medians of ${rounds}.`,
        `Memory: ${held} runs of a stream that sends one event a second, started at once on a platform that has done nothing else; the platform's RSS 2.5 s later minus before, per run (the router's slot and upstream connection, the run's record and its first events). They are then cancelled with DELETE. An RSS delta this small is within the allocator's noise (from −3 to 40 KiB per run in five runs here): an upper bound, not a measure.`,
      ],
      // The memory figure stays in its row only: an RSS delta this small is within the allocator's
      // noise and can come out below 0 (seen under CI load), which no figure may be.
      figures: {
        runEventsPerSecond: Math.round(loggedMedian),
        plainEventsPerSecond: Math.round(plainMedian),
      },
    };
  } finally {
    await dispatcher.close();
    await p.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await run({ quick: process.argv.includes('--quick') }), null, 2));
}
