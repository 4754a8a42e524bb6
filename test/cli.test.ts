// The README's commands on real processes: `npm start` (then curl, then Ctrl-C leaves nothing behind),
// `npm run health:check`, and a bad configuration that stops start-up with exit code 2.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { ControllerStatus } from '../src/controller/controller.js';
import { freePort } from '../src/runtime/free-port.js';
import { isAlive, json, waitFor } from './helpers/platform.js';
import { run, type Spawned } from './helpers/spawn.js';

const exec = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
const cli = (args: string[], env: Record<string, string>) =>
  run(process.execPath, ['dist/cli/main.js', ...args], env, { cwd: root });

describe('configuration errors', () => {
  const table: Array<{ env: Record<string, string>; want: RegExp }> = [
    { env: { MIN_INSTANCES: '5', MAX_INSTANCES: '2' }, want: /MIN_INSTANCES=5 > MAX_INSTANCES=2/ },
    {
      env: { MAX_CONCURRENCY: 'lots' },
      want: /MAX_CONCURRENCY="lots" is not allowed: expected an integer from 1 to 10000/,
    },
    {
      env: { HEALTH_CHECK_INTERVAL: '5' },
      want: /HEALTH_CHECK_INTERVAL="5" is not allowed: expected an integer from 100/,
    },
    { env: { LOG_LEVEL: 'loud' }, want: /LOG_LEVEL="loud" is not allowed: expected one of fatal, error/ },
    { env: { YGG_CONFIG: '/nonexistent/ygg.json' }, want: /YGG_CONFIG=\/nonexistent\/ygg.json: cannot read/ },
    { env: { AGENT_CWD: '/nonexistent/dir' }, want: /AGENT_CWD=\/nonexistent\/dir is not a directory/ },
    {
      env: { TRUSTED_PROXIES: '10.0.0.0/8,proxy' },
      want: /TRUSTED_PROXIES="10.0.0.0\/8,proxy" is not allowed: "proxy" is not an IP/,
    },
    {
      env: { AGENT_HEALTH_PATH: 'healthz' },
      want: /AGENT_HEALTH_PATH="healthz" is not allowed: expected a path starting with \//,
    },
  ];
  for (const row of table) {
    it(`exits 2 with one line for ${JSON.stringify(row.env)}`, async () => {
      const p = cli(['start'], { ...row.env, LB_PORT: '0', CONTROLLER_PORT: '0' });
      const { code } = await p.exited;
      assert.equal(code, 2);
      const lines = p.stderr().trim().split('\n');
      assert.equal(lines.length, 1, `one line, got: ${p.stderr()}`);
      assert.match(lines[0]!, row.want);
    });
  }
});

describe('a port already taken', () => {
  it('exits 2 with one line naming the option and the port', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
    const taken = (holder.address() as AddressInfo).port;
    try {
      const p = cli(['start'], { LB_PORT: String(taken), CONTROLLER_PORT: '0' });
      const { code } = await p.exited;
      assert.equal(code, 2);
      assert.match(
        p.stderr().trim(),
        new RegExp(`^yggdrasil: configuration error: LB_PORT=${taken} is already in use on 127.0.0.1`),
      );
    } finally {
      holder.close();
    }
  });
});

