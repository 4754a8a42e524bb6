// Conformance of the data plane at the edge, with raw sockets: what a hostile or unusual client sends
// must get a clear answer and never leak a slot, open a breaker or reach an agent twice. Each case
// reproduces a defect seen before (issue 9: "What was seen").
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Platform } from '../../src/platform.js';
import { logLines, metric, routerMetrics, settled, withCountingPlatform } from '../helpers/agents.js';
import { ON_HAPROXY } from '../helpers/platform.js';
import { collect, exchange, open, portOf } from '../helpers/raw.js';

/** Refused by HAProxy's HTTP/1 parser itself, before any rule of the configuration. */
const HAPROXY_PARSER_REFUSES = new Set([
  'absolute form, foreign authority',
  'duplicate Host',
  'unparsable header',
]);

interface Echo {
  agentId: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  bytes: number;
}

const errorCode = (body: string) => (JSON.parse(body) as { error: { code: string } }).error.code;

/** Every breaker is closed with no failure counted, and nothing was retried. */
async function breakersUntouched(p: Platform): Promise<void> {
  await settled(p);
  for (const [id, b] of Object.entries(p.router.breakerStates())) {
    assert.deepEqual([id, b.state, b.consecutiveFailures], [id, 'closed', 0], `breaker of ${id}`);
  }
  const text = await routerMetrics(p);
  assert.equal(metric(text, 'yggdrasil_router_retries_total', 'reason="unreached"'), undefined);
  assert.equal(metric(text, 'yggdrasil_router_retries_total', 'reason="failed"'), undefined);
}

