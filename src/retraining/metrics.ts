/**
 * Business metrics of the champion/challenger validation, and the sample-size-aware rule that
 * turns them into a verdict.
 *
 * Each configured metric is either an objective (`min_improvement`: the candidate must be
 * credibly better by more than this) or a guardrail (`max_degradation`: the candidate must be
 * credibly not worse by more than this). "Improvement" is candidate - champion for metrics where
 * higher is better and champion - candidate where lower is better. The uncertainty comes from a
 * paired bootstrap over the out-of-time rows (both models scored on the same resampled rows),
 * deterministic (fixed seed), at a one-sided level `alpha`:
 *
 *   objective passes  iff  lower bound (alpha quantile of the improvement)  >  min_improvement
 *   guardrail passes  iff  lower bound                                      >= -max_degradation
 *
 * A candidate passes when every metric passes (an intersection-union test: the chance of
 * promoting a candidate that misses any one requirement is at most alpha, without correction).
 * The objective's inequality is strict, so a candidate identical to the champion (improvement 0
 * on every resample) is never "better". A metric fails outright when the upper bound sits on the
 * wrong side, and is inconclusive in between.
 *
 * Every metric is computed on bootstrap weights (a resample is a multinomial count per row) over
 * the rows pre-sorted by score once, so a resample costs O(rows), not a sort; the values are
 * those of the metric on the resampled rows (ties share, as in src/stats/classification.ts).
 */
import { mulberry32 } from "../stats/random";

export const BINARY_METRICS = ["auc", "ks_statistic", "gini", "log_loss", "brier", "precision", "recall", "approval_rate"] as const;
export const REGRESSION_METRICS = ["rmse", "mae"] as const;
export const METRIC_NAMES = [...BINARY_METRICS, ...REGRESSION_METRICS] as const;
export type MetricName = (typeof METRIC_NAMES)[number];
export type Direction = "higher" | "lower";

/** Metrics read at a score threshold (predicted positive iff score > threshold). */
export const THRESHOLD_METRICS: readonly MetricName[] = ["precision", "recall", "approval_rate"];

/** Which way is better, per metric (approval_rate's may be overridden in the config). */
export const DIRECTION: Record<MetricName, Direction> = {
  auc: "higher",
  ks_statistic: "higher",
  gini: "higher",
  log_loss: "lower",
  brier: "lower",
  precision: "higher",
  recall: "higher",
  approval_rate: "higher",
  rmse: "lower",
  mae: "lower",
};

export interface MetricSpec {
  name: MetricName;
  threshold?: number;
  direction?: Direction;
  min_improvement?: number;
  max_degradation?: number;
}

export function metricLabel(m: Pick<MetricSpec, "name" | "threshold">): string {
  return m.threshold === undefined ? m.name : `${m.name}@${m.threshold}`;
}

/**
 * One model's scores on the OOT rows, prepared for weighted evaluation: the order by score and
 * the boundaries of tied groups (computed once), and per-row loss terms.
 */
interface Prepared {
  order: Uint32Array;
  /** groupEnd[k] = index in `order` one past the end of the tie group that starts at k. */
  groupEnd: Uint32Array;
  scores: Float64Array;
}

function prepare(scores: readonly number[]): Prepared {
  const n = scores.length;
  const order = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  const groupEnd = new Uint32Array(n);
  let i = 0;
  while (i < n) {
    let j = i + 1;
    while (j < n && scores[order[j]] === scores[order[i]]) j++;
    groupEnd[i] = j;
    i = j;
  }
  return { order, groupEnd, scores: Float64Array.from(scores) };
}

/**
 * The metric on weighted rows (weight = how often a row is in the resample), or null where it is
 * undefined (one class missing; precision with no predicted positive; no weight at all).
 */