describe('npm start, curl, health:check, Ctrl-C', () => {
  let lbPort: number;
  let controllerPort: number;
  let proc: Spawned;
  let pids: number[] = [];

  before(async () => {
    lbPort = await freePort();
    controllerPort = await freePort();
    // Exactly the README's quick start, in its own process group so Ctrl-C can be sent as a terminal would.
    proc = run(
      'npm',
      ['start'],
      { LB_PORT: String(lbPort), CONTROLLER_PORT: String(controllerPort), MIN_INSTANCES: '2' },
      {
        detached: true,
        cwd: root,
      },
    );
    await waitFor('npm start to report it is up', () => /yggdrasil is up/.test(proc.stdout()), 90_000, 100);
  });

  after(async () => {
    if (proc.child.exitCode === null) {
      try {
        process.kill(-proc.child.pid!, 'SIGKILL');
      } catch {}
    }
  });

  it('prints the URLs it serves', () => {
    assert.match(proc.stderr(), new RegExp(`load balancer\\s+http://127.0.0.1:${lbPort}`));
    assert.match(proc.stderr(), new RegExp(`controller\\s+http://127.0.0.1:${controllerPort}/status`));
  });

  it('serves the README curl commands', async () => {
    const health = await exec('curl', ['-s', `localhost:${lbPort}/health`]);
    assert.equal(JSON.parse(health.stdout).status, 'ok');
    const processed = await exec('curl', [
      '-s',
      '-XPOST',
      `localhost:${lbPort}/agent/agent-1/process`,
      '-d',
      '{"input":"hi"}',
      '-H',
      'content-type: application/json',
    ]);
    const body = JSON.parse(processed.stdout);
    assert.equal(body.agentId, 'agent-1');
    assert.equal(body.output.echo, 'hi');
  });

  it('npm run health:check prints a table and exits 0 on a healthy pool', async () => {
    const r = await exec('npm', ['run', '--silent', 'health:check'], {
      cwd: root,
      env: { ...process.env, CONTROLLER_URL: `http://127.0.0.1:${controllerPort}` },
    });
    assert.match(r.stdout, /INSTANCE\s+STATE\s+ADDRESS/);
    assert.match(r.stdout, /agent-1\s+ready\s+http:\/\/127\.0\.0\.1:\d+\s+0\s+0\s+ok/);
    assert.match(r.stdout, /healthy: 2\/2 ready/);
  });

  it('Ctrl-C drains and leaves no agent process', async () => {
    const status = await json<ControllerStatus>(await fetch(`http://127.0.0.1:${controllerPort}/status`));
    pids = status.instances.map((i) => i.meta.pid as number);
    assert.equal(pids.length, 2);
    for (const pid of pids) assert.ok(isAlive(pid));
    process.kill(-proc.child.pid!, 'SIGINT');
    // npm itself dies of the SIGINT (as in a terminal); yggdrasil, in the same group, drains and says so.
    await proc.exited;
    await waitFor('yggdrasil to finish draining', () => /every instance is gone/.test(proc.stdout()), 15_000);
    for (const pid of pids) assert.equal(isAlive(pid), false, `agent process ${pid} was orphaned`);
  });
});

describe('SIGTERM (docker stop, systemd)', () => {
  it('drains, exits 0 and leaves no agent process', async () => {
    const p = cli(['start'], { LB_PORT: '0', CONTROLLER_PORT: '0', MIN_INSTANCES: '2', LOG_LEVEL: 'info' });
    const up = await waitFor(
      'start-up',
      () => (/"msg":"yggdrasil is up"/.test(p.stdout()) ? p.stdout() : undefined),
      30_000,
    );
    const line = up.split('\n').find((l) => l.includes('yggdrasil is up'))!;
    const { controllerUrl } = JSON.parse(line) as { controllerUrl: string };
    const status = await json<ControllerStatus>(await fetch(`${controllerUrl}/status`));
    const agentPids = status.instances.map((i) => i.meta.pid as number);
    assert.equal(agentPids.length, 2);
    p.child.kill('SIGTERM');
    const { code } = await p.exited;
    assert.equal(code, 0);
    for (const pid of agentPids) assert.equal(isAlive(pid), false, `agent process ${pid} was orphaned`);
  });
});

describe('LOG_FORMAT', () => {
  it('pretty: readable lines from the platform and the reference agent, no JSON', async () => {
    const p = cli(['start'], {
      LB_PORT: '0',
      CONTROLLER_PORT: '0',
      MIN_INSTANCES: '1',
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'pretty',
    });
    try {
      await waitFor('start-up', () => /yggdrasil is up/.test(p.stdout()), 30_000);
      await waitFor('the agent line', () => /INFO \(agent\): agent listening/.test(p.stdout()), 5000);
      const out = p.stdout();
      assert.match(
        out,
        /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(yggdrasil\): \[controller\] agent-1 is ready at http/m,
      );
      assert.equal(out.split('\n').filter((l) => l.startsWith('{')).length, 0, 'no JSON line');
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  });

  it('json (the default off a terminal): one JSON object a line', async () => {
    const p = cli(['start'], { LB_PORT: '0', CONTROLLER_PORT: '0', MIN_INSTANCES: '1', LOG_LEVEL: 'info' });
    try {
      await waitFor('start-up', () => /"msg":"yggdrasil is up"/.test(p.stdout()), 30_000);
      const lines = p
        .stdout()
        .split('\n')
        .filter((l) => l !== '');
      for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), l);
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  });
});

describe('health:check without a controller', () => {
  it('exits 1 and says what to run', async () => {
    const port = await freePort();
    const p = cli(['health', '--url', `http://127.0.0.1:${port}`], {});
    const { code } = await p.exited;
    assert.equal(code, 1);
    assert.match(p.stderr(), /cannot reach the controller .* is `npm start` running\?/);
  });
});
