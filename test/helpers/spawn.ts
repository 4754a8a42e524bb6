// Test helpers for real child processes: start one, read its output, wait for its exit.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';

export interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function run(
  command: string,
  args: string[],
  env: Record<string, string> = {},
  opts: { detached?: boolean; cwd?: string } = {},
): Spawned {
  const child = spawn(command, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.detached ?? false,
    cwd: opts.cwd,
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/**
 * Runs one test file in a child `node --test` with extra environment (TEST_DRIVER, TEST_DATAPLANE):
 * the same assertions on another runtime or data plane. Prints the failing lines when it fails.
 */
export function runTestFile(
  file: string,
  env: Record<string, string>,
  timeoutMs = 600_000,
): { status: number | null; passes: number; failures: number; skipped: number } {
  const { NODE_TEST_CONTEXT: _, ...parent } = process.env;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', file], {
    cwd: new URL('../..', import.meta.url).pathname,
    env: { ...parent, ...env },
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  const count = (what: string) =>
    Number((r.stdout.match(new RegExp(`^# ${what} (\\d+)`, 'm')) ?? [])[1] ?? 0);
  if (r.status !== 0) {
    console.log(
      r.stdout
        .split('\n')
        .filter((l) => /not ok|Error|assert|expected|actual/i.test(l))
        .join('\n'),
    );
  }
  return { status: r.status, passes: count('pass'), failures: count('fail'), skipped: count('skipped') };
}
