import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loopOn } from './clock.js';
import { FakeClock } from './fake-clock.js';

describe('FakeClock', () => {
  it('runs timers in time order as time passes, repeating ones again, cancelled ones never', async () => {
    const clock = new FakeClock(0);
    const seen: string[] = [];
    clock.after(30, () => seen.push(`a@${clock.now()}`));
    clock.after(10, () => seen.push(`b@${clock.now()}`));
    const stop = clock.every(25, () => seen.push(`e@${clock.now()}`));
    const never = clock.after(20, () => seen.push('never'));
    never();
    await clock.advance(29);
    assert.deepEqual(seen, ['b@10', 'e@25']);
    await clock.advance(21);
    assert.deepEqual(seen, ['b@10', 'e@25', 'a@30', 'e@50']);
    stop();
    await clock.advance(100);
    assert.equal(seen.length, 4);
    assert.equal(clock.pending, 0);
    assert.equal(clock.now(), 150);
  });

  it('a sleep resolves when its time comes, and what it started runs before the next timer', async () => {
    const clock = new FakeClock(0);
    const seen: number[] = [];
    void (async () => {
      await clock.sleep(100);
      seen.push(clock.now());
      await clock.sleep(50);
      seen.push(clock.now());
    })();
    await clock.advance(99);
    assert.deepEqual(seen, []);
    await clock.advance(1);
    assert.deepEqual(seen, [100]);
    await clock.advance(200);
    assert.deepEqual(seen, [100, 150]);
  });

  it('loopOn: a loop whose run throws is reported and keeps running', async () => {
    const clock = new FakeClock(0);
    const errors: string[] = [];
    let runs = 0;
    const cancel = loopOn(
      clock,
      10,
      'test loop',
      () => {
        runs++;
        throw new Error('boom');
      },
      (loop) => errors.push(loop),
    );
    await clock.advance(35);
    cancel();
    assert.equal(runs, 3);
    assert.deepEqual(errors, ['test loop', 'test loop', 'test loop']);
  });
});
