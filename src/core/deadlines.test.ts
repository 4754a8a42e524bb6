import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Deadlines } from './deadlines.js';

describe('Deadlines', () => {
  it('fires what is due, once, and not what is cancelled or not yet due', () => {
    let now = 0;
    const d = new Deadlines(1000, () => now);
    const fired: string[] = [];
    d.after(100, () => fired.push('a'));
    const b = d.after(100, () => fired.push('b'));
    d.after(500, () => fired.push('c'));
    b.cancel();
    now = 99;
    d.sweep();
    assert.deepEqual(fired, []);
    now = 100;
    d.sweep();
    assert.deepEqual(fired, ['a']);
    now = 10_000;
    d.sweep();
    d.sweep();
    assert.deepEqual(fired, ['a', 'c']);
    assert.equal(d.size, 0);
    d.close();
  });

  it('keeps sweeping after a throwing callback, and reports it', () => {
    let now = 0;
    const errors: unknown[] = [];
    const d = new Deadlines(
      1000,
      () => now,
      (e) => errors.push(e),
    );
    const fired: string[] = [];
    d.after(1, () => {
      throw new Error('boom');
    });
    d.after(1, () => fired.push('next'));
    now = 5;
    d.sweep();
    assert.deepEqual(fired, ['next']);
    assert.equal(errors.length, 1);
    d.close();
  });

  it('runs its timer only while a deadline is pending', async () => {
    const d = new Deadlines(5);
    let fired = false;
    d.after(10, () => {
      fired = true;
    });
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(fired, true);
    assert.equal(d.size, 0);
    d.close();
  });
});
