/**
 * Statistics that only routing needs: binomial intervals (Wilson), the two-proportion z-test,
 * bootstrap intervals, and Beta sampling for Thompson sampling. General metrics (AUC, PSI, quantile
 * sketches) live in src/stats and are reused from there.
 *
 * Pure functions. Randomness is injectable (`rand: () => number`) so tests and bootstraps can be
 * seeded; the router passes Math.random.
 */
import { mulberry32 } from "../stats/random";

export { binomialUpperTail } from "../stats/binomial";

/** Standard normal CDF (Abramowitz & Stegun 7.1.26 through erf; absolute error < 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + y) : 0.5 * (1 - y);
}

/** Inverse standard normal CDF (Acklam's rational approximation; relative error < 1.2e-9). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError("p must be in (0, 1)");
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - lo) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/** Wilson score interval for a binomial proportion k/n at two-sided confidence `confidence`. */
export function binomialInterval(k: number, n: number, confidence = 0.95): { low: number; high: number } {
  if (n <= 0) return { low: 0, high: 1 };
  const z = normalQuantile(1 - (1 - confidence) / 2);
  const p = k / n;
  const denom = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / denom;
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) };
}

/**
 * Interval in which the count of a variant with share `p` falls with probability `confidence` over
 * n independent draws (normal approximation to the binomial; fine for n*p*(1-p) >= ~25).
 */
export function binomialCountInterval(n: number, p: number, confidence: number): { low: number; high: number } {
  const z = normalQuantile(1 - (1 - confidence) / 2);
  const sd = Math.sqrt(n * p * (1 - p));
  return { low: n * p - z * sd, high: n * p + z * sd };
}

export interface ZTest {
  z: number;
  p_value: number;
}

/** Two-sided two-proportion z-test with pooled variance: H0 p1 == p2. */
export function twoProportionZTest(x1: number, n1: number, x2: number, n2: number): ZTest {
  if (n1 === 0 || n2 === 0) return { z: 0, p_value: 1 };
  const pooled = (x1 + x2) / (n1 + n2);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2));
  if (se === 0) return { z: 0, p_value: 1 };
  const z = (x1 / n1 - x2 / n2) / se;
  return { z, p_value: 2 * (1 - normalCdf(Math.abs(z))) };
}

/**
 * Percentile bootstrap interval of stat(a) - stat(b), resampling each group independently.
 * Returns null when a resample cannot be scored (e.g. AUC of a one-class resample) too often.
 */
export function bootstrapDifference<T>(
  a: T[],
  b: T[],
  stat: (sample: T[]) => number,
  opts: { iterations?: number; confidence?: number; rand?: () => number } = {},
): { low: number; high: number; estimate: number } | null {
  const iterations = opts.iterations ?? 300;
  const confidence = opts.confidence ?? 0.95;
  const rand = opts.rand ?? mulberry32(12345);
  const resample = (xs: T[]) => Array.from({ length: xs.length }, () => xs[Math.floor(rand() * xs.length)]);
  const diffs: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const d = stat(resample(a)) - stat(resample(b));
    if (Number.isFinite(d)) diffs.push(d);
  }
  if (diffs.length < iterations * 0.9) return null;
  diffs.sort((x, y) => x - y);
  const at = (q: number) => diffs[Math.min(diffs.length - 1, Math.max(0, Math.floor(q * diffs.length)))];
  return { low: at((1 - confidence) / 2), high: at(1 - (1 - confidence) / 2), estimate: stat(a) - stat(b) };
}

function standardNormal(rand: () => number): number {
  // Box-Muller; 1 - rand() keeps the log argument in (0, 1].
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** Gamma(shape, 1) by Marsaglia & Tsang (2000); shape < 1 through the boost Gamma(a+1) * U^(1/a). */
export function sampleGamma(shape: number, rand: () => number): number {
  if (shape < 1) return sampleGamma(shape + 1, rand) * Math.pow(1 - rand(), 1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = standardNormal(rand);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rand();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

export function sampleBeta(alpha: number, beta: number, rand: () => number): number {
  const x = sampleGamma(alpha, rand);
  const y = sampleGamma(beta, rand);
  return x / (x + y);
}

/**
 * Thompson allocation with a floor: the share of draws in which each arm's Beta(1 + s, 1 + f)
 * sample is the largest, scaled into what is left after every arm gets `floor`.
 */
export function thompsonShares(arms: { successes: number; failures: number }[], floor: number, draws = 4000, rand: () => number = Math.random): number[] {
  const wins = new Array(arms.length).fill(0);
  for (let i = 0; i < draws; i++) {
    let best = 0;
    let bestValue = -1;
    arms.forEach((arm, k) => {
      const v = sampleBeta(1 + arm.successes, 1 + arm.failures, rand);
      if (v > bestValue) {
        bestValue = v;
        best = k;
      }
    });
    wins[best]++;
  }
  const free = 1 - floor * arms.length;
  return wins.map((w) => floor + (free * w) / draws);
}

/**
 * One-sided lower confidence bound, at level 1 - alpha, of p1 - p2 for two independent binomial
 * proportions x1/n1 and x2/n2: Newcombe's hybrid score method (method 10 of Newcombe 1998), built
 * from Wilson bounds. With n2 = Infinity (a known rate p2 = x2) it is the Wilson lower bound of p1
 * minus p2. Good coverage at small n and at rates near 0, where the Wald interval fails.
 */
export function differenceLowerBound(x1: number, n1: number, x2: number, n2: number, alpha: number): number {
  const p1 = x1 / n1;
  const l1 = binomialInterval(x1, n1, 1 - 2 * alpha).low;
  if (!Number.isFinite(n2)) return l1 - x2;
  const p2 = n2 > 0 ? x2 / n2 : 0;
  const u2 = binomialInterval(x2, n2, 1 - 2 * alpha).high;
  return p1 - p2 - Math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2);
}