function weighted(spec: MetricSpec, y: ArrayLike<number>, p: Prepared, w: ArrayLike<number>): number | null {
  const n = y.length;
  const s = p.scores;
  switch (spec.name) {
    case "auc":
    case "gini":
    case "ks_statistic": {
      let P = 0;
      let N = 0;
      for (let i = 0; i < n; i++) if (y[i] === 1) P += w[i];
      else N += w[i];
      if (P === 0 || N === 0) return null;
      let cumPos = 0;
      let cumNeg = 0;
      let u = 0; // Mann-Whitney: pairs (positive above negative) + half the tied pairs
      let ks = 0;
      let k = 0;
      while (k < n) {
        const end = p.groupEnd[k];
        let gp = 0;
        let gn = 0;
        for (let m = k; m < end; m++) {
          const i = p.order[m];
          if (y[i] === 1) gp += w[i];
          else gn += w[i];
        }
        u += gp * (cumNeg + gn / 2);
        cumPos += gp;
        cumNeg += gn;
        ks = Math.max(ks, Math.abs(cumPos / P - cumNeg / N));
        k = end;
      }
      const auc = u / (P * N);
      return spec.name === "auc" ? auc : spec.name === "gini" ? 2 * auc - 1 : ks;
    }
    case "log_loss":
    case "brier": {
      let total = 0;
      let sum = 0;
      const eps = 1e-15;
      for (let i = 0; i < n; i++) {
        if (!w[i]) continue;
        total += w[i];
        if (spec.name === "brier") sum += w[i] * (s[i] - y[i]) ** 2;
        else {
          const q = Math.min(1 - eps, Math.max(eps, s[i]));
          sum -= w[i] * (y[i] === 1 ? Math.log(q) : Math.log(1 - q));
        }
      }
      return total ? sum / total : null;
    }
    case "precision":
    case "recall":
    case "approval_rate": {
      const t = spec.threshold!;
      let tp = 0;
      let fp = 0;
      let fn = 0;
      let total = 0;
      for (let i = 0; i < n; i++) {
        if (!w[i]) continue;
        total += w[i];
        if (s[i] > t) y[i] === 1 ? (tp += w[i]) : (fp += w[i]);
        else if (y[i] === 1) fn += w[i];
      }
      if (spec.name === "precision") return tp + fp ? tp / (tp + fp) : null;
      if (spec.name === "recall") return tp + fn ? tp / (tp + fn) : null;
      return total ? (total - tp - fp) / total : null;
    }
    case "rmse":
    case "mae": {
      let total = 0;
      let sum = 0;
      for (let i = 0; i < n; i++) {
        if (!w[i]) continue;
        total += w[i];
        const e = s[i] - y[i];
        sum += w[i] * (spec.name === "rmse" ? e * e : Math.abs(e));
      }
      if (!total) return null;
      return spec.name === "rmse" ? Math.sqrt(sum / total) : sum / total;
    }
  }
}

/** The metric on rows counted `weights[i]` times each (a bootstrap resample is integer counts). */
export function weightedValue(spec: MetricSpec, labels: readonly number[], scores: readonly number[], weights: ArrayLike<number>): number | null {
  return weighted(spec, labels, prepare(scores), weights);
}

/** The metric on the rows as they are (every weight 1). */
export function metricValue(spec: MetricSpec, labels: readonly number[], scores: readonly number[]): number | null {
  return weightedValue(spec, labels, scores, new Float64Array(labels.length).fill(1));
}

export type Verdict = "pass" | "fail" | "inconclusive";

export interface MetricComparison {
  metric: string;
  name: MetricName;
  threshold?: number;
  direction: Direction;
  role: "objective" | "guardrail";
  /** objective: the improvement must exceed this; guardrail: -max_degradation, the improvement must reach it. */
  requirement: { min_improvement: number } | { max_degradation: number };
  champion: number | null;
  candidate: number | null;
  /** candidate - champion, as measured. */
  delta: number | null;
  /** delta signed so that positive means better (delta, or -delta where lower is better). */
  improvement: number | null;
  /** One-sided bounds of the improvement: the alpha and 1 - alpha bootstrap quantiles. */
  interval: { lower: number | null; upper: number | null };
  /** Resamples where the metric was defined for both models. */
  resamples: number;
  verdict: Verdict;
  detail: string;
}

export interface BootstrapSettings {
  alpha: number;
  iterations: number;
  seed: number;
}

