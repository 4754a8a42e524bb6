import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type BreakerOptions,
  type BreakerSnapshot,
  type BreakerTransition,
  CircuitBreaker,
} from './breaker.js';

const opts: BreakerOptions = { failureThreshold: 3, baseEjectionMs: 1000, maxEjectionMs: 8000 };

type Op =
  | ['can', number]
  | ['ok', number]
  | ['fail', number]
  | ['trip', number]
  | ['reset', number]
  | ['release'];

const show = (t: BreakerTransition) =>
  `${t.from}→${t.to}@${t.at}${t.ejectionMs === undefined ? '' : `+${t.ejectionMs}`}`;

/** Runs the ops; returns what each `can` answered and every transition, in order. */
function run(b: CircuitBreaker, ops: Op[]): { allowed: boolean[]; transitions: string[] } {
  const allowed: boolean[] = [];
  const transitions: string[] = [];
  for (const op of ops) {
    if (op[0] === 'can') allowed.push(b.canRequest(op[1]));
    else if (op[0] === 'release') b.releaseProbe();
    else if (op[0] === 'trip') assert.equal(b.trip(op[1]), b.transition);
    else if (op[0] === 'reset') assert.equal(b.reset(op[1]), b.transition);
    else {
      const returned = op[0] === 'ok' ? b.onSuccess(op[1]) : b.onFailure(op[1]);
      assert.equal(returned, b.transition, 'onSuccess/onFailure return the transition they made');
    }
    if (b.transition) transitions.push(show(b.transition));
  }
  return { allowed, transitions };
}

const trip: Op[] = [
  ['fail', 10],
  ['fail', 10],
  ['fail', 10],
];
const tripped = 'closed→open@10+1000';
// Two ejections (1000 then 2000 ms), then a passing probe closes it at 3000 with ejections = 2.
const twiceThenClosed: Op[] = [
  ['fail', 0],
  ['fail', 0],
  ['fail', 0],
  ['can', 1000],
  ['fail', 1000],
  ['can', 3000],
  ['ok', 3000],
];

