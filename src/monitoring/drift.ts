/**
 * Drift of a window of traffic against the training reference recorded at registration (the
 * original design's `check_drift`).
 *
 * Per numeric feature: PSI on the reference's decile bins, two-sample KS (statistic, p-value)
 * between the reference sample and a uniform sample of the window. Per categorical feature: PSI
 * on category shares, chi-square test of homogeneity and Jensen-Shannon distance. For the score:
 * PSI and KS. A feature drifts when PSI exceeds its threshold, or when its test rejects at
 * `pvalue` AND the effect is material (KS D >= `ks_statistic`, JS >= `js_distance`): with
 * thousands of rows a test alone flags shifts too small to matter. Fewer than `min_samples`
 * observations give `insufficient_data`, never drift.
 *
 * Every histogram statistic (PSI, chi-square, Jensen-Shannon, missing rates) is computed from
 * counts of every row in the window, so it does not depend on how callers batched their rows.
 * KS takes every row as well: the window counts each value in its cell of the reference sample
 * (`KsGrid`), which gives the exact two-sample statistic of the reference sample against all rows,
 * the same on every read and for any batching. The entry says what was tested: `sample_size`
 * current values (every row: `rows_observed` = `rows_represented`, nothing weighted) against
 * `reference_size` reference values. Windows holding buckets stored before the cell counts existed
 * fall back to the reservoir sample, and then say so (`sample_size` < `rows_observed`). A KS
 * verdict needs `sample_size >= min_samples` values actually tested. Numbers are returned at full
 * precision; only the human-readable `reasons` are rounded.
 *
 * Tests returned: chi-square is Pearson's statistic on the 2 x k table WITHOUT Yates' continuity
 * correction (scipy `chi2_contingency(correction=False)`; Yates applies only to 2 x 2 tables);
 * the KS p-value is the asymptotic two-sided one on the effective size n m / (n + m) with
 * Stephens' correction (see src/stats/tests.ts).
 */
import type { ModelVersion } from "../registry/store";
import { psi } from "../stats/drift";
import { chiSquareHomogeneity, jensenShannonDistance, KsGrid, ksTwoSample } from "../stats/tests";
import { round, type Aggregate, type KsCells } from "./aggregate";

export interface DriftThresholds {
  psi: number;
  pvalue: number;
  ks_statistic: number;
  js_distance: number;
  min_samples: number;
}

export const DEFAULT_DRIFT_THRESHOLDS: DriftThresholds = { psi: 0.2, pvalue: 0.01, ks_statistic: 0.1, js_distance: 0.1, min_samples: 100 };

export interface FeatureDrift {
  type: "numeric" | "categorical";
  n: number;
  status: "ok" | "drift" | "insufficient_data" | "no_reference";
  drifted: boolean;
  psi: number | null;
  missing_rate: { reference: number | null; current: number | null };
  /** KS on the window's uniform sample: `sample_size` values tested, drawn from `rows_observed` rows (= `rows_represented`). */
  ks?: { statistic: number; pvalue: number; sample_size: number; reference_size: number; rows_observed: number; rows_represented: number };
  chi_square?: { statistic: number; pvalue: number; dof: number };
  js_distance?: number;
  reasons: string[];
}

export interface DriftReport {
  has_drift: boolean;
  drifted_features: string[];
  score: FeatureDrift | null;
  features: Record<string, FeatureDrift>;
  thresholds: DriftThresholds;
  n: number;
}

