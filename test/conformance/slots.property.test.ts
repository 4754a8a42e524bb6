// A property-based test (fast-check) of the slot lifecycle on real sockets: random interleavings of
// clients that pipeline and close, abort at any byte of their request, go away mid-answer, upload too
// slowly or ask for 100-continue, against agents that answer, reset, hang past the timeout or answer
// 503, while instances are drained and come back. Whatever happens, every slot is given back (in-flight
// returns to 0), the queue empties, and no agent ever sees more than MAX_CONCURRENCY requests at once.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { createLogger } from '../../src/core/logger.js';
import type { PoolMember } from '../../src/core/pool.js';
import { createLbServer } from '../../src/router/lb-server.js';
import { Router } from '../../src/router/router.js';
import { waitFor } from '../helpers/platform.js';
import { open } from '../helpers/raw.js';

const LIMIT = 2;
const REQUEST_TIMEOUT_MS = 150;

type Act = 'ok' | 'slow' | 'reset' | 'hang' | 'gateway' | 'stream';

interface FakeAgent {
  server: Server;
  port: number;
  inflight: number;
  peak: number;
}

/** An agent that does what the request's x-act header says. */
async function fakeAgent(): Promise<FakeAgent> {
  const a: FakeAgent = { server: createServer(), port: 0, inflight: 0, peak: 0 };
  a.server.on('request', (req, res) => {
    a.inflight++;
    a.peak = Math.max(a.peak, a.inflight);
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        a.inflight--;
      }
    };
    res.on('close', finish);
    req.resume();
    const act = (req.headers['x-act'] as Act | undefined) ?? 'ok';
    const after = (ms: number, fn: () => void) => setTimeout(fn, ms).unref();
    if (act === 'ok') after(1, () => res.end('ok'));
    else if (act === 'slow') after(40, () => res.end('slow'));
    else if (act === 'reset') after(5, () => req.socket.destroy());
    else if (act === 'gateway') res.writeHead(503).end('busy');
    else if (act === 'stream') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
      after(60, () => res.end('data: 2\n\n'));
    } // hang: never answers; the router's timeout ends it
  });
  await new Promise<void>((r) => a.server.listen(0, '127.0.0.1', () => r()));
  a.port = (a.server.address() as AddressInfo).port;
  return a;
}

type ClientOp =
  | { kind: 'request'; act: Act; delayMs: number }
  | { kind: 'pipelined'; acts: [Act, Act]; closeAfterMs: number; delayMs: number }
  | { kind: 'abort-upload'; bytes: number; delayMs: number }
  | { kind: 'leave-mid-answer'; act: Act; afterMs: number; delayMs: number }
  | { kind: 'slow-upload'; delayMs: number }
  | { kind: 'continue'; act: Act; delayMs: number };

type PoolOp = { kind: 'drain' | 'undrain'; agent: number; atMs: number };

const act = fc.constantFrom<Act>('ok', 'slow', 'reset', 'hang', 'gateway', 'stream');
const delay = fc.integer({ min: 0, max: 40 });
const clientOp: fc.Arbitrary<ClientOp> = fc.oneof(
  fc.record({ kind: fc.constant('request' as const), act, delayMs: delay }),
  fc.record({
    kind: fc.constant('pipelined' as const),
    acts: fc.tuple(act, act),
    closeAfterMs: fc.integer({ min: 0, max: 80 }),
    delayMs: delay,
  }),
  fc.record({
    kind: fc.constant('abort-upload' as const),
    bytes: fc.integer({ min: 0, max: 200_000 }),
    delayMs: delay,
  }),
  fc.record({
    kind: fc.constant('leave-mid-answer' as const),
    act,
    afterMs: fc.integer({ min: 0, max: 80 }),
    delayMs: delay,
  }),
  fc.record({ kind: fc.constant('slow-upload' as const), delayMs: delay }),
  fc.record({ kind: fc.constant('continue' as const), act, delayMs: delay }),
);
const poolOp: fc.Arbitrary<PoolOp> = fc.record({
  kind: fc.constantFrom('drain' as const, 'undrain' as const),
  agent: fc.integer({ min: 0, max: 2 }),
  atMs: fc.integer({ min: 0, max: 100 }),
});

