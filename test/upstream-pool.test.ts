// The router's upstream client (src/router/h1) against real sockets: Node HTTP servers and raw TCP
// servers that misbehave on purpose. Each case names the behaviour undici gave the router before.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from 'node:net';
import { PassThrough, Readable, Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import type { UpstreamError, UpstreamRequest } from '../src/router/h1/exchange.js';
import { UpstreamPool } from '../src/router/h1/upstream-pool.js';

const servers: Array<Server | TcpServer> = [];
after(() => {
  for (const s of servers) s.close();
});

async function listen<T extends Server | TcpServer>(s: T): Promise<{ server: T; port: number }> {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return { server: s, port: (s.address() as { port: number }).port };
}

function http(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  return listen(createServer(handler));
}

function tcp(onSocket: (s: Socket) => void) {
  return listen(createTcpServer(onSocket));
}

interface Result {
  status?: number;
  headers?: Record<string, string | string[]>;
  body: string;
  err?: UpstreamError;
}

const base: UpstreamRequest = {
  method: 'GET',
  path: '/',
  headers: { host: 'test' },
  body: null,
  headersTimeoutMs: 5000,
  bodyTimeoutMs: 5000,
};

/** One exchange, its answer collected in a Writable (slow when `sinkDelayMs`). */
function send(pool: UpstreamPool, req: Partial<UpstreamRequest> = {}, sinkDelayMs = 0): Promise<Result> {
  return new Promise((resolve) => {
    const out: Result = { body: '' };
    pool.dispatch(
      { ...base, ...req },
      {
        onHead(status, headers) {
          out.status = status;
          out.headers = headers;
          return new Writable({
            highWaterMark: 1024,
            write(chunk, _enc, cb) {
              out.body += chunk.toString();
              if (sinkDelayMs) setTimeout(cb, sinkDelayMs);
              else cb();
            },
          });
        },
        onDone(err) {
          if (err) out.err = err;
          resolve(out);
        },
      },
    );
  });
}

const pools: UpstreamPool[] = [];
function pool(port: number): UpstreamPool {
  const p = new UpstreamPool({ host: '127.0.0.1', port, connectTimeoutMs: 1000 });
  pools.push(p);
  return p;
}
after(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

describe('upstream pool', () => {
  it('reuses one keep-alive connection for requests in turn', async () => {
    let connections = 0;
    const { server, port } = await http((req, res) => {
      req.resume();
      req.on('end', () => res.end(`you sent ${req.method} ${req.url}`));
    });
    server.on('connection', () => connections++);
    const p = pool(port);
    for (let i = 0; i < 20; i++) {
      const r = await send(p, { method: 'POST', path: `/n/${i}`, body: Buffer.from('{}') });
      assert.equal(r.body, `you sent POST /n/${i}`);
    }
    assert.equal(connections, 1);
    assert.equal(p.size, 1);
  });

  it('closes an idle connection before the Keep-Alive hint runs out (no reuse of a closing one)', async () => {
    const { server, port } = await http((_req, res) => res.end('ok'));
    server.keepAliveTimeout = 1500; // the answer says Keep-Alive: timeout=1
    const p = pool(port);
    assert.equal((await send(p)).body, 'ok');
    assert.equal(p.size, 1);
    await new Promise((r) => setTimeout(r, 900));
    assert.equal(p.size, 0, 'closed at half the 1 s hint');
    assert.equal((await send(p)).body, 'ok');
  });

  it('refused: ECONNREFUSED (the router retries it elsewhere)', async () => {
    const { server, port } = await http(() => {});
    await new Promise<void>((r) => server.close(() => r()));
    const r = await send(pool(port));
    assert.equal(r.err?.code, 'ECONNREFUSED');
  });

  it('an answer that does not start in time: UPSTREAM_HEADERS_TIMEOUT, and the connection is closed', async () => {
    let closed = false;
    const { port } = await tcp((s) => {
      s.resume(); // reads (and so sees the router's FIN)
      s.on('close', () => (closed = true));
    });
    const started = Date.now();
    const r = await send(pool(port), { headersTimeoutMs: 200 });
    assert.equal(r.err?.code, 'UPSTREAM_HEADERS_TIMEOUT');
    assert.ok(Date.now() - started >= 200, 'not before the timeout');
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(closed, 'the connection was closed');
  });

  it('a body that stops mid-way: UPSTREAM_BODY_TIMEOUT, the sink cut', async () => {
    const { port } = await tcp((s) => {
      s.once('data', () => s.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhal'));
    });
    const r = await send(pool(port), { bodyTimeoutMs: 200 });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'hal');
    assert.equal(r.err?.code, 'UPSTREAM_BODY_TIMEOUT');
  });

  it('an instance that dies mid-answer: UPSTREAM_CLOSED, never a whole answer', async () => {
    const { port } = await tcp((s) => {
      s.once('data', () => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhal'));
    });
    const r = await send(pool(port));
    assert.equal(r.err?.code, 'UPSTREAM_CLOSED');
  });

  it('a malformed answer: UPSTREAM_BAD_RESPONSE', async () => {
    const { port } = await tcp((s) => s.once('data', () => s.end('SSH-2.0-OpenSSH_9\r\n\r\n')));
    const r = await send(pool(port));
    assert.equal(r.err?.code, 'UPSTREAM_BAD_RESPONSE');
  });

  it('streams a body of unknown length in chunked coding', async () => {
    const { port } = await http((req, res) => {
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('end', () => res.end(`${req.headers['transfer-encoding']} ${n}`));
    });
    const body = Readable.from(
      (function* () {
        for (let i = 0; i < 1000; i++) yield Buffer.alloc(16 * 1024, 97);
      })(),
    );
    const r = await send(pool(port), { method: 'POST', body });
    assert.equal(r.body, `chunked ${1000 * 16 * 1024}`, 'every byte, past the socket buffer (backpressure)');
  });

  it('a streamed body shorter than its Content-Length: UPSTREAM_CONTENT_LENGTH_MISMATCH (the client)', async () => {
    const { port } = await http((req) => req.resume());
    const body = Readable.from([Buffer.from('12345')]);
    const r = await send(pool(port), {
      method: 'POST',
      body,
      headers: { host: 't', 'content-length': '10' },
    });
    assert.equal(r.err?.code, 'UPSTREAM_CONTENT_LENGTH_MISMATCH');
  });

  it('a large answer through a slow sink arrives whole (backpressure pauses the socket)', async () => {
    const big = 'x'.repeat(2 * 1024 * 1024);
    const { port } = await http((_req, res) => res.end(big));
    const r = await send(pool(port), {}, 1);
    assert.equal(r.err, undefined);
    assert.equal(r.body.length, big.length);
  });

  it('a client slower than the body timeout is no instance timeout (the wait stops while the sink is full)', async () => {
    const { port } = await http((_req, res) => res.end('y'.repeat(256 * 1024)));
    // Each write to the sink takes 150 ms: the socket stays paused longer than bodyTimeoutMs.
    const r = await send(pool(port), { bodyTimeoutMs: 100 }, 150);
    assert.equal(r.err, undefined);
    assert.equal(r.body.length, 256 * 1024);
  });

  it('abort closes the connection to the instance', async () => {
    let serverSawClose = false;
    const { port } = await http((req) => req.socket.on('close', () => (serverSawClose = true)));
    const p = pool(port);
    const done = new Promise<UpstreamError | undefined>((resolve) => {
      const ex = p.dispatch(base, { onHead: () => new PassThrough(), onDone: resolve });
      setTimeout(() => ex.abort(), 100);
    });
    assert.equal((await done)?.code, 'UPSTREAM_ABORTED');
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(serverSawClose);
    assert.equal(p.size, 0);
  });

  it('HEAD, 204 and Set-Cookie repeated', async () => {
    const { port } = await http((req, res) => {
      if (req.url === '/204') {
        res.writeHead(204).end();
        return;
      }
      res.setHeader('set-cookie', ['a=1', 'b=2']);
      res.end('body');
    });
    const p = pool(port);
    const head = await send(p, { method: 'HEAD' });
    assert.equal(head.body, '');
    assert.deepEqual(head.headers?.['set-cookie'], ['a=1', 'b=2']);
    assert.equal((await send(p, { path: '/204' })).status, 204);
    assert.equal((await send(p)).body, 'body', 'the connection still works after both');
  });

  it('close() lets an exchange in flight finish, then refuses new ones: UPSTREAM_POOL_CLOSED', async () => {
    const { port } = await http((_req, res) => setTimeout(() => res.end('late'), 200));
    const p = pool(port);
    const inFlight = send(p);
    await new Promise((r) => setTimeout(r, 50));
    const closed = p.close();
    assert.equal((await send(p)).err?.code, 'UPSTREAM_POOL_CLOSED');
    assert.equal((await inFlight).body, 'late');
    await closed;
    assert.equal(p.size, 0);
  });
});
