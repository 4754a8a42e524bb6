// Statistics on raw samples (nearest-rank percentiles), shared by the load-test CLI and the benchmarks.

export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export const median = (samples: readonly number[]) => percentile(samples, 50);

export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
