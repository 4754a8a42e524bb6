// The router as it was before a change, built beside this one so a benchmark can measure both in one
// run ("before/after", interleaved). A git worktree of BENCH_BASELINE (default: the commit before
// issue 9's data-plane work) with this repository's node_modules, built with its own tsc; removed after.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The router before issue 9 (slot leaks, retries after timeouts, no stall detection). */
export const DEFAULT_BASELINE = '80519e5';

/** The router before issue 14 (the leaner router and compression): the last commit without its work. */
export const BEFORE_ISSUE_14 = '3b58d37';

const root = new URL('..', import.meta.url).pathname;

export interface Baseline {
  commit: string;
  tree: string;
  remove(): void;
}

/** Builds the baseline tree, or returns undefined when git cannot give it (a shallow clone, no git). */
export function prepareBaseline(
  commit = process.env.BENCH_BASELINE ?? DEFAULT_BASELINE,
): Baseline | undefined {
  const tree = join(mkdtempSync(join(tmpdir(), 'ygg-baseline-')), 'tree');
  try {
    execFileSync('git', ['-C', root, 'worktree', 'add', '--detach', tree, commit], { stdio: 'ignore' });
  } catch {
    return undefined;
  }
  const remove = () => {
    try {
      execFileSync('git', ['-C', root, 'worktree', 'remove', '--force', tree], { stdio: 'ignore' });
    } catch {
      rmSync(tree, { recursive: true, force: true });
    }
  };
  try {
    if (!existsSync(join(tree, 'node_modules')))
      symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'));
    execFileSync(
      process.execPath,
      [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
      {
        cwd: tree,
        stdio: 'ignore',
      },
    );
  } catch {
    remove();
    return undefined;
  }
  const short = execFileSync('git', ['-C', tree, 'rev-parse', '--short', 'HEAD'], {
    encoding: 'utf8',
  }).trim();
  return { commit: short, tree, remove };
}
