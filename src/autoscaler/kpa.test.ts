import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KpaAutoscaler, type KpaOptions, type ScaleDecision } from './kpa.js';

// Short windows so rows stay small: 10 s stable, 1 s panic, 100 ms buckets, target 10 per instance.
const base: KpaOptions = {
  minInstances: 0,
  maxInstances: 100,
  targetPerInstance: 10,
  stableWindowMs: 10_000,
  panicWindowMs: 1_000,
  bucketMs: 100,
  scaleToZeroGraceMs: 3_000,
};

type Event =
  | { record: [at: number, concurrency: number, cpu?: number] }
  | { decide: [now: number, ready: number] };

const rec = (at: number, concurrency: number, cpu?: number): Event => ({ record: [at, concurrency, cpu] });
const dec = (now: number, ready: number): Event => ({ decide: [now, ready] });
/** One sample every 100 ms in [from, to). */
const steady = (from: number, to: number, concurrency: number, cpu?: number): Event[] => {
  const out: Event[] = [];
  for (let t = from; t < to; t += 100) out.push(rec(t, concurrency, cpu));
  return out;
};

function run(a: KpaAutoscaler, events: Event[]): ScaleDecision | undefined {
  let last: ScaleDecision | undefined;
  for (const e of events) {
    if ('record' in e) {
      const [at, concurrency, cpu] = e.record;
      a.record(at, cpu === undefined ? { concurrency } : { concurrency, cpu });
    } else {
      last = a.decide(...e.decide);
    }
  }
  return last;
}

/** The fields of `got` named in `want`, so a row states only what it is about. */
function pick(got: ScaleDecision, want: Partial<ScaleDecision>): Partial<ScaleDecision> {
  return Object.fromEntries(Object.keys(want).map((k) => [k, got[k as keyof ScaleDecision]]));
}

// A burst of 40 in the last second over a quiet stable window: stable asks 2, panic asks 4.
const burstAt10s = [...steady(0, 1000, 0), ...steady(9000, 10_000, 40), dec(9900, 2)];

