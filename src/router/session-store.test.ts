import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemorySessionStore, type SessionBinding } from './session-store.js';

type Op =
  | ['set', session: string, instance: string, at: number, incarnation?: string]
  | ['touch', session: string, at: number]
  | ['get', session: string, at: number]
  | ['delete', session: string]
  | ['sweep', at: number];

/** Runs the ops; returns what each `get` and `sweep` answered, in order. */
function run(s: MemorySessionStore, ops: Op[]): { gets: Array<SessionBinding | undefined>; swept: number[] } {
  const gets: Array<SessionBinding | undefined> = [];
  const swept: number[] = [];
  for (const op of ops) {
    switch (op[0]) {
      case 'set':
        s.set(op[1], { instanceId: op[2], incarnation: op[4] ?? `${op[2]}#1` }, op[3]);
        break;
      case 'touch':
        s.touch(op[1], op[2]);
        break;
      case 'get':
        gets.push(s.get(op[1], op[2]));
        break;
      case 'delete':
        s.delete(op[1]);
        break;
      case 'sweep':
        swept.push(s.sweep(op[1]));
        break;
    }
  }
  return { gets, swept };
}

const bound = (instanceId: string, lastSeen: number, incarnation = `${instanceId}#1`): SessionBinding => ({
  instanceId,
  incarnation,
  lastSeen,
});

