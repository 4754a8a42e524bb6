// Agents get only what they are given (issue 10): a secret in the controller's environment never
// reaches an agent's /proc/<pid>/environ (or a container's environment) unless AGENT_ENV names it;
// AGENT_ENV_FILE's variables reach every agent.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Platform } from '../../src/platform.js';
import { bootPlatform } from '../helpers/platform.js';

/** The environment of a running process, from /proc. */
function environOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return out;
}

describe('what an agent is given of the environment', () => {
  let dir: string;
  const saved = { ...process.env };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ygg-env-'));
    // The controller's own environment, as `DB_PASSWORD=hunter2 npm start` would have it.
    process.env.DB_PASSWORD = 'hunter2';
    process.env.OPENAI_API_KEY = 'sk-test-key';
    writeFileSync(join(dir, 'agent.env'), '# for the agents\nMODEL=llama3\nexport GREETING="hello there"\n');
  });

  after(() => {
    for (const k of ['DB_PASSWORD', 'OPENAI_API_KEY']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    rmSync(dir, { recursive: true, force: true });
  });

  async function withAgent(
    env: Record<string, string>,
    fn: (p: Platform, environ: Record<string, string>) => void,
  ) {
    const p = await bootPlatform({ MIN_INSTANCES: '1', MAX_INSTANCES: '1', ...env });
    try {
      await p.controller.waitForReady(1, 15_000);
      const pid = Number(p.controller.status().instances[0]?.meta.pid);
      fn(p, environOf(pid));
    } finally {
      await p.stop();
    }
  }

  it('by default: the basics and its own variables, not one secret of the controller', async () => {
    await withAgent({}, (_p, environ) => {
      assert.equal(environ.DB_PASSWORD, undefined);
      assert.equal(environ.OPENAI_API_KEY, undefined);
      assert.equal(environ.PATH, process.env.PATH);
      assert.equal(environ.AGENT_ID, 'agent-1');
      assert.match(environ.PORT ?? '', /^\d+$/);
      const unexpected = Object.keys(environ).filter(
        (k) =>
          ![
            'PATH',
            'HOME',
            'LANG',
            'TZ',
            'PORT',
            'AGENT_ID',
            'INSTANCE_ID',
            'AGENT_HOST',
            'YGGDRASIL_SUPERVISOR',
            'LOG_LEVEL',
            'LOG_FORMAT',
            'MAX_BODY_BYTES',
          ].includes(k),
      );
      assert.deepEqual(unexpected, [], 'nothing else of the controller’s environment');
    });
  });

  it('AGENT_ENV names what to pass; AGENT_ENV_FILE adds its variables', async () => {
    await withAgent(
      { AGENT_ENV: 'OPENAI_API_KEY', AGENT_ENV_FILE: join(dir, 'agent.env') },
      (_p, environ) => {
        assert.equal(environ.OPENAI_API_KEY, 'sk-test-key');
        assert.equal(environ.MODEL, 'llama3');
        assert.equal(environ.GREETING, 'hello there');
        assert.equal(environ.DB_PASSWORD, undefined);
      },
    );
  });

  it('an AGENT_COMMAND agent and its shell get the same (nothing more)', async () => {
    const marker = join(dir, 'env.txt');
    await withAgent(
      {
        AGENT_COMMAND: `env > ${marker} && exec ${process.execPath} ${join(process.cwd(), 'test/fixtures/counting-agent.mjs')}`,
      },
      () => {
        const seen = readFileSync(marker, 'utf8');
        assert.doesNotMatch(seen, /hunter2|sk-test-key/);
        assert.match(seen, /^AGENT_ID=agent-1$/m);
      },
    );
  });

  it('a bad AGENT_ENV or AGENT_ENV_FILE is a configuration error naming it', () => {
    const cli = (env: Record<string, string>) => {
      try {
        execFileSync(process.execPath, ['dist/cli/main.js', 'start'], {
          env: { ...process.env, LB_PORT: '0', CONTROLLER_PORT: '0', ...env },
          stdio: 'pipe',
        });
        return { code: 0, err: '' };
      } catch (e) {
        const x = e as { status: number; stderr: Buffer };
        return { code: x.status, err: x.stderr.toString() };
      }
    };
    const names = cli({ AGENT_ENV: 'GOOD,not-a-name' });
    assert.equal(names.code, 2);
    assert.match(
      names.err,
      /AGENT_ENV="GOOD,not-a-name" is not allowed: "not-a-name" is not a variable name/,
    );
    writeFileSync(join(dir, 'bad.env'), 'A=1\nthis line is wrong\n');
    const file = cli({ AGENT_ENV_FILE: join(dir, 'bad.env') });
    assert.equal(file.code, 2);
    assert.match(file.err, /AGENT_ENV_FILE=.*bad\.env: line 2 is not KEY=VALUE/);
    const missing = cli({ AGENT_ENV_FILE: join(dir, 'nope.env') });
    assert.match(missing.err, /AGENT_ENV_FILE=.*nope\.env: cannot read it \(ENOENT\)/);
  });
});
