// The benchmarks' statistics are the project's own (src/core/stats.ts).
export { median, percentile, round } from '../src/core/stats.js';
