import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AdmissionQueue } from './admission-queue.js';

type Op =
  | { enqueue: string; pinned?: string; at: number; refused?: true }
  | { take: string; acceptsFree?: boolean; want: string | undefined }
  | { expire: number; want: string[] }
  | { cancel: string; want: boolean }
  | { unpin: string; want: string[] }
  | { length: number };

function play(maxLength: number, timeoutMs: number, ops: Op[]) {
  const q = new AdmissionQueue<string>({ maxLength, timeoutMs });
  const waiters = new Map<string, NonNullable<ReturnType<typeof q.enqueue>>>();
  for (const op of ops) {
    if ('enqueue' in op) {
      const w = q.enqueue(op.enqueue, op.pinned ?? null, op.at);
      assert.equal(w === undefined, op.refused === true, `enqueue ${op.enqueue}`);
      if (w) waiters.set(op.enqueue, w);
    } else if ('take' in op) {
      assert.equal(q.takeFor(op.take, op.acceptsFree ?? true)?.value, op.want, `take for ${op.take}`);
    } else if ('expire' in op) {
      assert.deepEqual(
        q.expire(op.expire).map((w) => w.value),
        op.want,
        `expire at ${op.expire}`,
      );
    } else if ('cancel' in op) {
      assert.equal(q.cancel(waiters.get(op.cancel)!), op.want, `cancel ${op.cancel}`);
    } else if ('unpin' in op) {
      assert.deepEqual(
        q.unpin(op.unpin).map((w) => w.value),
        op.want,
      );
    } else {
      assert.equal(q.length, op.length);
    }
  }
}

describe('AdmissionQueue', () => {
  const table: Array<{ name: string; max?: number; timeout?: number; ops: Op[] }> = [
    {
      name: 'free waiters leave in arrival order',
      ops: [
        { enqueue: 'a', at: 0 },
        { enqueue: 'b', at: 1 },
        { enqueue: 'c', at: 2 },
        { take: 'agent-1', want: 'a' },
        { take: 'agent-2', want: 'b' },
        { take: 'agent-1', want: 'c' },
        { take: 'agent-1', want: undefined },
        { length: 0 },
      ],
    },
    {
      name: 'refuses past maxLength, counting pinned waiters too',
      max: 2,
      ops: [
        { enqueue: 'a', at: 0 },
        { enqueue: 'b', pinned: 'agent-1', at: 0 },
        { enqueue: 'c', at: 0, refused: true },
        { take: 'agent-2', want: 'a' },
        { enqueue: 'd', at: 1 },
        { length: 2 },
      ],
    },
    { name: 'maxLength 0 queues nothing', max: 0, ops: [{ enqueue: 'a', at: 0, refused: true }] },
    {
      name: 'a pinned waiter is served only by its instance',
      ops: [
        { enqueue: 'p', pinned: 'agent-1', at: 0 },
        { take: 'agent-2', want: undefined },
        { take: 'agent-1', want: 'p' },
      ],
    },
    {
      name: 'a freed slot serves the older of its pinned head and the free head',
      ops: [
        { enqueue: 'f1', at: 0 },
        { enqueue: 'p1', pinned: 'agent-1', at: 1 },
        { enqueue: 'f2', at: 2 },
        { take: 'agent-1', want: 'f1' },
        { take: 'agent-1', want: 'p1' },
        { take: 'agent-1', want: 'f2' },
      ],
    },
    {
      name: 'an instance that takes no free waiters serves only its own',
      ops: [
        { enqueue: 'f1', at: 0 },
        { enqueue: 'p1', pinned: 'agent-1', at: 1 },
        { take: 'agent-1', acceptsFree: false, want: 'p1' },
        { take: 'agent-1', acceptsFree: false, want: undefined },
      ],
    },
    {
      name: 'waiters expire at exactly timeoutMs, oldest first, across queues',
      timeout: 100,
      ops: [
        { enqueue: 'a', at: 0 },
        { enqueue: 'p', pinned: 'agent-1', at: 10 },
        { enqueue: 'b', at: 50 },
        { expire: 99, want: [] },
        { expire: 110, want: ['a', 'p'] },
        { length: 1 },
        { take: 'agent-1', want: 'b' },
      ],
    },
    {
      name: 'a cancelled waiter is skipped and frees its place',
      max: 2,
      ops: [
        { enqueue: 'a', at: 0 },
        { enqueue: 'b', at: 1 },
        { cancel: 'a', want: true },
        { cancel: 'a', want: false },
        { enqueue: 'c', at: 2 },
        { take: 'agent-1', want: 'b' },
        { take: 'agent-1', want: 'c' },
      ],
    },
    {
      name: 'unpin releases the waiters of a vanished instance in order',
      ops: [
        { enqueue: 'p1', pinned: 'agent-3', at: 0 },
        { enqueue: 'f', at: 1 },
        { enqueue: 'p2', pinned: 'agent-3', at: 2 },
        { unpin: 'agent-3', want: ['p1', 'p2'] },
        { length: 1 },
        { take: 'agent-3', want: 'f' },
      ],
    },
  ];
  for (const row of table) it(row.name, () => play(row.max ?? 100, row.timeout ?? 1000, row.ops));

  it('keeps FIFO order through many pushes and takes (compaction)', () => {
    const q = new AdmissionQueue<number>({ maxLength: 10_000, timeoutMs: 1000 });
    const out: number[] = [];
    for (let i = 0; i < 5000; i++) {
      q.enqueue(i, null, 0);
      if (i % 3 === 0) out.push(q.takeFor('x')!.value);
    }
    for (let w = q.takeFor('x'); w; w = q.takeFor('x')) out.push(w.value);
    assert.deepEqual(
      out,
      Array.from({ length: 5000 }, (_, i) => i),
    );
  });

  it('oldest() gives the earliest arrival still waiting', () => {
    const q = new AdmissionQueue<string>({ maxLength: 10, timeoutMs: 1000 });
    assert.equal(q.oldest(), undefined);
    q.enqueue('p', 'agent-1', 5);
    q.enqueue('f', null, 7);
    assert.equal(q.oldest(), 5);
    q.takeFor('agent-1');
    assert.equal(q.oldest(), 7);
  });
});
