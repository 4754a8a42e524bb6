import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { every, runGuarded } from './background.js';

describe('runGuarded', () => {
  it('hands a synchronous throw to the handler', () => {
    const seen: string[] = [];
    runGuarded(
      'sync',
      () => {
        throw new Error('boom');
      },
      (loop, err) => seen.push(`${loop}: ${(err as Error).message}`),
    );
    assert.deepEqual(seen, ['sync: boom']);
  });

  it('hands a rejection to the handler instead of leaving it unhandled', async () => {
    const seen: string[] = [];
    runGuarded(
      'async',
      async () => {
        throw new Error('later');
      },
      (loop, err) => seen.push(`${loop}: ${(err as Error).message}`),
    );
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(seen, ['async: later']);
  });

  it('does nothing more when the work succeeds', async () => {
    let calls = 0;
    runGuarded(
      'ok',
      async () => 1,
      () => calls++,
    );
    await new Promise((r) => setImmediate(r));
    assert.equal(calls, 0);
  });
});

describe('every', () => {
  it('keeps running after a failing round and reports each failure', async () => {
    let rounds = 0;
    const failures: number[] = [];
    const t = every(
      5,
      'tick',
      () => {
        rounds++;
        if (rounds % 2 === 1) throw new Error(`round ${rounds}`);
      },
      () => failures.push(rounds),
    );
    await new Promise((r) => setTimeout(r, 60));
    clearInterval(t);
    assert.ok(rounds >= 4, `only ${rounds} rounds`);
    assert.ok(failures.length >= 2 && failures.every((n) => n % 2 === 1));
  });
});
