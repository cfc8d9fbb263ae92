/**
 * Distribution-shift statistics against a training reference.
 *
 * Binning rule shared with the training script (scripts/lib/manifest.ts writes references with it):
 * a value x falls in bin clamp(upperBound(edges, x) - 1, 0, bins - 1), where upperBound is the index
 * of the first edge > x. Bins are [e_i, e_{i+1}), the last one closed; out-of-range values go to the
 * first/last bin; with repeated edges the value goes to the last bin whose lower edge equals it.
 */

export function binIndex(edges: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = edges.length; // first index with edges[i] > x
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (edges[mid] > x) hi = mid;
    else lo = mid + 1;
  }
  return Math.min(edges.length - 2, Math.max(0, lo - 1));
}

/** Counts of `values` per bin of `edges` (NaN values are skipped). */
export function histogram(edges: readonly number[], values: Iterable<number>): number[] {
  const counts = new Array(edges.length - 1).fill(0);
  for (const v of values) if (!Number.isNaN(v)) counts[binIndex(edges, v)]++;
  return counts;
}

/**
 * Population Stability Index between a reference and a current distribution given as counts over
 * the same bins: sum over bins of (a - e) * ln(a / e), with shares a, e. Empty bins take the share
 * `epsilon` (default 1e-4) so the sum stays finite; this is the usual convention (e.g. Evidently
 * uses 1e-4 for empty bins).
 */
export function psi(referenceCounts: readonly number[], currentCounts: readonly number[], epsilon = 1e-4): number {
  if (referenceCounts.length !== currentCounts.length) throw new RangeError("psi: bin counts differ in length");
  const refTotal = referenceCounts.reduce((a, b) => a + b, 0);
  const curTotal = currentCounts.reduce((a, b) => a + b, 0);
  if (refTotal === 0 || curTotal === 0) return Number.NaN;
  let sum = 0;
  for (let i = 0; i < referenceCounts.length; i++) {
    const e = Math.max(referenceCounts[i] / refTotal, epsilon);
    const a = Math.max(currentCounts[i] / curTotal, epsilon);
    sum += (a - e) * Math.log(a / e);
  }
  return sum;
}
