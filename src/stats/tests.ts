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
import { binIndex } from "./drift";
import { SortedIndex } from "./locate";
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
  return { statistic, pvalue: ksPvalue(statistic, a.length, b.length) };
}

/** The asymptotic two-sided KS p-value for statistic D on samples of n and m (Stephens' correction). */
export function ksPvalue(statistic: number, n: number, m: number): number {
  const root = Math.sqrt((n * m) / (n + m));
  return kolmogorovSf((root + 0.12 + 0.11 / root) * statistic);
}

/**
 * KS against a reference sample from counts, so every row can take part without being stored.
 *
 * The reference sample's distinct values u_0 < ... < u_{m-1} cut the line into 2m + 1 cells:
 * cell 2i is the open interval (u_{i-1}, u_i) (cell 0 everything below u_0, cell 2m everything
 * above u_{m-1}) and cell 2i + 1 is the point u_i. Between reference values F_ref is constant and
 * F_cur only rises, so sup |F_ref - F_cur| is reached just before some u_i or at some u_i, and
 * both CDFs there follow from the cell counts: the statistic equals `ksStatistic(reference,
 * every current value)` exactly, whatever order or batching the values arrived in, and the
 * counts merge by addition. Cost per value: a guide-table lookup and a binary search over the
 * few reference values in the value's bucket (`SortedIndex`), exactly the cell a binary search over
 * all m values gives.
 */
export class KsGrid {
  /** The distinct reference values, ascending. */
  readonly values: Float64Array;
  /** Reference values <= values[i]. */
  private readonly atOrBelow: Float64Array;
  readonly referenceSize: number;

  constructor(referenceSample: readonly number[]) {
    const sorted = referenceSample.filter((x) => x === x).sort((p, q) => p - q);
    const values: number[] = [];
    const cum: number[] = [];
    for (let i = 0; i < sorted.length; i++) {
      if (i + 1 < sorted.length && sorted[i + 1] === sorted[i]) continue;
      values.push(sorted[i]);
      cum.push(i + 1);
    }
    this.values = Float64Array.from(values);
    this.atOrBelow = Float64Array.from(cum);
    this.referenceSize = sorted.length;
    this.index = new SortedIndex(this.values);
  }

  private readonly index: SortedIndex;

  get cells(): number {
    return 2 * this.values.length + 1;
  }

  /** The cell of x (not NaN). */
  cellOf(x: number): number {
    return this.index.cellOf(x);
  }

  /**
   * For each cell, the histogram bin (`binIndex(edges, x)`) every value x of that cell falls in, or
   * -1 where the cell's values do not all share one bin (an edge lies inside the open interval, so
   * the caller bins that value itself). A point cell has one value; an interval cell without an
   * edge inside has the bin of its lower end, since bins only change at edges. So a value counted
   * in its KS cell finds its bin with one array read, the same bin `binIndex` gives.
   */
  binsOfCells(edges: ArrayLike<number>): Int32Array {
    const u = this.values;
    const m = u.length;
    const table = new Int32Array(this.cells);
    for (let i = 0; i <= m; i++) {
      table[2 * i] = binIndex(edges, i === 0 ? -Infinity : u[i - 1]);
      if (i < m) table[2 * i + 1] = binIndex(edges, u[i]);
    }
    for (let k = 0; k < edges.length; k++) {
      const e = edges[k];
      if (e !== e) return table.fill(-1);
      const cell = this.cellOf(e);
      if (cell % 2 === 0) table[cell] = -1;
    }
    return table;
  }

  /** The two-sample KS test of the reference sample against the values counted in `cells` (dense or sparse by cell index). */
  test(cells: ArrayLike<number> | Record<string, number>): TestResult & { n: number } {
    const dense = new Float64Array(this.cells);
    if (isArrayLike(cells)) dense.set(Array.from(cells).slice(0, dense.length));
    else for (const [k, v] of Object.entries(cells)) if (Number(k) < dense.length) dense[Number(k)] += v;
    let n = 0;
    for (let i = 0; i < dense.length; i++) n += dense[i];
    if (n === 0 || this.referenceSize === 0) return { statistic: Number.NaN, pvalue: Number.NaN, n };
    let cur = 0;
    let d = 0;
    for (let i = 0; i < this.values.length; i++) {
      const refBefore = i === 0 ? 0 : this.atOrBelow[i - 1] / this.referenceSize;
      cur += dense[2 * i];
      d = Math.max(d, Math.abs(refBefore - cur / n));
      cur += dense[2 * i + 1];
      d = Math.max(d, Math.abs(this.atOrBelow[i] / this.referenceSize - cur / n));
    }
    return { statistic: d, pvalue: ksPvalue(d, this.referenceSize, n), n };
  }
}

function isArrayLike(x: ArrayLike<number> | Record<string, number>): x is ArrayLike<number> {
  return ArrayBuffer.isView(x) || Array.isArray(x);
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