describe('slots under pipelining', () => {
  it('pipelined requests behind an unfinished one, then a closed socket, leave no slot taken (240 connections)', async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '3', MAX_INSTANCES: '3', MAX_CONCURRENCY: '4', QUEUE_TIMEOUT_MS: '3000' },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(3, 15_000);
        const port = portOf(p.lbUrl);
        const body = JSON.stringify({ id: 'slow', workMs: 150 });
        const abandon = async () => {
          const s = await open(port);
          s.on('error', () => {});
          s.write(
            `POST /process HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
              'GET /api/behind HTTP/1.1\r\nHost: lb\r\n\r\nGET /api/behind2 HTTP/1.1\r\nHost: lb\r\n\r\n',
          );
          await new Promise((r) => setTimeout(r, 30));
          s.destroy();
        };
        for (let round = 0; round < 6; round++) await Promise.all(Array.from({ length: 40 }, abandon));
        await settled(p);
        // The pool still serves at its full capacity: 12 slow requests at once all get a slot.
        const answers = await Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            fetch(`${p.lbUrl}/process`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ id: `after-${i}`, workMs: 50 }),
            }).then((r) => r.status),
          ),
        );
        assert.deepEqual(answers, new Array(12).fill(200));
        await settled(p);
      },
    );
  });

  it('answers pipelined requests in order, each once, and takes one slot per connection at a time', async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '1', MAX_INSTANCES: '1', MAX_CONCURRENCY: '1', QUEUE_TIMEOUT_MS: '3000' },
      (dir) => ({ COUNT_LOG: join(dir, 'count.log') }),
      async (p, dir) => {
        await p.controller.waitForReady(1, 15_000);
        const req = (id: string, workMs: number) => {
          const b = JSON.stringify({ id, workMs });
          return `POST /process HTTP/1.1\r\nHost: lb\r\nContent-Type: application/json\r\nContent-Length: ${b.length}\r\n\r\n${b}`;
        };
        const answers = await exchange(portOf(p.lbUrl), req('a', 100) + req('b', 0) + req('c', 0), {
          count: 3,
        });
        assert.deepEqual(
          answers.map((a) => [a.status, (JSON.parse(a.body) as { id: string }).id]),
          [
            [200, 'a'],
            [200, 'b'],
            [200, 'c'],
          ],
        );
        // One connection never queued behind itself: nothing waited for a slot.
        const text = await routerMetrics(p);
        assert.equal(metric(text, 'yggdrasil_router_queue_wait_seconds_count'), 0);
        assert.deepEqual(
          logLines(join(dir, 'count.log')).map((l) => l[0]),
          ['a', 'b', 'c'],
        );
        await settled(p);
      },
    );
  });
});

describe('malformed requests are refused at the edge', () => {
  it('asterisk form, foreign absolute form, CONNECT, HTTP/1.0 chunked and duplicate Host get 400 JSON and blame no instance', async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '3', MAX_INSTANCES: '3', BREAKER_FAILURES: '2' },
      (dir) => ({ REQ_LOG: join(dir, 'req.log') }),
      async (p) => {
        await p.controller.waitForReady(3, 15_000);
        const port = portOf(p.lbUrl);
        const cases: Array<[string, string]> = [
          ['asterisk form', 'GET * HTTP/1.1\r\nHost: lb\r\n\r\n'],
          ['absolute form, foreign authority', 'GET http://evil.example/echo HTTP/1.1\r\nHost: lb\r\n\r\n'],
          ['CONNECT', 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n'],
          [
            'HTTP/1.0 with a chunked body',
            'POST /echo HTTP/1.0\r\nHost: lb\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
          ],
          ['duplicate Host', 'GET /echo HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n'],
          ['unparsable header', 'GET /echo HTTP/1.1\r\nHost: lb\r\nBad Header: x\r\n\r\n'],
        ];
        for (let round = 0; round < 3; round++) {
          for (const [name, raw] of cases) {
            const [res, ...more] = await exchange(port, raw, { count: 1 });
            assert.ok(res, `${name}: no answer`);
            assert.equal(res.status, 400, `${name}: ${res.status} ${res.body}`);
            // HAProxy 2.6's own parser answers its refusals with its built-in page (errorfile is not
            // used there); what its rules refuse gets the JSON (README: Data planes).
            if (!(ON_HAPROXY && HAPROXY_PARSER_REFUSES.has(name))) {
              assert.match(res.headers['content-type'] ?? '', /application\/json/, name);
              assert.equal(errorCode(res.body), 'YGG_ERR_BAD_REQUEST', name);
            }
            assert.equal(res.headers['x-yggdrasil-instance'], undefined, `${name} reached an instance`);
            assert.equal(more.length, 0);
          }
        }
        await breakersUntouched(p);
        // Every instance still takes traffic.
        const seen = new Set<string>();
        for (let i = 0; i < 60 && seen.size < 3; i++) {
          const res = await fetch(`${p.lbUrl}/api/ok`);
          assert.equal(res.status, 200);
          seen.add(res.headers.get('x-yggdrasil-instance') ?? '');
        }
        assert.equal(seen.size, 3);
      },
    );
  });

  it('OPTIONS * is answered by the router; absolute form naming the Host is served in origin form', async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '1', MAX_INSTANCES: '1' },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(1, 15_000);
        const port = portOf(p.lbUrl);
        const [options] = await exchange(port, 'OPTIONS * HTTP/1.1\r\nHost: lb\r\n\r\n', { count: 1 });
        assert.equal(options?.status, 200);
        assert.match(options?.headers.allow ?? '', /GET/);
        const authority = `127.0.0.1:${port}`;
        const [abs] = await exchange(
          port,
          `GET http://${authority}/echo?x=1 HTTP/1.1\r\nHost: ${authority}\r\n\r\n`,
          {
            count: 1,
          },
        );
        assert.equal(abs?.status, 200, abs?.body);
        const echo = JSON.parse(abs!.body) as Echo;
        assert.equal(echo.url, '/echo?x=1');
        assert.equal(echo.headers.host, authority);
        await breakersUntouched(p);
      },
    );
  });
});

