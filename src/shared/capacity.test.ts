import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { nextShare, type RouterReport, targetShare, viewKey } from './capacity.js';

describe('targetShare', () => {
  const table = [
    { total: 80, routers: ['a'], want: [80] },
    { total: 80, routers: ['a', 'b'], want: [40, 40] },
    { total: 80, routers: ['a', 'b', 'c'], sum: 80, each: [26, 27] },
    { total: 1, routers: ['a', 'b'], sum: 1, each: [0, 1] },
    { total: 5, routers: ['c', 'a', 'b', 'd'], sum: 5, each: [1, 2] },
  ];
  for (const t of table) {
    it(`${t.total} slots over ${t.routers.length} router(s)`, () => {
      for (const instance of ['agent-1', 'agent-2', 'agent-3']) {
        const shares = t.routers.map((r) => targetShare(t.total, t.routers, r, instance));
        if (t.want) assert.deepEqual(shares, t.want);
        assert.equal(
          shares.reduce((a, b) => a + b, 0),
          t.sum ?? t.total,
        );
        for (const s of shares) assert.ok(s >= (t.each?.[0] ?? 0) && s <= (t.each?.[1] ?? t.total));
      }
    });
  }
  it('a router outside the view gets nothing', () => {
    assert.equal(targetShare(80, ['a', 'b'], 'c', 'agent-1'), 0);
  });
  it('the extra slot of an uneven split is not always on the same router', () => {
    const holders = new Set<number>();
    for (let i = 1; i <= 12; i++) {
      const s = ['a', 'b', 'c'].map((r) => targetShare(80, ['a', 'b', 'c'], r, `agent-${i}`));
      holders.add(s.indexOf(26));
    }
    assert.ok(holders.size > 1, `26 always on router ${[...holders]}`);
  });
});

describe('nextShare', () => {
  const ab = ['a', 'b'];
  const report = (id: string, view: string[], share: number, inflight = 0): RouterReport => ({
    id,
    view: viewKey(view),
    shares: { 'agent-1': share },
    inflight: { 'agent-1': inflight },
  });
  const table: Array<{ name: string; input: Parameters<typeof nextShare>[0]; want: number }> = [
    {
      name: 'alone: the whole capacity',
      input: { total: 80, me: 'a', routers: ['a'], others: [], current: 0, instance: 'agent-1' },
      want: 80,
    },
    {
      name: 'a router joins: the old one lowers at once',
      input: { total: 80, me: 'a', routers: ab, others: [], current: 80, instance: 'agent-1' },
      want: 40,
    },
    {
      name: 'the new one waits while the other has not reported this view',
      input: {
        total: 80,
        me: 'b',
        routers: ab,
        others: [report('a', ['a'], 80, 3)],
        current: 0,
        instance: 'agent-1',
      },
      want: 0,
    },
    {
      name: 'the new one waits for a peer it has not heard from',
      input: { total: 80, me: 'b', routers: ab, others: [], current: 0, instance: 'agent-1' },
      want: 0,
    },
    {
      name: 'the other lowered but still has 70 in flight: room for 10',
      input: {
        total: 80,
        me: 'b',
        routers: ab,
        others: [report('a', ab, 40, 70)],
        current: 0,
        instance: 'agent-1',
      },
      want: 10,
    },
    {
      name: 'the other settled: the whole target',
      input: {
        total: 80,
        me: 'b',
        routers: ab,
        others: [report('a', ab, 40, 12)],
        current: 10,
        instance: 'agent-1',
      },
      want: 40,
    },
    {
      name: 'never lower than the current share while raising',
      input: {
        total: 80,
        me: 'b',
        routers: ab,
        others: [report('a', ab, 40, 79)],
        current: 10,
        instance: 'agent-1',
      },
      want: 10,
    },
    {
      name: 'a router left: raise once the rest report the smaller view',
      input: {
        total: 80,
        me: 'a',
        routers: ab,
        others: [report('b', ab, 27)],
        current: 27,
        instance: 'agent-1',
      },
      want: 40,
    },
    {
      name: 'raises held (just reconnected)',
      input: {
        total: 80,
        me: 'a',
        routers: ['a'],
        others: [],
        current: 27,
        instance: 'agent-1',
        holdRaises: true,
      },
      want: 27,
    },
  ];
  for (const t of table) it(t.name, () => assert.equal(nextShare(t.input), t.want));
});

/**
 * A simulation of routers that join, leave and send requests, each step one router acting on the
 * reports it last read (possibly stale). Whatever the order, one instance never holds more than the
 * total across the live routers.
 */
describe('capacity split under any interleaving', () => {
  it('never more than the total on an instance', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('heartbeat' as const), r: fc.nat(3) }),
      fc.record({ kind: fc.constant('read' as const), r: fc.nat(3) }),
      fc.record({ kind: fc.constant('grant' as const), r: fc.nat(3), n: fc.integer({ min: 1, max: 40 }) }),
      fc.record({ kind: fc.constant('finish' as const), r: fc.nat(3), n: fc.integer({ min: 1, max: 40 }) }),
      fc.record({ kind: fc.constant('join' as const), r: fc.nat(3) }),
      fc.record({ kind: fc.constant('leave' as const), r: fc.nat(3) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.array(step, { maxLength: 120 }), (total, steps) => {
        const names = ['r0', 'r1', 'r2', 'r3'];
        interface Sim {
          live: boolean;
          share: number;
          inflight: number;
          /** Members and reports as this router last read them. */
          seen: string[];
          reports: RouterReport[];
        }
        const sims = names.map((): Sim => ({ live: false, share: 0, inflight: 0, seen: [], reports: [] }));
        sims[0]!.live = true;
        sims[0]!.seen = ['r0'];
        const published = new Map<string, RouterReport>();
        const publish = (i: number) => {
          const s = sims[i]!;
          published.set(names[i]!, {
            id: names[i]!,
            view: viewKey(s.seen),
            shares: { x: s.share },
            inflight: { x: s.inflight },
          });
        };
        publish(0);
        for (const st of steps) {
          const s = sims[st.r]!;
          const me = names[st.r]!;
          if (st.kind === 'join' && !s.live) {
            // Registering and reading the others is one transaction (router-presence.ts).
            Object.assign(s, {
              live: true,
              share: 0,
              inflight: 0,
              seen: [...published.keys(), me],
              reports: [...published.values()].map((r) => structuredClone(r)),
            });
            publish(st.r);
          } else if (st.kind === 'leave' && s.live && s.inflight === 0) {
            s.live = false;
            published.delete(me);
          } else if (!s.live) {
            continue;
          } else if (st.kind === 'read') {
            s.seen = [...published.keys()];
            s.reports = [...published.values()].filter((r) => r.id !== me).map((r) => structuredClone(r));
          } else if (st.kind === 'heartbeat') {
            // Apply a share from what was read, then report it (the report follows the apply).
            s.share = nextShare({
              total,
              me,
              routers: s.seen,
              others: s.reports,
              current: s.share,
              instance: 'x',
            });
            publish(st.r);
          } else if (st.kind === 'grant') {
            s.inflight = Math.max(s.inflight, Math.min(s.share, s.inflight + st.n));
          } else if (st.kind === 'finish') {
            s.inflight = Math.max(0, s.inflight - st.n);
          }
          const onAgent = sims.reduce((a, x) => a + (x.live ? x.inflight : 0), 0);
          if (onAgent > total) return false;
        }
        return true;
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 3000) },
    );
  });
});
