import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { haproxyInput } from '../../test/fixtures/haproxy-input.js';
import { ERROR_CATALOGUE, type ErrorCode } from '../core/errors.js';
import {
  addServerCommand,
  errorFiles,
  fillSlotCommands,
  parseShowStat,
  renderHaproxyConfig,
  slotOf,
} from './haproxy-config.js';

const input = haproxyInput();

describe('renderHaproxyConfig', () => {
  const cfg = renderHaproxyConfig(input);
  const has = (line: string) =>
    assert.ok(
      cfg.split('\n').some((l) => l.trim() === line),
      `has "${line}"`,
    );
  it('binds LB_PORT and opens the Runtime API with admin level', () => {
    has('bind 127.0.0.1:8080');
    has('stats socket /run/ygg/admin.sock mode 600 level admin');
  });
  it('bounds the queue and the server by the platform timeouts', () => {
    has('timeout queue 10000ms');
    has('timeout server 300000ms');
    has('timeout http-request 30000ms');
  });
  it('balances leastconn, sticks sessions on the header then the cookie, retries only failed connections', () => {
    has('balance leastconn');
    has('stick on req.hdr(x-session-id)');
    has('stick on req.cook(ygg_session)');
    has('retry-on conn-failure');
    has('retries 2');
    assert.ok(cfg.indexOf('stick on req.hdr(x-session-id)') < cfg.indexOf('stick on req.cook(ygg_session)'));
  });
  it('sends the platform routes, runs and everything while nothing is ready to the Node router', () => {
    has('use_backend activator if platform || async || none_ready');
    has('acl none_ready nbsrv(agents) eq 0');
    has('server router 127.0.0.1:40001');
  });
  it('serves its Prometheus exporter on loopback only', () => {
    has('bind 127.0.0.1:40002');
    has('http-request use-service prometheus-exporter if { path /metrics }');
  });
  it('counts the instance’s own 5xx only with BREAKER_COUNT_5XX', () => {
    const with5xx = renderHaproxyConfig({ ...input, server: { ...input.server, count5xx: true } });
    assert.match(with5xx, /observe layer7 error-limit 5/);
  });
  it('drops a client-sent tenant header', () => {
    has('http-request del-header X-Yggdrasil-Tenant');
  });
  it('replaces client forwarding headers', () => {
    assert.ok(cfg.indexOf('http-request del-header X-Forwarded-For') < cfg.indexOf('option forwardfor'));
  });
  it('declares the slots agent-1..agent-N in maintenance, with the server options', () => {
    has(
      'server-template agent- 1-6 127.0.0.1:1 disabled maxconn 80 maxqueue 1000 check inter 30000 fall 3 rise 1 observe layer4 error-limit 5 on-error mark-down',
    );
  });
  it("binds an inherited listening socket by its fd (HAProxy started on the Node router's socket)", () => {
    assert.match(renderHaproxyConfig({ ...input, bind: { fd: 3 } }), /^ {2}bind fd@3$/m);
  });

  it('keeps the X-Forwarded-* of a TRUSTED_PROXIES peer, and of nobody else', () => {
    const cfg = renderHaproxyConfig({ ...input, trustedProxies: ['127.0.0.1', '10.0.0.0/8', '::1'] });
    assert.match(cfg, /acl trusted_proxy src 127\.0\.0\.1 10\.0\.0\.0\/8 ::1/);
    assert.match(cfg, /del-header X-Forwarded-For unless trusted_proxy$/m);
    assert.match(
      cfg,
      /set-header X-Forwarded-Proto http unless trusted_proxy \{ req\.hdr\(x-forwarded-proto\) -m found \}/,
    );
    const plain = renderHaproxyConfig(input);
    assert.doesNotMatch(plain, /trusted_proxy/);
    assert.match(plain, /del-header X-Forwarded-For$/m);
  });

  it('SESSION_AFFINITY=false: no stick table', () => {
    assert.doesNotMatch(renderHaproxyConfig({ ...input, sessionAffinity: false }), /stick-table|stick on/);
    assert.match(renderHaproxyConfig(input), /stick on req\.hdr\(x-session-id\)/);
  });

  it('brackets an IPv6 bind address', () => {
    assert.match(renderHaproxyConfig({ ...input, bind: { host: '::1', port: 9 } }), /bind \[::1\]:9/);
  });
});