const r6 = (x: number | null) => (x === null ? null : Math.round(x * 1e6) / 1e6);

/**
 * Compares candidate and champion scores on the same labelled rows for every metric (see the
 * header for the rule). `labels` are 0/1 for classifiers, the numeric target for regressors.
 */
export function compareMetrics(specs: readonly MetricSpec[], labels: readonly number[], candidate: readonly number[], champion: readonly number[], settings: BootstrapSettings): MetricComparison[] {
  const n = labels.length;
  const a = prepare(candidate);
  const b = prepare(champion);
  const ones = new Float64Array(n).fill(1);
  const diffs: number[][] = specs.map(() => []);
  const rand = mulberry32(settings.seed);
  const w = new Float64Array(n);
  for (let it = 0; it < settings.iterations; it++) {
    w.fill(0);
    for (let i = 0; i < n; i++) w[Math.floor(rand() * n)]++;
    specs.forEach((spec, k) => {
      const ca = weighted(spec, labels, a, w);
      const cb = weighted(spec, labels, b, w);
      if (ca !== null && cb !== null) diffs[k].push(directionOf(spec) === "higher" ? ca - cb : cb - ca);
    });
  }
  return specs.map((spec, k) => {
    const direction = directionOf(spec);
    const vc = weighted(spec, labels, a, ones);
    const vb = weighted(spec, labels, b, ones);
    const delta = vc !== null && vb !== null ? vc - vb : null;
    const improvement = delta === null ? null : direction === "higher" ? delta : -delta;
    const d = diffs[k].sort((x, y) => x - y);
    const enough = d.length >= 0.9 * settings.iterations && d.length > 0;
    const lower = enough ? d[Math.floor(settings.alpha * d.length)] : null;
    const upper = enough ? d[Math.min(d.length - 1, Math.ceil((1 - settings.alpha) * d.length) - 1)] : null;
    const objective = spec.min_improvement !== undefined;
    const floor = objective ? spec.min_improvement! : -spec.max_degradation!;
    const label = metricLabel(spec);
    const level = `${Math.round((1 - settings.alpha) * 1000) / 10}%`;
    let verdict: Verdict;
    let detail: string;
    if (lower === null || upper === null) {
      verdict = "inconclusive";
      detail = `${label}: defined on ${d.length} of ${settings.iterations} resamples (one class or no predicted positive); no verdict`;
    } else if (objective) {
      verdict = lower > floor ? "pass" : upper <= floor ? "fail" : "inconclusive";
      detail =
        verdict === "pass"
          ? `${label} improves by ${r6(improvement)}: credibly more than ${floor} (${level} lower bound ${r6(lower)})`
          : `${label} improves by ${r6(improvement)}: not credibly more than ${floor} (${level} lower bound ${r6(lower)})`;
    } else {
      verdict = lower >= floor ? "pass" : upper < floor ? "fail" : "inconclusive";
      detail =
        verdict === "pass"
          ? `${label} guardrail held: worse by at most ${spec.max_degradation} (${level} lower bound of the improvement ${r6(lower)})`
          : verdict === "fail"
            ? `${label} guardrail violated: credibly worse by more than ${spec.max_degradation} (improvement ${r6(improvement)}, ${level} upper bound ${r6(upper)})`
            : `${label} guardrail not shown: may be worse by more than ${spec.max_degradation} (improvement ${r6(improvement)}, ${level} lower bound ${r6(lower)})`;
    }
    return {
      metric: label,
      name: spec.name,
      ...(spec.threshold !== undefined ? { threshold: spec.threshold } : {}),
      direction,
      role: objective ? "objective" : "guardrail",
      requirement: objective ? { min_improvement: spec.min_improvement! } : { max_degradation: spec.max_degradation! },
      // Full precision in JSON (issue 11); `detail` and the CLI round for display.
      champion: vb,
      candidate: vc,
      delta,
      improvement,
      interval: { lower, upper },
      resamples: d.length,
      verdict,
      detail,
    };
  });
}

export function directionOf(spec: MetricSpec): Direction {
  return spec.direction ?? DIRECTION[spec.name];
}