describe('Expect: 100-continue', () => {
  it('a 2 MB upload that asks for 100-continue gets it, then reaches the agent whole', async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '1', MAX_INSTANCES: '1' },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(1, 15_000);
        const size = 2 * 1024 * 1024;
        const s = await open(portOf(p.lbUrl));
        const continued = new Promise<string>((resolve) =>
          s.once('data', (d: Buffer) => resolve(d.toString())),
        );
        s.write(
          `POST /echo HTTP/1.1\r\nHost: lb\r\nContent-Type: application/octet-stream\r\nContent-Length: ${size}\r\nExpect: 100-continue\r\n\r\n`,
        );
        assert.match(await continued, /^HTTP\/1\.1 100 Continue\r\n/);
        const answers = collect(s, { count: 1, timeoutMs: 10_000 });
        s.write(Buffer.alloc(size, 0x61));
        const [res] = await answers;
        assert.equal(res?.status, 200, res?.body);
        const echo = JSON.parse(res!.body) as Echo;
        assert.equal(echo.bytes, size);
        // HAProxy passes the expectation on, and the agent's server answers it: the client sees the same.
        if (!ON_HAPROXY)
          assert.equal(echo.headers.expect, undefined, 'the router answered the expectation itself');
        await breakersUntouched(p);
      },
    );
  });

  it('an upload over MAX_BODY_BYTES that asks for 100-continue is refused with 413 before the body is sent', async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '1', MAX_INSTANCES: '1', MAX_BODY_BYTES: '1000' },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(1, 15_000);
        const [res, ...more] = await exchange(
          portOf(p.lbUrl),
          'POST /echo HTTP/1.1\r\nHost: lb\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n',
          { count: 1 },
        );
        assert.equal(res?.status, 413);
        assert.equal(errorCode(res!.body), 'YGG_ERR_BODY_TOO_LARGE');
        assert.equal(more.length, 0);
        await breakersUntouched(p);
      },
    );
  });
});

describe('Host and forwarding headers', () => {
  const spoofed =
    'X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6;proto=https\r\n';

  it("the client's Host reaches the agent, and the router sets X-Forwarded-* and Forwarded over any client value", async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '1', MAX_INSTANCES: '1' },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(1, 15_000);
        const port = portOf(p.lbUrl);
        const [res] = await exchange(
          port,
          `GET /echo HTTP/1.1\r\nHost: public.example:8443\r\n${spoofed}\r\n`,
          { count: 1 },
        );
        const h = (JSON.parse(res!.body) as Echo).headers;
        assert.equal(h.host, 'public.example:8443');
        assert.equal(h['x-forwarded-for'], '127.0.0.1');
        assert.equal(h['x-forwarded-host'], 'public.example:8443');
        assert.equal(h['x-forwarded-proto'], 'http');
        if (ON_HAPROXY)
          assert.equal(h.forwarded, undefined, 'HAProxy drops a client’s Forwarded and sets none');
        else assert.equal(h.forwarded, 'for=127.0.0.1;host="public.example:8443";proto=http');

        // A redirect the agent builds from Host points back at the load balancer, not at the agent.
        const [redirect] = await exchange(port, `GET /redirect HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`, {
          count: 1,
        });
        assert.equal(redirect?.status, 307);
        assert.equal(redirect?.headers.location, `http://127.0.0.1:${port}/target/`);
      },
    );
  });

  it('from a peer in TRUSTED_PROXIES the client values are kept and extended', {
    skip: ON_HAPROXY && 'DATAPLANE=haproxy: TRUSTED_PROXIES not supported (README: Data planes)',
  }, async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '1', MAX_INSTANCES: '1', TRUSTED_PROXIES: '127.0.0.0/8,::1' },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(1, 15_000);
        const [res] = await exchange(
          portOf(p.lbUrl),
          `GET /echo HTTP/1.1\r\nHost: lb.internal\r\n${spoofed}\r\n`,
          { count: 1 },
        );
        const h = (JSON.parse(res!.body) as Echo).headers;
        assert.equal(h.host, 'lb.internal');
        assert.equal(h['x-forwarded-for'], '6.6.6.6, 127.0.0.1');
        assert.equal(h['x-forwarded-host'], 'evil.example');
        assert.equal(h['x-forwarded-proto'], 'https');
        assert.equal(h.forwarded, 'for=6.6.6.6;proto=https, for=127.0.0.1;host=lb.internal;proto=https');
      },
    );
  });

  it('the session id the router issues reaches the agent on that same first request', {
    skip: ON_HAPROXY && 'DATAPLANE=haproxy: no session cookie is issued (README: Data planes)',
  }, async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '2', MAX_INSTANCES: '2' },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(2, 15_000);
        const res = await fetch(`${p.lbUrl}/echo`);
        const cookie = res.headers.get('set-cookie') ?? '';
        const id = decodeURIComponent(/ygg_session=([^;]+)/.exec(cookie)?.[1] ?? '');
        assert.ok(id !== '', `no session cookie: ${cookie}`);
        const echo = (await res.json()) as Echo;
        assert.equal(echo.headers['x-session-id'], id);
        // A client's own X-Session-Id is passed as it is and no cookie is issued.
        const own = await fetch(`${p.lbUrl}/echo`, { headers: { 'x-session-id': 'mine' } });
        assert.equal(own.headers.get('set-cookie'), null);
        assert.equal(((await own.json()) as Echo).headers['x-session-id'], 'mine');
        // An agent's own cookies go out beside the router's (Node used to let them replace it).
        const both = await fetch(`${p.lbUrl}/cookie`);
        const cookies = both.headers.getSetCookie();
        assert.deepEqual(
          cookies.map((c) => c.split('=')[0]),
          ['agent_a', 'agent_b', 'ygg_session'],
          `Set-Cookie: ${cookies.join(' | ')}`,
        );
      },
    );
  });
});

