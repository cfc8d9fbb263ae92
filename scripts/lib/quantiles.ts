/** Exact quantiles of small in-memory samples, for the scripts (training, reference bins, benchmarks). */

import { mulberry32 } from "./prng.ts";

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
  const rand = mulberry32(seed);
  const meds: number[] = [];
  for (let i = 0; i < draws; i++) meds.push(median(values.map(() => values[Math.floor(rand() * values.length)])));
  meds.sort((a, b) => a - b);
  return { point: median(values), lo: quantileSorted(meds, 0.025), hi: quantileSorted(meds, 0.975) };
}

/**
 * Median of grouped values (a benchmark's blocks within rounds) with a 95% cluster-bootstrap
 * interval: groups drawn with replacement, then values within each drawn group, 2000 times, seeded.
 * Also each group's own median.
 */
export function clusterBootstrapMedian(groups: number[][], seed = 7): { point: number; lo: number; hi: number; perGroup: number[] } {
  const rand = mulberry32(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
  const draws: number[] = [];
  for (let i = 0; i < 2000; i++) draws.push(median(groups.map(() => pick(groups)).flatMap((group) => group.map(() => pick(group)))));
  draws.sort((a, b) => a - b);
  return { point: median(groups.flat()), lo: draws[Math.floor(0.025 * draws.length)], hi: draws[Math.floor(0.975 * draws.length)], perGroup: groups.map(median) };
}