describe('KpaAutoscaler.decide', () => {
  const table: Array<{
    name: string;
    options?: Partial<KpaOptions>;
    events: Event[];
    now: number;
    ready: number;
    want: Partial<ScaleDecision>;
  }> = [
    {
      name: 'no data keeps the current count and is not valid',
      events: [],
      now: 0,
      ready: 3,
      want: { desired: 3, valid: false, panic: false, reason: 'no-data' },
    },
    {
      name: 'no data still clamps the current count to maxInstances',
      options: { maxInstances: 2 },
      events: [],
      now: 0,
      ready: 5,
      want: { desired: 2, valid: false, reason: 'no-data' },
    },
    {
      name: 'steady load keeps the count',
      events: steady(0, 10_000, 30),
      now: 9900,
      ready: 3,
      want: { desired: 3, valid: true, panic: false, reason: 'stable', observedStable: 30, stableDesired: 3 },
    },
    {
      name: 'scales up in stable mode below the panic threshold (7 / 4 < 2)',
      events: steady(0, 2000, 70),
      now: 1900,
      ready: 4,
      want: { desired: 7, panic: false, reason: 'stable', panicDesired: 7 },
    },
    {
      name: 'panic starts exactly at the threshold (4 / 2 = 2) and follows the panic window',
      events: [...steady(0, 1000, 0), ...steady(9000, 10_000, 40)],
      now: 9900,
      ready: 2,
      want: {
        desired: 4,
        panic: true,
        reason: 'panic',
        stableDesired: 2,
        panicDesired: 4,
        observedPanic: 40,
      },
    },
    {
      name: 'just below the threshold (3 / 2) stays stable',
      events: [...steady(0, 1000, 0), ...steady(9000, 10_000, 30)],
      now: 9900,
      ready: 2,
      want: { desired: 2, panic: false, reason: 'stable', stableDesired: 2, panicDesired: 3 },
    },
    {
      name: 'no scale-down during panic even when both windows ask less',
      events: [...burstAt10s, ...steady(10_000, 12_000, 10)],
      now: 11_900,
      ready: 4,
      want: { desired: 4, panic: true, reason: 'panic', stableDesired: 2, panicDesired: 2 },
    },
    {
      name: 'panic holds until a whole stable window has passed (1 ms short)',
      events: [...burstAt10s, ...steady(10_000, 19_900, 10)],
      now: 19_899,
      ready: 4,
      want: { desired: 4, panic: true, reason: 'panic' },
    },
    {
      name: 'panic ends after a whole stable window below the threshold, then halves at most',
      events: [...burstAt10s, ...steady(10_000, 19_900, 10)],
      now: 19_900,
      ready: 4,
      want: { desired: 2, panic: false, reason: 'rate-limit', stableDesired: 2 },
    },
    {
      name: 'panic ends on silence too once the stable window has passed',
      events: [...burstAt10s],
      now: 30_000,
      ready: 4,
      want: { desired: 4, valid: false, panic: false, reason: 'no-data' },
    },
    {
      name: 'scale-up is limited to ceil(ready × maxScaleUpRate)',
      options: { maxScaleUpRate: 2, panicThreshold: 100 },
      events: steady(0, 1000, 100),
      now: 900,
      ready: 2,
      want: { desired: 4, reason: 'rate-limit', stableDesired: 4 },
    },
    {
      name: 'scale-down is limited to floor(ready / maxScaleDownRate)',
      events: steady(0, 1000, 10),
      now: 900,
      ready: 10,
      want: { desired: 5, reason: 'rate-limit', stableDesired: 5 },
    },
    {
      name: 'clamped up to minInstances',
      options: { minInstances: 3 },
      events: steady(0, 1000, 10),
      now: 900,
      ready: 3,
      want: { desired: 3, reason: 'min', stableDesired: 1 },
    },
    {
      name: 'clamped down to maxInstances',
      options: { maxInstances: 5 },
      events: steady(0, 1000, 70),
      now: 900,
      ready: 4,
      want: { desired: 5, reason: 'max', stableDesired: 7 },
    },
    {
      name: 'CPU wins over concurrency: ceil(2 × 0.875 / 0.5) = 4',
      options: { targetCpu: 0.5 },
      events: steady(0, 1000, 10, 0.875),
      now: 900,
      ready: 2,
      want: { desired: 4, reason: 'cpu', stableDesired: 1, cpuDesired: 4, observedCpu: 0.875 },
    },
    {
      name: 'concurrency wins over a low CPU',
      options: { targetCpu: 0.5 },
      events: steady(0, 1000, 30, 0.125),
      now: 900,
      ready: 3,
      want: { desired: 3, reason: 'stable', cpuDesired: 1 },
    },
    {
      name: 'CPU is ignored without targetCpu',
      events: steady(0, 1000, 10, 1),
      now: 900,
      ready: 2,
      want: { desired: 1, reason: 'stable', cpuDesired: undefined, observedCpu: undefined },
    },
    {
      name: 'keeps one instance until concurrency has been 0 for the grace (1 ms short)',
      options: { stableWindowMs: 2000, panicWindowMs: 500 },
      events: [rec(0, 5), ...steady(2000, 3000, 0)],
      now: 2999,
      ready: 1,
      want: { desired: 1, reason: 'grace', stableDesired: 0 },
    },
    {
      name: 'scales to zero once the grace has elapsed',
      options: { stableWindowMs: 2000, panicWindowMs: 500 },
      events: [rec(0, 5), ...steady(2000, 3000, 0)],
      now: 3000,
      ready: 1,
      want: { desired: 0, reason: 'scale-to-zero' },
    },
    {
      name: 'a pool never busy counts the grace from its first sample',
      events: steady(0, 3000, 0),
      now: 2999,
      ready: 1,
      want: { desired: 1, reason: 'grace' },
    },
    {
      name: 'a pool never busy scales to zero after the grace',
      events: steady(0, 3100, 0),
      now: 3000,
      ready: 1,
      want: { desired: 0, reason: 'scale-to-zero' },
    },
    {
      name: 'a pool at zero stays at zero while idle',
      events: steady(0, 1000, 0),
      now: 900,
      ready: 0,
      want: { desired: 0, reason: 'scale-to-zero' },
    },
    {
      name: 'minInstances 1 never scales to zero',
      options: { minInstances: 1 },
      events: steady(0, 20_000, 0),
      now: 19_900,
      ready: 1,
      want: { desired: 1, reason: 'min' },
    },
    {
      name: 'activation: a waiting request at zero starts one instance at once',
      events: [...steady(0, 10_000, 0), rec(10_000, 1)],
      now: 10_000,
      ready: 0,
      want: { desired: 1, valid: true, reason: 'activation' },
    },
    {
      name: 'activation holds even when the windows have no data',
      events: [rec(0, 1)],
      now: 60_000,
      ready: 0,
      want: { desired: 1, valid: true, reason: 'activation' },
    },
    {
      name: 'a burst at zero panics straight to the needed count',
      events: [rec(0, 50)],
      now: 0,
      ready: 0,
      want: { desired: 5, panic: true, reason: 'panic' },
    },
    {
      name: 'float noise in the target does not add an instance (56 / (80 × 0.7))',
      options: { targetPerInstance: 80 * 0.7 },
      events: steady(0, 1000, 56),
      now: 900,
      ready: 1,
      want: { desired: 1, reason: 'stable' },
    },
  ];
  for (const row of table) {
    it(row.name, () => {
      const a = new KpaAutoscaler({ ...base, ...row.options });
      run(a, row.events);
      const got = a.decide(row.now, row.ready);
      assert.deepEqual(pick(got, row.want), row.want);
    });
  }
});