describe('errorFiles', () => {
  it('answer in the platform error format, 503 with Retry-After', () => {
    for (const f of errorFiles()) {
      const [head, body] = f.content.split('\r\n\r\n') as [string, string];
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
      assert.equal(f.name, `${status}.http`);
      const parsed = JSON.parse(body) as { error: { code: ErrorCode; message: string } };
      assert.equal(ERROR_CATALOGUE[parsed.error.code]?.status, status, `${parsed.error.code} is a ${status}`);
      assert.match(head, new RegExp(`content-length: ${Buffer.byteLength(body)}`));
      if (status === 503) {
        assert.equal(parsed.error.code, 'YGG_ERR_CAPACITY');
        assert.match(head, /retry-after: 1/);
      }
    }
  });
});

describe('the error files in the configuration', () => {
  it('are all declared in defaults (so both backends answer JSON too), with 408 for a slow head', () => {
    const cfg = renderHaproxyConfig(input);
    const defaults = cfg.slice(cfg.indexOf('\ndefaults'), cfg.indexOf('\nfrontend lb'));
    for (const f of errorFiles()) assert.ok(defaults.includes(`errorfile ${f.name.slice(0, 3)} `), f.name);
    assert.equal(cfg.split('errorfile').length - 1, errorFiles().length, 'declared once each');
    assert.ok(errorFiles().some((f) => f.name === '408.http'));
  });
});

describe('addServerCommand', () => {
  it('adds a server with the concurrency limit, the queue bound, health checks and ejection', () => {
    assert.equal(
      addServerCommand(
        'agent-3',
        { host: '127.0.0.1', port: 4100 },
        { maxConcurrency: 80, queueMax: 1000, healthIntervalMs: 30_000, failures: 5 },
      ),
      'add server agents/agent-3 127.0.0.1:4100 maxconn 80 maxqueue 1000 check inter 30000 fall 3 rise 1 observe layer4 error-limit 5 on-error mark-down',
    );
  });
});

describe('slots', () => {
  it('an id agent-<n> within the template has a slot; any other is added', () => {
    assert.equal(slotOf('agent-1', 6), 1);
    assert.equal(slotOf('agent-6', 6), 6);
    assert.equal(slotOf('agent-7', 6), undefined);
    assert.equal(slotOf('agent-0', 6), undefined);
    assert.equal(slotOf('worker-1', 6), undefined);
  });
  it('fills a slot with the address, then sets it ready', () => {
    assert.deepEqual(fillSlotCommands('agent-2', { host: '127.0.0.1', port: 4100 }), [
      'set server agents/agent-2 addr 127.0.0.1 port 4100',
      'set server agents/agent-2 state ready',
    ]);
  });
});

describe('parseShowStat', () => {
  it('reads in-flight and queued per server, by column name', () => {
    const csv = [
      '# pxname,svname,qcur,qmax,scur,smax,slim,stot,status',
      'lb,FRONTEND,,,3,5,9987,20,OPEN',
      'agents,agent-1,0,0,2,3,80,10,UP',
      'agents,agent-2,4,4,80,80,80,10,UP',
      'agents,BACKEND,7,7,82,83,,20,UP',
      '',
    ].join('\n');
    assert.deepEqual(parseShowStat(csv).slice(1), [
      { backend: 'agents', server: 'agent-1', queued: 0, current: 2, status: 'UP' },
      { backend: 'agents', server: 'agent-2', queued: 4, current: 80, status: 'UP' },
      { backend: 'agents', server: 'BACKEND', queued: 7, current: 82, status: 'UP' },
    ]);
  });
});
