// No agent outlives its platform (issue 9, "Agents outlive the platform"): `yggdrasil start` as a real
// process is SIGKILLed, and every agent it started — the reference agent, and an AGENT_COMMAND behind a
// shell wrapper whose real agent is a grandchild — stops serving and exits. When the watchdogs die with
// it, the next platform to start ends what was left.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { ControllerStatus } from '../../src/controller/controller.js';
import { freePort } from '../../src/runtime/free-port.js';
import { countingAgent } from '../helpers/agents.js';
import { bootPlatform, isAlive, waitFor } from '../helpers/platform.js';
import { run, type Spawned } from '../helpers/spawn.js';

const root = new URL('../..', import.meta.url).pathname;

/** Every process whose parent is `pid`, recursively (from /proc). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {}
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** Pids of the watchdogs guarding process group `pgid`. */
function watchdogsOf(pgid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (argv.includes('yggdrasil-watchdog') && argv.includes(String(pgid))) out.push(Number(name));
    } catch {}
  }
  return out;
}

const answers = async (port: number) => {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return true;
  } catch {
    return false;
  }
};

interface Started {
  platform: Spawned;
  agents: Array<{ id: string; pid: number; port: number; all: number[] }>;
}

async function startPlatform(env: Record<string, string>, count: number): Promise<Started> {
  const controllerPort = await freePort();
  const platform = run(
    process.execPath,
    ['dist/cli/main.js', 'start'],
    {
      LB_PORT: '0',
      CONTROLLER_PORT: String(controllerPort),
      // As `npm start` logs: the agents' output goes to a pipe the dead platform no longer reads.
      LOG_LEVEL: 'info',
      MIN_INSTANCES: String(count),
      MAX_INSTANCES: String(count),
      ...env,
    },
    { cwd: root },
  );
  const status = await waitFor(
    `${count} agents ready`,
    async () => {
      try {
        const s = (await (
          await fetch(`http://127.0.0.1:${controllerPort}/status`)
        ).json()) as ControllerStatus;
        return s.instances.filter((i) => i.state === 'ready').length === count ? s : undefined;
      } catch {
        return undefined;
      }
    },
    20_000,
    100,
  );
  const agents = status.instances.map((i) => {
    const pid = Number(i.meta.pid);
    return { id: i.id, pid, port: Number(i.meta.port), all: [pid, ...descendants(pid)] };
  });
  return { platform, agents };
}

describe('agents die with their platform', () => {
  for (const [name, env] of [
    ['the reference agent', {}],
    // `true &&` keeps /bin/sh as the parent: the real agent is its child, in the same group.
    ['an AGENT_COMMAND behind a shell wrapper', { AGENT_COMMAND: `true && ${countingAgent({})}` }],
  ] as const) {
    it(`${name}: SIGKILL of the platform stops every agent process`, async () => {
      const { platform, agents } = await startPlatform(env, 2);
      try {
        for (const a of agents) assert.ok(await answers(a.port), `${a.id} answers before`);
        if (name !== 'the reference agent') {
          assert.ok(
            agents.every((a) => a.all.length >= 2),
            'the wrapper has a child agent',
          );
        }
        platform.child.kill('SIGKILL');
        await platform.exited;
        for (const a of agents) {
          await waitFor(
            `${a.id} (pids ${a.all.join(', ')}) to exit`,
            () => a.all.every((p) => !isAlive(p)),
            10_000,
          );
          assert.equal(await answers(a.port), false, `${a.id} still serves on its port`);
        }
      } finally {
        platform.child.kill('SIGKILL');
        for (const a of agents) for (const p of a.all) if (isAlive(p)) process.kill(p, 'SIGKILL');
      }
    });
  }

  it('a platform that starts ends the agents a dead one left (its watchdogs killed too)', async () => {
    const { platform, agents } = await startPlatform({ AGENT_COMMAND: `true && ${countingAgent({})}` }, 2);
    const orphans = agents.flatMap((a) => a.all);
    try {
      const dogs = agents.flatMap((a) => watchdogsOf(a.pid));
      assert.equal(dogs.length, 2, 'one watchdog per agent');
      for (const d of dogs) process.kill(d, 'SIGKILL');
      platform.child.kill('SIGKILL');
      await platform.exited;
      // Checked at once: any platform that starts now on this machine (another test's) reaps them.
      assert.ok(orphans.every(isAlive), 'with no watchdog the agents linger: nothing was tested');

      const next = await bootPlatform({ MIN_INSTANCES: '1', MAX_INSTANCES: '1' });
      try {
        await waitFor('the orphans to be ended', () => orphans.every((p) => !isAlive(p)), 10_000);
        const failed = next.controller.status().events.filter((e) => e.type === 'driver_error');
        assert.deepEqual(failed, []);
      } finally {
        await next.stop();
      }
    } finally {
      platform.child.kill('SIGKILL');
      for (const p of orphans) if (isAlive(p)) process.kill(p, 'SIGKILL');
    }
  });
});
