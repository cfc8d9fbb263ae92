/** Exact quantiles of small in-memory samples, for the scripts (training, reference bins, benchmarks). */

/** Quantile with linear interpolation on a SORTED array (numpy "linear"). */
export function quantileSorted(sorted: number[], q: number): number {
  if (sorted.length === 0) throw new Error("quantile of empty array");
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** Median of unsorted values (the mean of the two middle values for an even count). */
export function median(values: number[]): number {
  const s = values.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Median with a 95% percentile-bootstrap interval (values drawn with replacement, `draws` times,
 * seeded: the same input gives the same interval). For per-round benchmark figures.
 */
export function bootstrapMedian(values: number[], draws = 2000, seed = 7): { point: number; lo: number; hi: number } {
  let s = seed >>> 0;
  const rand = () => {
    // mulberry32, as src/stats/random.ts (kept local: scripts/lib stays free of worker code)
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const meds: number[] = [];
  for (let i = 0; i < draws; i++) meds.push(median(values.map(() => values[Math.floor(rand() * values.length)])));
  meds.sort((a, b) => a - b);
  return { point: median(values), lo: quantileSorted(meds, 0.025), hi: quantileSorted(meds, 0.975) };
}
