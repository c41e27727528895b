/** Percentiles of a bench's samples (latencies in ms), rounded to microseconds. */
export interface Latency {
  p50: number | null;
  p99: number | null;
  p999: number | null;
  samples: number;
}

/** p50, p99 and p999 of `values` (nearest rank); null when there is none. */
export function percentiles(values: number[]): Latency {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number): number | null => (sorted.length === 0 ? null : Number(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!.toFixed(3)));
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999), samples: sorted.length };
}
