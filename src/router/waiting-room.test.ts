// The waiting room's timing on a FakeClock: a request that finds no free slot waits QUEUE_TIMEOUT_MS
// (its sweep runs on the clock), then gets 503 YGG_ERR_CAPACITY, and not a millisecond sooner than the
// sweep's granularity allows; an empty room leaves no timer behind.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { YggError } from '../core/errors.js';
import { FakeClock } from '../core/fake-clock.js';
import { UpstreamSet } from './upstreams.js';
import { WaitingRoom } from './waiting-room.js';

const counter = { inc: () => {} };

function room(clock: FakeClock, onDemand = () => {}) {
  const upstreams = new UpstreamSet(4, { failureThreshold: 5, baseEjectionMs: 1000, maxEjectionMs: 10_000 });
  return new WaitingRoom({
    queueMax: 10,
    queueTimeoutMs: 1000,
    upstreams,
    metrics: { queueRejections: counter, queueWait: { observe: () => {} } } as never,
    now: () => clock.now(),
    usable: () => true,
    enter: () => true,
    grant: () => assert.fail('no slot to grant'),
    pick: () => undefined,
    onDemand,
    outlook: () => 'starting',
    clock,
  });
}

describe('WaitingRoom timing (FakeClock)', () => {
  it('a waiter gets YGG_ERR_CAPACITY once QUEUE_TIMEOUT_MS has passed, not before', async () => {
    const clock = new FakeClock(0);
    let demanded = 0;
    const r = room(clock, () => demanded++);
    const out: { err?: YggError } = {};
    const err = () => out.err; // read through a call: assert's narrowing of out.err would stick
    r.wait(new EventEmitter(), null).catch((err: YggError) => {
      out.err = err;
    });
    assert.equal(demanded, 1, 'no instance: the activator is asked at once');
    await clock.advance(990);
    assert.equal(err(), undefined);
    assert.equal(r.length, 1);
    await clock.advance(120);
    assert.equal(err()?.code, 'YGG_ERR_CAPACITY');
    assert.match(String(err()?.message), /QUEUE_TIMEOUT_MS=1000/);
    assert.equal(r.length, 0);
    assert.equal(clock.pending, 0, 'the sweep stops with the last waiter');
  });

  it('a client that leaves is taken out of the queue at once', async () => {
    const clock = new FakeClock(0);
    const r = room(clock);
    const gone = new EventEmitter();
    const outcome = r.wait(gone, null).catch((err: unknown) => err);
    gone.emit('close');
    assert.equal(await outcome, null, 'CLIENT_GONE');
    assert.equal(r.length, 0);
    await clock.advance(2000);
    assert.equal(clock.pending, 0);
  });
});