describe('MemorySessionStore', () => {
  // TTL 1000 ms, room for three sessions.
  const table: Array<{
    name: string;
    ops: Op[];
    want: {
      gets?: Array<SessionBinding | undefined>;
      swept?: number[];
      size: number;
      counts: Record<string, number>;
      evicted?: number;
    };
  }> = [
    {
      name: 'set then get returns the binding',
      ops: [
        ['set', 's1', 'A', 0],
        ['get', 's1', 10],
      ],
      want: { gets: [bound('A', 0)], size: 1, counts: { A: 1 } },
    },
    {
      name: 'unknown session → undefined',
      ops: [['get', 'nope', 0]],
      want: { gets: [undefined], size: 0, counts: {} },
    },
    {
      name: 'still alive exactly at the TTL',
      ops: [
        ['set', 's1', 'A', 0],
        ['get', 's1', 1000],
      ],
      want: { gets: [bound('A', 0)], size: 1, counts: { A: 1 } },
    },
    {
      name: 'expired 1 ms past the TTL, and get drops it',
      ops: [
        ['set', 's1', 'A', 0],
        ['get', 's1', 1001],
      ],
      want: { gets: [undefined], size: 0, counts: { A: 0 } },
    },
    {
      name: 'touch extends the life from the touch',
      ops: [
        ['set', 's1', 'A', 0],
        ['touch', 's1', 800],
        ['get', 's1', 1800],
        ['get', 's1', 1801],
      ],
      want: { gets: [bound('A', 800), undefined], size: 0, counts: { A: 0 } },
    },
    {
      name: 'touch does not revive an expired session',
      ops: [
        ['set', 's1', 'A', 0],
        ['touch', 's1', 1001],
        ['get', 's1', 1001],
      ],
      want: { gets: [undefined], size: 0, counts: { A: 0 } },
    },
    {
      name: 'touch of an unknown session does nothing',
      ops: [['touch', 'nope', 0]],
      want: { size: 0, counts: {} },
    },
    {
      name: 're-pinning to another instance moves the count',
      ops: [
        ['set', 's1', 'A', 0],
        ['set', 's1', 'B', 5],
        ['get', 's1', 5],
      ],
      want: { gets: [bound('B', 5)], size: 1, counts: { A: 0, B: 1 } },
    },
    {
      name: 're-pinning to a new incarnation of the same instance keeps the count',
      ops: [
        ['set', 's1', 'A', 0],
        ['set', 's1', 'A', 5, 'A#2'],
        ['get', 's1', 5],
      ],
      want: { gets: [bound('A', 5, 'A#2')], size: 1, counts: { A: 1 } },
    },
    {
      name: 'delete drops the binding and its count; deleting twice is harmless',
      ops: [
        ['set', 's1', 'A', 0],
        ['set', 's2', 'A', 0],
        ['delete', 's1'],
        ['delete', 's1'],
        ['delete', 'nope'],
      ],
      want: { size: 1, counts: { A: 1 } },
    },
    {
      name: 'sweep removes only the expired and says how many',
      ops: [
        ['set', 's1', 'A', 0],
        ['set', 's2', 'B', 500],
        ['set', 's3', 'A', 900],
        ['sweep', 1200],
        ['sweep', 1200],
      ],
      want: { swept: [1, 0], size: 2, counts: { A: 1, B: 1 } },
    },
    {
      name: 'sweep uses touch times, not set times',
      ops: [
        ['set', 's1', 'A', 0],
        ['set', 's2', 'B', 100],
        ['touch', 's1', 600],
        ['sweep', 1400],
      ],
      want: { swept: [1], size: 1, counts: { A: 1, B: 0 } },
    },
    {
      name: 'at capacity a new session evicts the least recently seen',
      ops: [
        ['set', 's1', 'A', 0],
        ['set', 's2', 'B', 1],
        ['set', 's3', 'A', 2],
        ['touch', 's1', 3],
        ['set', 's4', 'C', 4],
        ['get', 's2', 4],
        ['get', 's1', 4],
      ],
      want: { gets: [undefined, bound('A', 3)], size: 3, counts: { A: 2, B: 0, C: 1 }, evicted: 1 },
    },
    {
      name: 'at capacity re-pinning an existing session evicts nothing',
      ops: [
        ['set', 's1', 'A', 0],
        ['set', 's2', 'B', 1],
        ['set', 's3', 'C', 2],
        ['set', 's1', 'B', 3],
      ],
      want: { size: 3, counts: { A: 0, B: 2, C: 1 }, evicted: 0 },
    },
  ];
  for (const row of table) {
    it(row.name, () => {
      const s = new MemorySessionStore({ ttlMs: 1000, maxSessions: 3 });
      const got = run(s, row.ops);
      if (row.want.gets) assert.deepEqual(got.gets, row.want.gets);
      if (row.want.swept) assert.deepEqual(got.swept, row.want.swept);
      assert.equal(s.size(), row.want.size);
      for (const [instance, n] of Object.entries(row.want.counts)) {
        assert.equal(s.countByInstance(instance), n, `count of ${instance}`);
      }
      if (row.want.evicted !== undefined) assert.equal(s.evicted, row.want.evicted);
    });
  }

  it('get returns a copy: changing it does not change the table', () => {
    const s = new MemorySessionStore({ ttlMs: 1000 });
    s.set('s1', { instanceId: 'A', incarnation: 'A#1' }, 0);
    const b = s.get('s1', 0)!;
    b.instanceId = 'Z';
    assert.equal(s.get('s1', 0)!.instanceId, 'A');
  });

  it('counts stay equal to the bindings through a long mixed run', () => {
    // A fixed pseudo-random sequence (Park–Miller) of every operation, then a recount by hand.
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 48_271) % 2_147_483_647;
      return seed % n;
    };
    const s = new MemorySessionStore({ ttlMs: 500, maxSessions: 20 });
    const instances = ['A', 'B', 'C', 'D'];
    let now = 0;
    for (let i = 0; i < 5000; i++) {
      now += rand(20);
      const id = `s${rand(40)}`;
      const op = rand(10);
      if (op < 5) s.set(id, { instanceId: instances[rand(4)]!, incarnation: 'x' }, now);
      else if (op < 7) s.touch(id, now);
      else if (op < 8) s.get(id, now);
      else if (op < 9) s.delete(id);
      else s.sweep(now);
      assert.ok(s.size() <= 20);
    }
    assert.ok(s.evicted > 0, 'the run exercised eviction');
    const counts = new Map<string, number>();
    let held = 0;
    // get() drops what has expired, so afterwards the store must count exactly the live bindings.
    for (let k = 0; k < 40; k++) {
      const b = s.get(`s${k}`, now);
      if (b) {
        counts.set(b.instanceId, (counts.get(b.instanceId) ?? 0) + 1);
        held += 1;
      }
    }
    assert.equal(s.size(), held);
    for (const inst of instances) assert.equal(s.countByInstance(inst), counts.get(inst) ?? 0, inst);
  });
});

describe('MemorySessionStore options', () => {
  it('defaults maxSessions to 100000', () => {
    assert.equal(new MemorySessionStore({ ttlMs: 1 }).maxSessions, 100_000);
  });
  const table = [
    { name: 'ttlMs 0', options: { ttlMs: 0 }, want: /ttlMs=0/ },
    { name: 'ttlMs NaN', options: { ttlMs: Number.NaN }, want: /ttlMs=NaN/ },
    { name: 'maxSessions 0', options: { ttlMs: 1, maxSessions: 0 }, want: /maxSessions=0/ },
    { name: 'fractional maxSessions', options: { ttlMs: 1, maxSessions: 2.5 }, want: /maxSessions=2.5/ },
  ];
  for (const row of table) {
    it(`refuses ${row.name}`, () => {
      assert.throws(() => new MemorySessionStore(row.options), { name: 'TypeError', message: row.want });
    });
  }
});