function num(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

/** A feature's drift entry before any test has run (status insufficient_data), with missing rates. */
function emptyDrift(type: FeatureDrift["type"], n: number, refTotal: number, refMissing: number | undefined, curMissing: number): FeatureDrift {
  return {
    type,
    n,
    status: "insufficient_data",
    drifted: false,
    psi: null,
    missing_rate: { reference: refMissing !== undefined && refTotal + refMissing > 0 ? refMissing / (refTotal + refMissing) : null, current: n + curMissing ? curMissing / (n + curMissing) : null },
    reasons: [],
  };
}

type NumericCurrent = { counts: number[] | null; missing: number; sample: { seen: number; values: number[] }; ks?: KsCells };

function numericDrift(refCounts: number[], refSample: number[] | undefined, refMissing: number | undefined, cur: NumericCurrent, t: DriftThresholds): FeatureDrift {
  // Rows counted in the histogram (every non-missing row); without reference bins, the rows the sample saw.
  const binned = cur.counts !== null && cur.counts.length === refCounts.length;
  const n = binned ? sum(cur.counts!) : cur.sample.seen;
  const base = emptyDrift("numeric", n, sum(refCounts), refMissing, cur.missing);
  if (n < t.min_samples) return base;
  base.status = "ok";
  if (binned) base.psi = num(psi(refCounts, cur.counts!));
  if (refSample?.length) {
    let k: { statistic: number; pvalue: number } | null = null;
    let tested = 0;
    const grid = new KsGrid(refSample);
    const exact = cur.ks ? grid.test(cur.ks) : null;
    if (exact && exact.n >= cur.sample.seen) {
      k = exact;
      tested = exact.n;
    } else if (cur.sample.values.length) {
      k = ksTwoSample(refSample, cur.sample.values);
      tested = cur.sample.values.length;
    }
    if (k) {
      base.ks = { statistic: k.statistic, pvalue: k.pvalue, sample_size: tested, reference_size: grid.referenceSize, rows_observed: cur.sample.seen, rows_represented: cur.sample.seen };
      // The verdict counts values actually tested, never the rows they stand for.
      const of = tested < cur.sample.seen ? `, ${tested} sampled of ${cur.sample.seen} rows` : "";
      if (tested >= t.min_samples && k.pvalue < t.pvalue && k.statistic >= t.ks_statistic) base.reasons.push(`KS D=${round(k.statistic, 3)} (p=${k.pvalue.toExponential(2)}${of})`);
    }
  }
  if (base.psi !== null && base.psi > t.psi) base.reasons.unshift(`PSI ${round(base.psi, 3)} > ${t.psi}`);
  base.drifted = base.reasons.length > 0;
  if (base.drifted) base.status = "drift";
  return base;
}

function categoricalDrift(ref: Record<string, number>, refMissing: number | undefined, cur: { counts: Record<string, number>; missing: number }, t: DriftThresholds): FeatureDrift {
  const categories = [...new Set([...Object.keys(ref), ...Object.keys(cur.counts)])];
  const r = categories.map((c) => ref[c] ?? 0);
  const c = categories.map((k) => cur.counts[k] ?? 0);
  const n = c.reduce((a, b) => a + b, 0);
  const base = emptyDrift("categorical", n, r.reduce((a, b) => a + b, 0), refMissing, cur.missing);
  if (n < t.min_samples) return base;
  base.status = "ok";
  base.psi = num(psi(r, c));
  const chi = chiSquareHomogeneity(r, c);
  base.chi_square = { statistic: chi.statistic, pvalue: chi.pvalue, dof: chi.dof };
  base.js_distance = jensenShannonDistance(r, c);
  if (base.psi !== null && base.psi > t.psi) base.reasons.push(`PSI ${round(base.psi, 3)} > ${t.psi}`);
  if (chi.pvalue < t.pvalue && base.js_distance >= t.js_distance) base.reasons.push(`chi-square p=${chi.pvalue.toExponential(2)}, JS=${round(base.js_distance, 3)}`);
  base.drifted = base.reasons.length > 0;
  if (base.drifted) base.status = "drift";
  return base;
}

export function driftReport(version: Pick<ModelVersion, "featureSchema" | "reference">, agg: Aggregate, thresholds: Partial<DriftThresholds> = {}): DriftReport {
  const t = { ...DEFAULT_DRIFT_THRESHOLDS, ...thresholds };
  const ref = version.reference;
  const features: Record<string, FeatureDrift> = {};
  for (const f of version.featureSchema.features) {
    const r = ref?.features?.[f.name];
    const cur = agg.features[f.name];
    const numeric = f.type === "numeric" || f.type === "integer";
    if (!r || !cur) {
      features[f.name] = { type: numeric ? "numeric" : "categorical", n: 0, status: r ? "insufficient_data" : "no_reference", drifted: false, psi: null, missing_rate: { reference: null, current: null }, reasons: [] };
      continue;
    }
    if (r.type === "numeric" && cur.type === "numeric") features[f.name] = numericDrift(r.counts, r.sample, r.missing, cur, t);
    else if (r.type === "categorical" && cur.type === "categorical") features[f.name] = categoricalDrift(r.counts, r.missing, cur, t);
  }
  const score = ref?.score ? numericDrift(ref.score.counts, ref.score.sample, undefined, { counts: agg.score.counts, missing: 0, sample: agg.score.sample, ks: agg.score.ks }, t) : null;
  const drifted = Object.entries(features).filter(([, d]) => d.drifted).map(([name]) => name);
  return { has_drift: drifted.length > 0 || !!score?.drifted, drifted_features: drifted, score, features, thresholds: t, n: agg.rows };
}
