import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RunLog, type RunUpdate } from './run-log.js';

const SSE = { 'content-type': 'text/event-stream' };
const JSON_TYPE = { 'content-type': 'application/json' };
const log = (maxBytes = 1000, retentionMs = 60_000) => new RunLog({ maxBytes, retentionMs });

describe('RunLog', () => {
  it('a run goes queued → running → done, with its status, headers and body', () => {
    const l = log();
    const r = l.create('r1', { method: 'POST', path: '/work' }, 0);
    assert.equal(r.state, 'queued');
    l.start('r1', 10);
    l.respond('r1', 200, JSON_TYPE);
    assert.equal(l.append('r1', Buffer.from('{"a":'), 20), true);
    l.append('r1', Buffer.from('1}'), 30);
    l.finish('r1', 'done', 40);
    const got = l.get('r1')!;
    assert.deepEqual([got.state, got.startedAt, got.finishedAt, got.status], ['done', 10, 40, 200]);
    assert.equal(Buffer.concat(got.body).toString(), '{"a":1}');
    assert.equal(got.sse, false);
  });

  it('an event stream is numbered 1, 2, 3 across chunks, and replays after a Last-Event-ID', () => {
    const l = log();
    l.create('r', { method: 'POST', path: '/chat' }, 0);
    l.start('r', 0);
    l.respond('r', 200, SSE);
    l.append('r', Buffer.from('id: x\ndata: one\n\ndata: tw'), 1);
    l.append('r', Buffer.from('o\n\ndata: three\n\n'), 2);
    assert.deepEqual(
      l.eventsAfter('r', 0).map((e) => [e.id, e.lines]),
      [
        [1, ['data: one']],
        [2, ['data: two']],
        [3, ['data: three']],
      ],
    );
    assert.deepEqual(
      l.eventsAfter('r', 2).map((e) => e.id),
      [3],
    );
    assert.deepEqual(l.eventsAfter('r', 99), []);
  });

  it('a follower gets each event once, then the end; an unfinished last event is kept', () => {
    const l = log();
    l.create('r', { method: 'POST', path: '/' }, 0);
    l.respond('r', 200, SSE);
    const seen: RunUpdate[] = [];
    l.subscribe('r', (u) => seen.push(u));
    l.append('r', Buffer.from('data: a\n\ndata: b'), 1);
    l.finish('r', 'done', 2);
    assert.deepEqual(
      seen.map((u) => (u.kind === 'event' ? u.event.id : u.kind === 'end' ? u.state : 'body')),
      [1, 2, 'done'],
    );
  });

  it('finished runs are kept RUN_RETENTION_MS, active ones always', () => {
    const l = log(1000, 100);
    l.create('old', { method: 'GET', path: '/' }, 0);
    l.finish('old', 'done', 0);
    l.create('live', { method: 'GET', path: '/' }, 0);
    l.start('live', 0);
    assert.equal(l.sweep(99), 0);
    assert.equal(l.sweep(100), 1);
    assert.deepEqual([l.get('old'), l.get('live')?.state], [undefined, 'running']);
  });

  it('bounded in bytes: finished runs go first, oldest first; with only active runs an append is refused', () => {
    const evicted: string[] = [];
    const l = new RunLog({
      maxBytes: 10,
      retentionMs: 60_000,
      observer: (c) => {
        if (c.kind === 'evict') evicted.push(c.id);
      },
    });
    for (const id of ['a', 'b']) {
      l.create(id, { method: 'GET', path: '/' }, 0);
      l.respond(id, 200, JSON_TYPE);
      l.append(id, Buffer.alloc(4), 0);
      l.finish(id, 'done', 0);
    }
    l.create('c', { method: 'GET', path: '/' }, 1);
    l.respond('c', 200, JSON_TYPE);
    assert.equal(l.append('c', Buffer.alloc(6), 1), true, 'a is evicted');
    assert.deepEqual([l.get('a'), l.get('b')?.state, l.bytes], [undefined, 'done', 10]);
    assert.equal(l.append('c', Buffer.alloc(4), 1), true, 'b is evicted');
    assert.equal(l.get('b'), undefined);
    assert.equal(l.append('c', Buffer.alloc(1), 1), false, 'only the active run is left: full');
    assert.equal(l.bytes, 10);
    assert.deepEqual(evicted, ['a', 'b'], 'the mirror is told of each eviction (Redis drops them too)');
  });

  it('a session has at most the one active run SESSION_MULTITASK looks at', () => {
    const l = log();
    l.create('r1', { method: 'POST', path: '/', session: 's' }, 0);
    assert.equal(l.activeOf('s')?.id, 'r1');
    l.finish('r1', 'cancelled', 1, { code: 'YGG_ERR_RUN_CANCELLED', message: 'cancelled by DELETE' });
    assert.equal(l.activeOf('s'), undefined);
    assert.equal(l.get('r1')?.error?.code, 'YGG_ERR_RUN_CANCELLED');
  });

  it('activeOf(session, before): the run a later one of the session waits for', () => {
    const l = log();
    l.create('a', { method: 'POST', path: '/', session: 's' }, 0);
    l.create('b', { method: 'POST', path: '/', session: 's' }, 1);
    l.create('c', { method: 'POST', path: '/', session: 's' }, 2);
    assert.equal(l.activeOf('s', 'a'), undefined, 'the first waits for none');
    assert.equal(l.activeOf('s', 'c')?.id, 'a');
    l.finish('a', 'done', 3);
    assert.equal(l.activeOf('s', 'c')?.id, 'b');
    assert.deepEqual(
      l.allActiveOf('s').map((r) => r.id),
      ['b', 'c'],
    );
  });

  it('nothing changes a finished run', () => {
    const l = log();
    l.create('r', { method: 'GET', path: '/' }, 0);
    l.finish('r', 'failed', 1);
    l.start('r', 2);
    l.respond('r', 200, JSON_TYPE);
    l.append('r', Buffer.from('x'), 3);
    l.finish('r', 'done', 4);
    const r = l.get('r')!;
    assert.deepEqual([r.state, r.status, r.bytes, r.finishedAt], ['failed', null, 0, 1]);
  });
});