describe('CircuitBreaker', () => {
  const table: Array<{
    name: string;
    options?: BreakerOptions;
    ops: Op[];
    now: number;
    want: { snapshot: BreakerSnapshot; allowed?: boolean[]; transitions?: string[] };
  }> = [
    {
      name: 'a new breaker is closed and lets requests through',
      ops: [['can', 0]],
      now: 0,
      want: {
        snapshot: { state: 'closed', consecutiveFailures: 0, ejections: 0 },
        allowed: [true],
        transitions: [],
      },
    },
    {
      name: 'failures below the threshold keep it closed',
      ops: [
        ['fail', 1],
        ['fail', 2],
      ],
      now: 2,
      want: { snapshot: { state: 'closed', consecutiveFailures: 2, ejections: 0 }, transitions: [] },
    },
    {
      name: 'a success resets the consecutive count',
      ops: [
        ['fail', 1],
        ['fail', 2],
        ['ok', 3],
        ['fail', 4],
      ],
      now: 4,
      want: { snapshot: { state: 'closed', consecutiveFailures: 1, ejections: 0 } },
    },
    {
      name: 'the threshold-th consecutive failure opens it for the base time',
      ops: trip,
      now: 10,
      want: {
        snapshot: { state: 'open', consecutiveFailures: 0, ejections: 1, openUntil: 1010 },
        transitions: [tripped],
      },
    },
    {
      name: 'open refuses until the ejection ends',
      ops: [...trip, ['can', 11], ['can', 1009]],
      now: 1009,
      want: {
        snapshot: { state: 'open', consecutiveFailures: 0, ejections: 1, openUntil: 1010 },
        allowed: [false, false],
      },
    },
    {
      name: 'at openUntil it goes half-open and lets exactly one probe through',
      ops: [...trip, ['can', 1010], ['can', 1010], ['can', 1500]],
      now: 1500,
      want: {
        snapshot: { state: 'half-open', consecutiveFailures: 0, ejections: 1 },
        allowed: [true, false, false],
        transitions: [tripped, 'open→half-open@1010'],
      },
    },
    {
      name: 'a passing probe closes it and keeps the ejection count',
      ops: [...trip, ['can', 1010], ['ok', 1020]],
      now: 1020,
      want: {
        snapshot: { state: 'closed', consecutiveFailures: 0, ejections: 1 },
        transitions: [tripped, 'open→half-open@1010', 'half-open→closed@1020'],
      },
    },
    {
      name: 'a failing probe opens it again for twice as long',
      ops: [...trip, ['can', 1010], ['fail', 1020]],
      now: 1020,
      want: {
        snapshot: { state: 'open', consecutiveFailures: 0, ejections: 2, openUntil: 3020 },
        transitions: [tripped, 'open→half-open@1010', 'half-open→open@1020+2000'],
      },
    },
    {
      name: 'ejections double up to maxEjectionMs',
      options: { ...opts, failureThreshold: 1 },
      ops: [
        ['fail', 0],
        ['can', 1000],
        ['fail', 1000],
        ['can', 3000],
        ['fail', 3000],
        ['can', 7000],
        ['fail', 7000],
        ['can', 15_000],
        ['fail', 15_000],
      ],
      now: 15_000,
      want: {
        snapshot: { state: 'open', consecutiveFailures: 0, ejections: 5, openUntil: 23_000 },
        transitions: [
          'closed→open@0+1000',
          'open→half-open@1000',
          'half-open→open@1000+2000',
          'open→half-open@3000',
          'half-open→open@3000+4000',
          'open→half-open@7000',
          'half-open→open@7000+8000',
          'open→half-open@15000',
          'half-open→open@15000+8000',
        ],
      },
    },
    {
      name: 'releasing an abandoned probe lets the next request probe',
      ops: [...trip, ['can', 1010], ['release'], ['can', 1011], ['can', 1012]],
      now: 1012,
      want: {
        snapshot: { state: 'half-open', consecutiveFailures: 0, ejections: 1 },
        allowed: [true, true, false],
      },
    },
    {
      name: 'releaseProbe does nothing when closed',
      ops: [['release'], ['can', 0]],
      now: 0,
      want: {
        snapshot: { state: 'closed', consecutiveFailures: 0, ejections: 0 },
        allowed: [true],
        transitions: [],
      },
    },
    {
      name: 'late answers while open neither close nor extend the ejection',
      ops: [...trip, ['ok', 500], ['fail', 600]],
      now: 600,
      want: {
        snapshot: { state: 'open', consecutiveFailures: 0, ejections: 1, openUntil: 1010 },
        transitions: [tripped],
      },
    },
    {
      name: 'it reads half-open once the ejection has ended, before any probe',
      ops: trip,
      now: 1010,
      want: { snapshot: { state: 'half-open', consecutiveFailures: 0, ejections: 1, openUntil: 1010 } },
    },
    {
      name: 'remembered ejections are kept just short of a base time closed',
      ops: twiceThenClosed,
      now: 3999,
      want: { snapshot: { state: 'closed', consecutiveFailures: 0, ejections: 2 } },
    },
    {
      name: 'one ejection is forgotten per base time closed',
      ops: twiceThenClosed,
      now: 4000,
      want: { snapshot: { state: 'closed', consecutiveFailures: 0, ejections: 1 } },
    },
    {
      name: 'all ejections are forgotten after enough time closed',
      ops: twiceThenClosed,
      now: 60_000,
      want: { snapshot: { state: 'closed', consecutiveFailures: 0, ejections: 0 } },
    },
    {
      name: 'after decay the next ejection is shorter',
      ops: [...twiceThenClosed, ['fail', 4000], ['fail', 4000], ['fail', 4000]],
      now: 4000,
      want: { snapshot: { state: 'open', consecutiveFailures: 0, ejections: 2, openUntil: 6000 } },
    },
  ];
  for (const row of table) {
    it(row.name, () => {
      const b = new CircuitBreaker(row.options ?? opts);
      const got = run(b, row.ops);
      assert.deepEqual(b.snapshot(row.now), row.want.snapshot);
      assert.equal(b.state(row.now), row.want.snapshot.state);
      if (row.want.allowed) assert.deepEqual(got.allowed, row.want.allowed);
      if (row.want.transitions) assert.deepEqual(got.transitions, row.want.transitions);
    });
  }
});