const head = (a: Act, extra = '') => `GET /x HTTP/1.1\r\nHost: lb\r\nX-Act: ${a}\r\n${extra}\r\n`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs one client op to its end; resolves when its connection is closed. */
async function runClient(port: number, op: ClientOp): Promise<void> {
  await sleep(op.delayMs);
  const s = await open(port);
  s.on('error', () => {});
  s.on('data', () => {});
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  const end = (ms: number) => setTimeout(() => s.destroy(), ms).unref();
  switch (op.kind) {
    case 'request':
      s.write(head(op.act, 'Connection: close\r\n'));
      end(2000);
      break;
    case 'pipelined':
      s.write(head(op.acts[0]) + head(op.acts[1]));
      end(op.closeAfterMs);
      break;
    case 'abort-upload': {
      const declared = 200_000;
      s.write(`POST /x HTTP/1.1\r\nHost: lb\r\nX-Act: slow\r\nContent-Length: ${declared}\r\n\r\n`);
      s.write(Buffer.alloc(Math.min(op.bytes, declared - 1), 0x61));
      end(10);
      break;
    }
    case 'leave-mid-answer':
      s.write(head(op.act));
      end(op.afterMs);
      break;
    case 'slow-upload':
      s.write(
        'POST /x HTTP/1.1\r\nHost: lb\r\nX-Act: ok\r\nContent-Length: 100000\r\nConnection: close\r\n\r\nxx',
      );
      end(2000);
      break;
    case 'continue':
      s.write(
        `POST /x HTTP/1.1\r\nHost: lb\r\nX-Act: ${op.act}\r\nContent-Length: 70000\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
      );
      setTimeout(() => s.writable && s.write(Buffer.alloc(70_000, 0x62)), 10).unref();
      end(2000);
      break;
  }
  await closed;
}

describe('slot lifecycle (property-based, real sockets)', () => {
  let agents: FakeAgent[] = [];
  let router: Router;
  let lb: Server;
  let port = 0;
  let members: PoolMember[] = [];

  before(async () => {
    agents = await Promise.all([fakeAgent(), fakeAgent(), fakeAgent()]);
    router = new Router({
      maxConcurrency: LIMIT,
      maxBodyBytes: 1024 * 1024,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      clientBodyTimeoutMs: 150,
      queueMax: 20,
      queueTimeoutMs: 400,
      sessionAffinity: false,
      sessionTtlMs: 60_000,
      maxRetries: 2,
      breakerFailures: 3,
      breakerResetMs: 50,
      outlierStallMs: 0,
      logger: createLogger('silent'),
      pool: {
        onMembers: () => {},
        lookup: () => undefined,
        outlook: () => 'ready',
        demand: () => {},
        replace: () => {},
        probe: async () => undefined,
      },
    });
    members = agents.map((a, i) => ({
      id: `agent-${i + 1}`,
      incarnation: `inc-${i + 1}`,
      endpoint: { host: '127.0.0.1', port: a.port },
      state: 'ready' as const,
    }));
    router.upstreams.sync(members);
    lb = createLbServer({
      router,
      logger: createLogger('silent'),
      status: async () => ({}),
      health: () => ({ ok: true, body: {} }),
    });
    await new Promise<void>((r) => lb.listen(0, '127.0.0.1', () => r()));
    port = (lb.address() as AddressInfo).port;
  });

  after(async () => {
    lb.closeAllConnections();
    await new Promise((r) => lb.close(r));
    await router.close();
    for (const a of agents) {
      a.server.closeAllConnections();
      a.server.close();
    }
  });

  it('every slot comes back and the queue empties, whatever clients, agents and the pool do', async () => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(clientOp, { minLength: 1, maxLength: 14 }),
        fc.array(poolOp, { maxLength: 3 }),
        async (clients, pool) => {
          runs++;
          const state = members.map(() => 'ready' as 'ready' | 'draining');
          const poolDone = Promise.all(
            pool.map(async (op) => {
              await sleep(op.atMs);
              state[op.agent] = op.kind === 'drain' ? 'draining' : 'ready';
              router.upstreams.sync(members.map((m, i) => ({ ...m, state: state[i]! })));
            }),
          );
          await Promise.all([poolDone, ...clients.map((op) => runClient(port, op))]);
          router.upstreams.sync(members); // all ready again for the next run
          await waitFor(
            'every slot released and the queue empty',
            () => router.concurrency() === 0,
            3000,
            10,
          );
          for (const u of router.upstreams.all()) assert.equal(u.inflight, 0, `${u.id} holds a slot`);
          for (const a of agents) assert.ok(a.peak <= LIMIT, `an agent saw ${a.peak} requests at once`);
        },
      ),
      { numRuns: 30, interruptAfterTimeLimit: 60_000 },
    );
    assert.ok(runs >= 10, `only ${runs} runs`);
    // The hostile cases did happen: some requests reached agents and some broke.
    const text = await router.metrics.registry.metrics();
    assert.match(text, /yggdrasil_router_requests_total\{instance="agent-\d",code="200"\}/);
    assert.match(text, /code="499"/);
  });
});
