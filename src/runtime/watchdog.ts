// The liveness pipe: for every agent process group, a tiny shell watchdog (dash, ~1 MB) whose stdin is
// a pipe from the platform. The kernel closes that pipe when the platform dies, however it dies
// (SIGKILL, OOM), and the watchdog then ends the agent's whole group: SIGTERM, the grace time, SIGKILL.
// Nothing depends on the agent reading anything (an IPC message, a closed stdout). On a normal stop
// the platform ends the group itself and then the watchdog.
import { type ChildProcess, spawn } from 'node:child_process';

const SCRIPT = [
  'while read -r _; do :; done', // until EOF: the platform is gone
  'kill -s TERM -- "-$1" 2>/dev/null || exit 0',
  'kill -s CONT -- "-$1" 2>/dev/null', // a paused group handles its TERM only once it runs
  'i=0',
  'while kill -s 0 -- "-$1" 2>/dev/null && [ "$i" -lt "$2" ]; do sleep 0.1; i=$((i + 1)); done',
  'kill -s KILL -- "-$1" 2>/dev/null',
  'exit 0',
].join('\n');

/** Starts the watchdog of process group `pgid`; it waits `graceMs` between SIGTERM and SIGKILL. */
export function startWatchdog(pgid: number, graceMs: number, env: NodeJS.ProcessEnv): ChildProcess {
  const tenths = String(Math.max(1, Math.ceil(graceMs / 100)));
  const dog = spawn('/bin/sh', ['-c', SCRIPT, 'yggdrasil-watchdog', String(pgid), tenths], {
    detached: true, // its own group: stopping the agent's group never stops the watchdog first
    stdio: ['pipe', 'ignore', 'ignore'],
    env,
  });
  dog.on('error', () => {});
  dog.stdin?.on('error', () => {});
  dog.unref();
  (dog.stdin as { unref?: () => void } | null)?.unref?.();
  return dog;
}

/** Ends a watchdog whose group is already gone (normal stop). */
export function stopWatchdog(dog: ChildProcess): void {
  try {
    dog.kill('SIGKILL');
  } catch {
    // already gone
  }
}
