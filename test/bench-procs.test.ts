// The bench's platform processes leave no agent behind (a defect: every full `npm run bench` left 9
// counting agents alive). The bench SIGKILLs platforms on purpose, and the baseline tree it compares
// with predates the liveness-pipe watchdog, so the bench itself must end what that platform started.
// Here the watchdogs are frozen, which is the same condition on today's tree.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { alive, startPlatformProcess } from '../bench/procs.js';
import { reapOrphans, SUPERVISOR_ENV } from '../src/runtime/orphans.js';
import { countingAgent } from './helpers/agents.js';

/** Pids of the watchdogs guarding the given process groups. */
function watchdogsOf(pgids: number[]): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const at = argv.indexOf('yggdrasil-watchdog');
      if (at >= 0 && pgids.includes(Number(argv[at + 1]))) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

describe('bench platform processes', () => {
  it('kill() SIGKILLs the platform and ends its agents even when no watchdog does', {
    timeout: 90_000,
  }, async () => {
    const p = await startPlatformProcess({
      MIN_INSTANCES: '2',
      MAX_INSTANCES: '2',
      AGENT_COMMAND: `env -u ${SUPERVISOR_ENV} ${countingAgent({})}`,
    });
    const agents = p.agents.map((a) => a.pid);
    assert.equal(agents.length, 2);
    const dogs = watchdogsOf(agents);
    assert.equal(dogs.length, 2, 'one watchdog per agent');
    for (const d of dogs) process.kill(d, 'SIGSTOP');
    try {
      // Any platform that starts meanwhile (tests run side by side) reaps orphans of a dead platform.
      // That must not do kill()'s work here: the agents carry no supervisor mark, like a tree from
      // before the mark, and one such reap runs while kill() waits.
      const killing = p.kill();
      await new Promise((r) =>
        (p.child.exitCode ?? p.child.signalCode) ? r(null) : p.child.once('exit', r),
      );
      await reapOrphans(0);
      const left = await killing;
      assert.equal(p.child.exitCode ?? p.child.signalCode, 'SIGKILL');
      assert.deepEqual(agents.filter(alive), [], 'no agent outlives the platform');
      assert.equal(left, 2, 'kill() reports the agents it had to end itself');
    } finally {
      for (const d of dogs) if (alive(d)) process.kill(d, 'SIGKILL');
      for (const a of agents) if (alive(a)) process.kill(a, 'SIGKILL');
    }
  });
});
