/**
 * Two-sample tests and divergences for drift: Kolmogorov-Smirnov (numeric features), chi-square
 * test of homogeneity and Jensen-Shannon distance (categorical features).
 *
 * KS p-value: the asymptotic two-sided p-value with Stephens' small-sample correction,
 * Q_KS((sqrt(en) + 0.12 + 0.11/sqrt(en)) D), en = n m / (n + m). scipy's `ks_2samp(method="asymp")`
 * evaluates the exact one-sample distribution at round(en) instead; the two agree within a few
 * percent relative (fixtures in test/fixtures/stats/ record both) and identically decide drift
 * at the usual alpha levels. Exact permutation p-values are not computed (O(n m) per test).
 */
import { chiSquareSf, kolmogorovSf } from "./special";

export interface TestResult {
  statistic: number;
  pvalue: number;
}

/** Two-sample KS statistic sup |F_a - F_b| (ties handled: CDFs are evaluated after each distinct value). */
export function ksStatistic(a: readonly number[], b: readonly number[]): number {
  const x = [...a].sort((p, q) => p - q);
  const y = [...b].sort((p, q) => p - q);
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i], y[j]);
    while (i < x.length && x[i] === v) i++;
    while (j < y.length && y[j] === v) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  return d;
}

export function ksTwoSample(a: readonly number[], b: readonly number[]): TestResult {
  if (a.length === 0 || b.length === 0) return { statistic: Number.NaN, pvalue: Number.NaN };
  const statistic = ksStatistic(a, b);
  const en = (a.length * b.length) / (a.length + b.length);
  const root = Math.sqrt(en);
  return { statistic, pvalue: kolmogorovSf((root + 0.12 + 0.11 / root) * statistic) };
}

/**
 * Chi-square test of homogeneity on the 2 x k table [reference; current] (no continuity
 * correction, as scipy's chi2_contingency(correction=False)). Categories empty in both rows are
 * dropped; dof = k' - 1.
 */
export function chiSquareHomogeneity(reference: readonly number[], current: readonly number[]): TestResult & { dof: number } {
  if (reference.length !== current.length) throw new RangeError("chi-square: rows differ in length");
  const cols: [number, number][] = [];
  for (let i = 0; i < reference.length; i++) if (reference[i] + current[i] > 0) cols.push([reference[i], current[i]]);
  const r1 = cols.reduce((s, c) => s + c[0], 0);
  const r2 = cols.reduce((s, c) => s + c[1], 0);
  const total = r1 + r2;
  const dof = cols.length - 1;
  if (r1 === 0 || r2 === 0 || dof < 1) return { statistic: Number.NaN, pvalue: Number.NaN, dof: Math.max(dof, 0) };
  let statistic = 0;
  for (const [a, b] of cols) {
    const colTotal = a + b;
    const ea = (r1 * colTotal) / total;
    const eb = (r2 * colTotal) / total;
    statistic += (a - ea) ** 2 / ea + (b - eb) ** 2 / eb;
  }
  return { statistic, pvalue: chiSquareSf(statistic, dof), dof };
}

/** Jensen-Shannon distance (square root of the divergence, log base 2, in [0, 1]) between two count vectors. */
export function jensenShannonDistance(p: readonly number[], q: readonly number[]): number {
  if (p.length !== q.length) throw new RangeError("jensen-shannon: vectors differ in length");
  const sp = p.reduce((s, v) => s + v, 0);
  const sq = q.reduce((s, v) => s + v, 0);
  if (sp === 0 || sq === 0) return Number.NaN;
  let js = 0;
  for (let i = 0; i < p.length; i++) {
    const a = p[i] / sp;
    const b = q[i] / sq;
    const m = (a + b) / 2;
    if (a > 0) js += 0.5 * a * Math.log2(a / m);
    if (b > 0) js += 0.5 * b * Math.log2(b / m);
  }
  return Math.sqrt(Math.max(0, js));
}
