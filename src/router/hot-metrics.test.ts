import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from './hot-metrics.js';

const BUCKETS = [0.001, 0.01, 0.1, 1];
const OBSERVED: Array<[string, number]> = [
  ['agent-1', 0.0005],
  ['agent-1', 0.001],
  ['agent-1', 0.05],
  ['agent-2', 3],
  ['agent-1', 0.2],
  ['agent-2', 0.01],
];

describe('hot metrics read exactly like prom-client', () => {
  it('a histogram: the same exposition text and get() values', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const hot = new HotHistogram('x_seconds', 'help text', ['instance'], BUCKETS, ours);
    const ref = new Histogram({
      name: 'x_seconds',
      help: 'help text',
      labelNames: ['instance'],
      buckets: BUCKETS,
      registers: [theirs],
    });
    for (const [instance, v] of OBSERVED) {
      hot.labels({ instance }).observe(v);
      ref.labels({ instance }).observe(v);
    }
    assert.equal(await ours.metrics(), await theirs.metrics());
    const strip = (x: { values: unknown[] }) =>
      JSON.parse(JSON.stringify(x.values, (k, v) => (k === 'exemplar' ? undefined : v))) as unknown;
    assert.deepEqual(strip(await hot.get()), strip(await ref.get()));
  });

  it('a counter: the same exposition text', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const hot = new HotCounter('y_total', 'help', ['instance', 'code'], ours);
    const ref = new Counter({
      name: 'y_total',
      help: 'help',
      labelNames: ['instance', 'code'],
      registers: [theirs],
    });
    for (const [instance] of OBSERVED) {
      hot.labels({ instance, code: '200' }).inc();
      ref.labels({ instance, code: '200' }).inc();
    }
    hot.labels({ instance: 'none', code: '503' }).inc(2);
    ref.labels({ instance: 'none', code: '503' }).inc(2);
    assert.equal(await ours.metrics(), await theirs.metrics());
  });

  it('a child taken twice is the same series', async () => {
    const r = new Registry();
    const c = new HotCounter('z_total', 'help', ['code'], r);
    c.labels({ code: '200' }).inc();
    c.labels({ code: '200' }).inc();
    assert.match(await r.metrics(), /z_total\{code="200"\} 2/);
  });
});