describe('KpaAutoscaler: a burst that stops', () => {
  // Load 10 (one instance), a burst of 200 for 3 s, then nothing. Instances appear at once: the next
  // decision sees ready = the previous desired. Samples every 100 ms, a decision every second.
  const options: KpaOptions = { ...base, minInstances: 1 };
  const load = (t: number) => (t < 10_000 ? 10 : t < 13_000 ? 200 : 0);
  const a = new KpaAutoscaler(options);
  const steps: Array<{ now: number; ready: number; d: ScaleDecision }> = [];
  let ready = 1;
  for (let now = 0; now <= 60_000; now += 100) {
    a.record(now, { concurrency: load(now) });
    if (now % 1000 === 0) {
      const d = a.decide(now, ready);
      steps.push({ now, ready, d });
      ready = d.desired;
    }
  }
  const over = (s: (typeof steps)[number]) =>
    Math.ceil((s.d.observedPanic ?? 0) / options.targetPerInstance) / Math.max(1, s.ready) >= 2;
  const lastOver = steps.filter(over).at(-1)!.now;
  const firstCalm = steps.findIndex((s, i) => i > 0 && steps[i - 1]!.d.panic && !s.d.panic);

  it('panics during the burst', () => assert.ok(steps.some((s) => s.d.panic)));
  it('never lowers the count while in panic', () => {
    for (let i = 1; i < steps.length; i++) {
      if (steps[i]!.d.panic) assert.ok(steps[i]!.d.desired >= steps[i - 1]!.d.desired, `at ${steps[i]!.now}`);
    }
  });
  it('leaves panic exactly one stable window after the last over-threshold reading', () => {
    assert.equal(steps[firstCalm]!.now, lastOver + options.stableWindowMs!);
  });
  it('after panic, falls by at most half per decision and never panics again', () => {
    for (let i = firstCalm; i < steps.length; i++) {
      const s = steps[i]!;
      assert.equal(s.d.panic, false, `at ${s.now}`);
      assert.ok(s.d.desired >= Math.floor(s.ready / 2), `at ${s.now}: ${s.d.desired} < ${s.ready} / 2`);
      assert.ok(s.d.desired <= s.ready, `at ${s.now}: went back up`);
    }
  });
  it('settles at minInstances', () => assert.equal(steps.at(-1)!.d.desired, 1));
});

describe('KpaAutoscaler options', () => {
  const table: Array<{ name: string; options: Partial<KpaOptions>; want: RegExp }> = [
    { name: 'negative minInstances', options: { minInstances: -1 }, want: /minInstances=-1/ },
    { name: 'fractional minInstances', options: { minInstances: 1.5 }, want: /minInstances=1.5/ },
    { name: 'maxInstances 0', options: { maxInstances: 0 }, want: /maxInstances=0/ },
    { name: 'maxInstances below min', options: { minInstances: 3, maxInstances: 2 }, want: /maxInstances=2/ },
    { name: 'target 0', options: { targetPerInstance: 0 }, want: /targetPerInstance=0/ },
    { name: 'target NaN', options: { targetPerInstance: Number.NaN }, want: /targetPerInstance=NaN/ },
    { name: 'stable window 0', options: { stableWindowMs: 0 }, want: /stableWindowMs=0/ },
    { name: 'panic window > stable', options: { panicWindowMs: 20_000 }, want: /panicWindowMs=20000/ },
    { name: 'panic threshold < 1', options: { panicThreshold: 0.5 }, want: /panicThreshold=0.5/ },
    { name: 'scale-up rate 1', options: { maxScaleUpRate: 1 }, want: /maxScaleUpRate=1/ },
    { name: 'scale-down rate 1', options: { maxScaleDownRate: 1 }, want: /maxScaleDownRate=1/ },
    { name: 'negative grace', options: { scaleToZeroGraceMs: -1 }, want: /scaleToZeroGraceMs=-1/ },
    { name: 'targetCpu 0', options: { targetCpu: 0 }, want: /targetCpu=0/ },
    { name: 'targetCpu above 1', options: { targetCpu: 1.5 }, want: /targetCpu=1.5/ },
    { name: 'bucket wider than the panic window', options: { bucketMs: 2000 }, want: /bucketMs=2000/ },
  ];
  for (const row of table) {
    it(`refuses ${row.name}`, () => {
      assert.throws(() => new KpaAutoscaler({ ...base, ...row.options }), {
        name: 'TypeError',
        message: row.want,
      });
    });
  }

  it('an explicit undefined keeps the default', () => {
    const a = new KpaAutoscaler({
      ...base,
      stableWindowMs: undefined,
      panicWindowMs: undefined,
      bucketMs: undefined,
    });
    a.record(0, { concurrency: 10 });
    assert.equal(a.decide(59_999, 1).valid, true);
    assert.equal(a.decide(60_000, 1).valid, false);
  });
  it('defaults the bucket to a sixth of a short panic window', () => {
    assert.doesNotThrow(
      () => new KpaAutoscaler({ minInstances: 0, maxInstances: 1, targetPerInstance: 1, panicWindowMs: 600 }),
    );
  });
  it('refuses a negative ready count', () => {
    assert.throws(() => new KpaAutoscaler(base).decide(0, -1), {
      name: 'TypeError',
      message: /readyInstances=-1/,
    });
  });
  it('refuses a NaN sample', () => {
    assert.throws(() => new KpaAutoscaler(base).record(0, { concurrency: Number.NaN }), {
      name: 'TypeError',
      message: /sample.concurrency=NaN/,
    });
  });
});