describe('hop-by-hop headers of an answer', () => {
  it('are not passed on: those RFC 9110 names, and the names its Connection header lists', async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '1', MAX_INSTANCES: '1' },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(1, 15_000);
        const [res] = await exchange(
          portOf(p.lbUrl),
          'GET /hop HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n',
        );
        assert.ok(res, 'an answer');
        assert.equal(res.status, 200);
        assert.equal(res.headers['x-end'], '1', 'an end-to-end header goes on');
        if (ON_HAPROXY) {
          // HAProxy 2.6 drops none of these (the README's data-plane table says so).
          assert.equal(res.headers['x-hop'], '1');
          assert.equal(res.headers['proxy-authenticate'], 'Basic');
          return;
        }
        assert.equal(res.headers['x-hop'], undefined, 'a header its Connection lists is hop-by-hop');
        assert.equal(res.headers['proxy-authenticate'], undefined);
        assert.equal(res.headers.trailer, undefined);
        assert.doesNotMatch(
          res.headers.connection ?? '',
          /x-hop/i,
          'nor is the Connection header the agent sent',
        );
      },
    );
  });
});

describe('header injection', () => {
  it('a session cookie that decodes to CR LF never splits the request to the agent', async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '1', MAX_INSTANCES: '1' },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(1, 15_000);
        const port = portOf(p.lbUrl);
        // Decoded, the id would end the X-Session-Id line and smuggle a header and a second request.
        const evil = 'a%0d%0aX-Evil:%201%0d%0a%0d%0aGET%20/echo/smuggled%20HTTP/1.1%0d%0aHost:%20x';
        const answers = await exchange(
          port,
          `GET /echo HTTP/1.1\r\nHost: lb\r\nCookie: ygg_session=${evil}\r\nConnection: close\r\n\r\n`,
        );
        assert.equal(answers.length, 1, 'one answer');
        const [res] = answers;
        if (ON_HAPROXY) {
          // HAProxy passes the cookie as sent (encoded): nothing to split.
          assert.equal(res!.status, 200);
          assert.equal((JSON.parse(res!.body) as Echo).headers['x-evil'], undefined);
        } else {
          assert.equal(res!.status, 400, res!.body);
          assert.equal(errorCode(res!.body), 'YGG_ERR_BAD_REQUEST');
        }
        await breakersUntouched(p);
      },
    );
  });
});

