// Real clients through the load balancer, against real agents (issue 9): curl with its own
// Expect: 100-continue, undici streaming both ways, the ws library, socket.io-client over long polling
// (which needs affinity) then WebSocket, Python's httpx, and a FastAPI/uvicorn agent whose redirects
// must point back at the load balancer.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { io } from 'socket.io-client';
import { request } from 'undici';
import WebSocket from 'ws';
import type { Platform } from '../../src/platform.js';
import { quote, settled, withCountingPlatform } from '../helpers/agents.js';
import { bootPlatform, ON_HAPROXY, waitFor } from '../helpers/platform.js';
import { DEBIAN_PYTHON, requireService } from '../helpers/services.js';

const exec = promisify(execFile);
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

async function withPlatform(env: Record<string, string>, ready: number, fn: (p: Platform) => Promise<void>) {
  const p = await bootPlatform({ MIN_INSTANCES: String(ready), MAX_INSTANCES: String(ready), ...env });
  try {
    await p.controller.waitForReady(ready, 20_000);
    await fn(p);
  } finally {
    await p.stop();
  }
}

describe('curl', () => {
  it('uploads 3 MB (curl sends Expect: 100-continue itself) and gets the whole answer', {
    skip: requireService('curl'),
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ygg-curl-'));
    try {
      const file = join(dir, 'upload.bin');
      writeFileSync(file, Buffer.alloc(3 * 1024 * 1024, 0x63));
      await withCountingPlatform(
        { MIN_INSTANCES: '2', MAX_INSTANCES: '2' },
        () => ({}),
        async (p) => {
          await p.controller.waitForReady(2, 15_000);
          const { stdout, stderr } = await exec('curl', [
            '-sS',
            '-v',
            '--fail-with-body',
            '-H',
            'content-type: application/octet-stream',
            '--data-binary',
            `@${file}`,
            `${p.lbUrl}/echo`,
          ]);
          assert.match(stderr, /> Expect: 100-continue/i, 'curl asked for 100-continue');
          assert.match(stderr, /< HTTP\/1\.1 100 Continue/);
          const echo = JSON.parse(stdout) as { bytes: number };
          assert.equal(echo.bytes, 3 * 1024 * 1024);
          await settled(p);
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Node clients', () => {
  it('undici: a streamed chunked upload and a streamed SSE answer', async () => {
    await withCountingPlatform(
      { MIN_INSTANCES: '1', MAX_INSTANCES: '1' },
      () => ({}),
      async (p) => {
        await p.controller.waitForReady(1, 15_000);
        const chunks = Array.from({ length: 40 }, (_, i) => Buffer.alloc(4096, 0x30 + (i % 10)));
        const up = await request(`${p.lbUrl}/echo`, { method: 'POST', body: Readable.from(chunks) });
        assert.equal(up.statusCode, 200);
        assert.equal(((await up.body.json()) as { bytes: number }).bytes, 40 * 4096);
        const sse = await request(`${p.lbUrl}/sse?n=4`);
        assert.equal(sse.headers['content-type'], 'text/event-stream');
        const text = await sse.body.text();
        assert.deepEqual(
          [...text.matchAll(/^id: (\d+)$/gm)].map((m) => m[1]),
          ['1', '2', '3', '4'],
        );
        await settled(p);
      },
    );
  });

  it('ws: a WebSocket to the reference agent, echoed through the router, holding one slot while open', async () => {
    await withPlatform({}, 2, async (p) => {
      const ws = new WebSocket(`${p.lbUrl.replace('http', 'ws')}/ws`);
      const first = await new Promise<string>((resolve, reject) => {
        ws.once('message', (d) => resolve(String(d)));
        ws.once('error', reject);
      });
      const hello = JSON.parse(first) as { agentId: string };
      assert.match(hello.agentId, /^agent-\d$/);
      await waitFor('the open WebSocket to hold a slot', () => p.inflight(hello.agentId) === 1, 5000);
      const echoed = new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));
      ws.send('ping through the router');
      assert.equal(await echoed, 'ping through the router');
      ws.close();
      await new Promise((r) => ws.once('close', r));
      await settled(p);
    });
  });

  it('socket.io-client: long polling stays on one instance (affinity), then upgrades to WebSocket', async () => {
    const command = [quote(process.execPath), quote(fixture('socketio-agent.mjs'))].join(' ');
    await withPlatform({ AGENT_COMMAND: command }, 3, async (p) => {
      const socket = io(p.lbUrl, {
        transports: ['polling', 'websocket'],
        withCredentials: true,
        reconnection: false,
      });
      try {
        const hello = await new Promise<{ agentId: string }>((resolve, reject) => {
          socket.once('hello', resolve);
          socket.once('connect_error', reject);
        });
        await new Promise<void>((resolve) => {
          if (socket.io.engine.transport.name === 'websocket') resolve();
          else socket.io.engine.once('upgrade', () => resolve());
        });
        for (let i = 0; i < 5; i++) {
          const ack = (await socket.timeout(5000).emitWithAck('echo', i)) as {
            agentId: string;
            message: number;
          };
          assert.deepEqual(ack, { agentId: hello.agentId, message: i });
        }
        assert.equal(socket.io.engine.transport.name, 'websocket');
      } finally {
        socket.close();
      }
    });
  });
});

describe('Python', { skip: requireService('fastapi') }, () => {
  const agent = `${DEBIAN_PYTHON} ${quote(fixture('fastapi_agent.py'))}`;

  it("a FastAPI agent's trailing-slash redirect points at the load balancer, and it sees the client's Host", async () => {
    await withPlatform({ AGENT_COMMAND: agent, STARTUP_TIMEOUT_MS: '20000' }, 2, async (p) => {
      const lbHost = new URL(p.lbUrl).host;
      const redirect = await request(`${p.lbUrl}/items`);
      await redirect.body.dump();
      assert.equal(redirect.statusCode, 307);
      assert.equal(redirect.headers.location, `${p.lbUrl}/items/`);
      const page = await request(`${p.lbUrl}/items/`);
      const body = (await page.body.json()) as { host: string; url: string; session: string | null };
      assert.equal(body.host, lbHost);
      assert.equal(body.url, `${p.lbUrl}/items/`);
      if (ON_HAPROXY) assert.equal(body.session, null, 'HAProxy issues no session (README: Data planes)');
      else assert.match(body.session ?? '', /^agent-\d\./, 'the session the router issued reached the agent');
      const sse = await request(`${p.lbUrl}/sse`);
      assert.match(await sse.body.text(), /data: agent-\d 2/);
    });
  });

  it('httpx (keep-alive client, chunked generator upload) against the FastAPI agent', async () => {
    await withPlatform({ AGENT_COMMAND: agent, STARTUP_TIMEOUT_MS: '20000' }, 2, async (p) => {
      const script = `
import httpx, json, sys
out = []
with httpx.Client(base_url=sys.argv[1], timeout=10) as c:
    for i in range(10):
        def gen():
            for _ in range(8):
                yield b"x" * 10000
        r = c.post("/echo", content=gen())
        out.append([r.status_code, r.json()["bytes"]])
    r = c.get("/items", follow_redirects=True)
    out.append([r.status_code, str(r.url)])
print(json.dumps(out))
`;
      const { stdout } = await exec(DEBIAN_PYTHON, ['-c', script, p.lbUrl]);
      const out = JSON.parse(stdout) as Array<[number, number | string]>;
      assert.deepEqual(out.slice(0, 10), new Array(10).fill([200, 80_000]));
      assert.deepEqual(out[10], [200, `${p.lbUrl}/items/`]);
      await settled(p);
    });
  });
});