describe('CircuitBreaker.trip', () => {
  const table: Array<{ name: string; ops: Op[]; want: string[]; allowed?: boolean[] }> = [
    {
      name: 'a closed breaker ejects at once, whatever the count',
      ops: [
        ['fail', 0],
        ['trip', 5],
        ['can', 6],
        ['can', 1005],
      ],
      want: ['closed→open@5+1000', 'open→half-open@1005'],
      allowed: [false, true],
    },
    { name: 'an open breaker is not extended', ops: [...trip, ['trip', 500]], want: [tripped] },
    {
      name: 'a half-open breaker ejects again, for longer',
      ops: [...trip, ['can', 1010], ['trip', 1020]],
      want: [tripped, 'open→half-open@1010', 'half-open→open@1020+2000'],
    },
    {
      name: 'reset ends an ejection early, and the next one is longer',
      ops: [
        ['trip', 0],
        ['reset', 100],
        ['can', 101],
        ['trip', 200],
      ],
      want: ['closed→open@0+1000', 'open→closed@100', 'closed→open@200+2000'],
      allowed: [true],
    },
    { name: 'reset of a closed breaker changes nothing', ops: [['reset', 5]], want: [] },
  ];
  for (const row of table) {
    it(row.name, () => {
      const got = run(new CircuitBreaker(opts), row.ops);
      assert.deepEqual(got.transitions, row.want);
      if (row.allowed) assert.deepEqual(got.allowed, row.allowed);
    });
  }
});

describe('CircuitBreaker.available', () => {
  const table: Array<{ name: string; ops: Op[]; now: number; want: boolean }> = [
    { name: 'closed', ops: [], now: 0, want: true },
    { name: 'open before the end', ops: trip, now: 1009, want: false },
    { name: 'open after the end (probe not taken)', ops: trip, now: 1010, want: true },
    { name: 'half-open with the probe out', ops: [...trip, ['can', 1010]], now: 1011, want: false },
    {
      name: 'half-open after the probe was released',
      ops: [...trip, ['can', 1010], ['release']],
      now: 1011,
      want: true,
    },
  ];
  for (const row of table) {
    it(row.name, () => {
      const b = new CircuitBreaker(opts);
      run(b, row.ops);
      assert.equal(b.available(row.now), row.want);
      // Asking twice changes nothing: available() never takes the probe.
      assert.equal(b.available(row.now), row.want);
      assert.equal(b.canRequest(row.now), row.want);
    });
  }
});

describe('CircuitBreaker options', () => {
  it('defaults to 5 failures, 30 s base, 300 s max', () => {
    const b = new CircuitBreaker();
    assert.deepEqual([b.failureThreshold, b.baseEjectionMs, b.maxEjectionMs], [5, 30_000, 300_000]);
  });
  const table: Array<{ name: string; options: BreakerOptions; want: RegExp }> = [
    { name: 'threshold 0', options: { failureThreshold: 0 }, want: /failureThreshold=0/ },
    { name: 'fractional threshold', options: { failureThreshold: 1.5 }, want: /failureThreshold=1.5/ },
    { name: 'base 0', options: { baseEjectionMs: 0 }, want: /baseEjectionMs=0/ },
    {
      name: 'max below base',
      options: { baseEjectionMs: 1000, maxEjectionMs: 999 },
      want: /maxEjectionMs=999/,
    },
  ];
  for (const row of table) {
    it(`refuses ${row.name}`, () => {
      assert.throws(() => new CircuitBreaker(row.options), { name: 'TypeError', message: row.want });
    });
  }
});