describe('timeouts', () => {
  it('a GET that times out ran once, on one instance, and the client waited one REQUEST_TIMEOUT_MS', async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '3', MAX_INSTANCES: '3', REQUEST_TIMEOUT_MS: '400', SESSION_AFFINITY: 'false' },
      (dir) => ({ REQ_LOG: join(dir, 'req.log') }),
      async (p, dir) => {
        await p.controller.waitForReady(3, 15_000);
        const res = await fetch(`${p.lbUrl}/hang?id=t1`);
        assert.equal(res.status, 504);
        assert.equal(errorCode(await res.text()), 'YGG_ERR_TIMEOUT');
        await settled(p);
        assert.deepEqual(
          logLines(join(dir, 'req.log')).map((l) => l[0]),
          ['/hang?id=t1'],
          'the GET reached an agent more than once',
        );
        const text = await routerMetrics(p);
        assert.equal(metric(text, 'yggdrasil_router_retries_total', 'reason="failed"'), undefined);
      },
    );
  });

  it('a slow upload is cut at CLIENT_BODY_TIMEOUT_MS with 408, frees its slot and blames no instance', {
    skip:
      ON_HAPROXY && 'DATAPLANE=haproxy: CLIENT_BODY_TIMEOUT_MS bounds the head only (README: Data planes)',
  }, async () => {
    await withCountingPlatform(
      {
        MIN_INSTANCES: '1',
        MAX_INSTANCES: '1',
        MAX_CONCURRENCY: '2',
        CLIENT_BODY_TIMEOUT_MS: '500',
        QUEUE_TIMEOUT_MS: '20000',
      },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(1, 15_000);
        const port = portOf(p.lbUrl);
        const slow = async () => {
          const s = await open(port);
          const answer = collect(s, { count: 1, timeoutMs: 10_000 });
          s.write('POST /echo HTTP/1.1\r\nHost: lb\r\nContent-Length: 1000000\r\n\r\n');
          // A trickle: a byte every 100 ms, never idle for long, never done.
          const trickle = setInterval(() => s.writable && s.write('x'), 100);
          const [res] = await answer;
          clearInterval(trickle);
          return res;
        };
        const [a, b] = await Promise.all([slow(), slow()]);
        for (const r of [a, b]) {
          assert.equal(r?.status, 408, r?.body);
          assert.equal(errorCode(r!.body), 'YGG_ERR_CLIENT_TIMEOUT');
        }
        await breakersUntouched(p);
        const ok = await fetch(`${p.lbUrl}/echo`, { method: 'POST', body: 'hi' });
        assert.equal(ok.status, 200);
      },
    );
  });
});

describe('answers of an instance', () => {
  it("an agent's 500s do not open its breaker by default (gateway failures only), 503s do", {
    skip:
      ON_HAPROXY &&
      'DATAPLANE=haproxy: ejection is HAProxy’s error-limit on connection failures (README: Data planes)',
  }, async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '1', MAX_INSTANCES: '1', BREAKER_FAILURES: '3' },
      (dir) => ({ MODE_FILE: join(dir, 'mode') }),
      async (p, dir) => {
        await p.controller.waitForReady(1, 15_000);
        for (let i = 0; i < 6; i++) assert.equal((await fetch(`${p.lbUrl}/status/500`)).status, 500);
        await settled(p);
        assert.equal(p.router.breakerStates()['agent-1']?.state, 'closed');
        writeFileSync(join(dir, 'mode'), 'agent-1 503\n');
        for (let i = 0; i < 3; i++) assert.equal((await fetch(`${p.lbUrl}/api/x`)).status, 503);
        await settled(p);
        assert.equal(p.router.breakerStates()['agent-1']?.state, 'open');
      },
    );
  });
});
