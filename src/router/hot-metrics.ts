// The router's per-request metrics (requests by instance and code, duration and time to first byte by
// instance), kept in plain numbers on the hot path and turned into Prometheus samples only when scraped.
// prom-client hashes and validates the label set and allocates on every observe, even through a cached
// child (measured: ~2 µs and most of the extra garbage per request for three observations). These
// register in a prom-client Registry like any metric and read the same (`get()` has prom-client's shape).
import type { Registry } from 'prom-client';

/** One sample as prom-client's registry formats it. */
export interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
  /** Labels written after `labels` (prom-client's histograms put `le` first). */
  sharedLabels?: Record<string, string>;
}

/** What `get()` answers: prom-client's shape (name, help, type, aggregator, values). */
export interface Samples {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  values: Sample[];
}

/** One labelled series of a counter: `inc()` is an addition. */
export interface CounterChild {
  inc(by?: number): void;
}

/** One labelled series of a histogram: `observe()` is a bucket search and three additions. */
export interface HistogramChild {
  observe(value: number): void;
}

interface Series<T> {
  labels: Record<string, string>;
  data: T;
}

/** Shared by the two kinds: children by label values, registered under one name. */
abstract class HotMetric<T> {
  readonly aggregator = 'sum' as const;
  protected readonly series = new Map<string, Series<T>>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    registry: Registry,
  ) {
    registry.registerMetric(this as never);
  }

  protected seriesFor(values: Record<string, string>): Series<T> {
    const key = this.labelNames.map((n) => values[n] ?? '').join('\u0000');
    let s = this.series.get(key);
    if (!s) {
      const labels: Record<string, string> = {};
      for (const n of this.labelNames) labels[n] = values[n] ?? '';
      s = { labels, data: this.fresh() };
      this.series.set(key, s);
    }
    return s;
  }

  protected abstract fresh(): T;

  reset(): void {
    this.series.clear();
  }
}

export class HotCounter extends HotMetric<{ value: number }> {
  readonly type = 'counter' as const;

  labels(values: Record<string, string>): CounterChild {
    const d = this.seriesFor(values).data;
    return {
      inc(by = 1) {
        d.value += by;
      },
    };
  }

  protected fresh() {
    return { value: 0 };
  }

  async get(): Promise<Samples> {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: [...this.series.values()].map((s) => ({ labels: s.labels, value: s.data.value })),
    };
  }
}

interface Buckets {
  /** Count per bucket (not cumulative), the last one for +Inf. */
  counts: Float64Array;
  sum: number;
  count: number;
}

export class HotHistogram extends HotMetric<Buckets> {
  readonly type = 'histogram' as const;

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly buckets: readonly number[],
    registry: Registry,
  ) {
    super(name, help, labelNames, registry);
  }

  labels(values: Record<string, string>): HistogramChild {
    const d = this.seriesFor(values).data;
    const bounds = this.buckets;
    return {
      observe(value: number) {
        let i = 0;
        while (i < bounds.length && value > bounds[i]!) i++;
        d.counts[i]! += 1;
        d.sum += value;
        d.count += 1;
      },
    };
  }

  protected fresh(): Buckets {
    return { counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
  }

  /** For the exposition text: the series' labels after `le`, as prom-client writes them. */
  async getForPromString(): Promise<Samples> {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.series.values()) {
      let acc = 0;
      this.buckets.forEach((le, i) => {
        acc += s.data.counts[i]!;
        values.push({ labels: { le }, sharedLabels: s.labels, value: acc, metricName: bucket });
      });
      values.push({
        labels: { le: '+Inf' },
        sharedLabels: s.labels,
        value: s.data.count,
        metricName: bucket,
      });
      values.push({ labels: {}, sharedLabels: s.labels, value: s.data.sum, metricName: `${this.name}_sum` });
      values.push({
        labels: {},
        sharedLabels: s.labels,
        value: s.data.count,
        metricName: `${this.name}_count`,
      });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** As prom-client's Histogram.get(): one label set per value (the live feed reads these). */
  async get(): Promise<Samples> {
    const m = await this.getForPromString();
    const values = m.values.map(({ sharedLabels, ...rest }) => ({
      ...rest,
      labels: { ...sharedLabels, ...rest.labels },
    }));
    return { ...m, values };
  }
}
