#!/usr/bin/env node
// Docker HEALTHCHECK probe: GET http://127.0.0.1:$PORT/health, exit 0 on a 2xx answer, else 1.
// No dependencies, so it starts fast and works in any image that has node.
// Usage: node dist/agent/healthcheck.js [PORT_VARIABLE]   (default PORT; the controller image passes
// CONTROLLER_PORT). HEALTHCHECK_TIMEOUT_MS (default 2500) bounds the whole probe.
import { request } from 'node:http';

const portVar = process.argv[2] ?? 'PORT';
const port = Number(process.env[portVar] ?? '8080');
const timeoutMs = Number(process.env.HEALTHCHECK_TIMEOUT_MS ?? '2500');

function fail(why: string): never {
  process.stderr.write(`healthcheck: ${why}\n`);
  process.exit(1);
}

if (!Number.isInteger(port) || port < 1 || port > 65535)
  fail(`${portVar}=${process.env[portVar]} is no port`);

const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
const req = request(
  { host: '127.0.0.1', port, path: '/health', method: 'GET', headers: { connection: 'close' } },
  (res) => {
    res.resume();
    const status = res.statusCode ?? 0;
    clearTimeout(timer);
    if (status >= 200 && status < 300) process.exit(0);
    fail(`GET /health answered ${status}`);
  },
);
req.on('error', (err) => fail((err as Error).message));
req.end();
