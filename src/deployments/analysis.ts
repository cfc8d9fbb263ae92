/**
 * Judgements over live statistics:
 * - `canaryVerdict`: is the canary not worse than stable on error rate, p95 latency and score
 *   distribution (PSI)? Decides advance / hold (not enough data) / rollback for the cron. Its
 *   input comes from the monitoring objects (canary-metrics.ts).
 * - the rest read the deployment's own per-variant statistics (live-stats.ts):
 * - `variantResults`: the A/B (and bandit, shadow) results: volume, errors, latency quantiles,
 *   score distribution and PSI against the first variant, and with labels AUC (bootstrap interval
 *   of the difference) and conversion (two-proportion z-test), plus whether a winner is clear.
 *
 * "Clear winner": the best variant on the deployment's metric beats every other variant with at
 * least MIN_LABELLED labelled predictions each, significantly at 5% after a Bonferroni correction
 * over the k-1 comparisons. Without labels no winner is declared (volume and latency do not make
 * a model better).
 */
import { auc } from "../stats/classification";
import { psi } from "../stats/drift";
import { DDSketch } from "../stats/sketch";
import type { CanaryAnalysis } from "./model";
import type { StatsSummary, VariantSummary } from "./live-stats";
import { ksTwoSample } from "../stats/tests";
import { binomialUpperTail, bootstrapDifference, differenceLowerBound, twoProportionZTest } from "./stats";

export const MIN_LABELLED = 30;
/**
 * Scored rows each side needs before the score-distribution check runs. The KS p-value (Stephens'
 * small-sample form) is accurate from a few dozen rows; below 30 a side has too little power to
 * be worth a test, the same floor A/B winners use for labels.
 */
export const MIN_SCORE_ROWS = 30;
/** Checks a canary window runs (error rate, p95 latency, score distribution): the Bonferroni divisor per step. */
export const CHECKS_PER_WINDOW = 3;
/** Share of requests above stable's p95 that a canary no slower than stable can show: the p95 check's null hypothesis. */
const P95_TAIL = 0.05;
const DEFAULT_ALPHA = 0.01;

function errorRate(v: VariantSummary | undefined): number {
  return v && v.requests ? v.errors / v.requests : 0;
}

function p95(v: VariantSummary | undefined): number | null {
  const s = v ? DDSketch.fromJSON(v.latency) : null;
  return s && s.count > 0 ? s.quantile(0.95) : null;
}

/** Each check's rule, figures and outcome, as recorded in the deployment's history. */
export interface CheckOutcome {
  outcome: "pass" | "fail" | "skipped";
  rule: string;
  /** One-sided p-value of the test behind the outcome (null when skipped). */
  p_value: number | null;
  alpha: number;
  detail: string;
}

export interface CanaryVerdict {
  decision: "advance" | "hold" | "rollback";
  reasons: string[];
  stable: { requests: number; error_rate: number; p95_ms: number | null };
  canary: { requests: number; error_rate: number; p95_ms: number | null };
  score_psi: number | null;
  /** The rollout's false-rollback budget and the per-check level it gives (alpha / (checks x steps)). */
  alpha: { rollout: number; per_check: number };
  checks: {
    error_rate: CheckOutcome;
    p95_latency: CheckOutcome & { above_bound?: number; bound_ms?: number | null };
    score: CheckOutcome & { rows: { stable: number; canary: number }; psi: number | null; ks_statistic: number | null; max_psi: number };
  };
}

/** The per-check level for a rollout of `steps` steps (each step is one judged window). */
export function perCheckAlpha(a: CanaryAnalysis, steps: number): number {
  return (a.alpha ?? DEFAULT_ALPHA) / (CHECKS_PER_WINDOW * Math.max(1, steps));
}

/**
 * Compares canary with stable (or, with no stable traffic, with a stored stable snapshot). Each
 * check is a one-sided test whose false-alarm rate at the sample sizes it runs on is `perCheck`,
 * and a failing check also needs the effect to exceed its configured margin:
 * - error rate: rolls back when the Newcombe lower bound of (canary - stable) exceeds
 *   max_error_rate_increase;
 * - p95 latency: with bound = stable p95 x max_p95_ratio + p95_slack_ms, a canary no slower than
 *   stable has at most 5% of requests above it; rolls back when the canary's count above the bound
 *   is improbable under Binomial(n, 0.05) (exact tail) and its p95 exceeds the bound;
 * - score distribution: rolls back when the two-sample KS test on the raw score samples rejects
 *   equality and the 20-bin PSI exceeds max_psi (significant and material); skipped below
 *   MIN_SCORE_ROWS scored rows a side, and against a snapshot (no stable scores).
 */
export function canaryVerdict(
  summary: StatsSummary,
  a: CanaryAnalysis,
  opts: { snapshot?: { error_rate: number; p95_ms: number | null }; steps?: number } = {},
): CanaryVerdict {
  const { snapshot } = opts;
  const alphaCheck = perCheckAlpha(a, opts.steps ?? 1);
  const stable = summary.variants.stable;
  const canary = summary.variants.canary;
  const s = { requests: stable?.requests ?? 0, error_rate: snapshot?.error_rate ?? errorRate(stable), p95_ms: snapshot ? snapshot.p95_ms : p95(stable) };
  const c = { requests: canary?.requests ?? 0, error_rate: errorRate(canary), p95_ms: p95(canary) };
  const checks: CanaryVerdict["checks"] = {
    error_rate: errorCheck(stable, canary, a, alphaCheck, snapshot),
    p95_latency: latencyCheck(canary, s.p95_ms, a, alphaCheck),
    score: scoreCheck(stable, canary, a, alphaCheck, !!snapshot),
  };
  const verdict = (decision: CanaryVerdict["decision"], reasons: string[]): CanaryVerdict => ({
    decision,
    reasons,
    stable: s,
    canary: c,
    score_psi: checks.score.psi,
    alpha: { rollout: a.alpha ?? DEFAULT_ALPHA, per_check: alphaCheck },
    checks,
  });
  if (c.requests < a.min_requests) return verdict("hold", [`canary has ${c.requests} requests in the window; needs ${a.min_requests}`]);
  if (!snapshot && s.requests === 0) return verdict("hold", ["stable has no requests in the window to compare with"]);
  const worse = Object.values(checks)
    .filter((x) => x.outcome === "fail")
    .map((x) => x.detail);
  if (worse.length) return verdict("rollback", worse);
  return verdict("advance", ["canary is not worse than stable on error rate, p95 latency and score distribution"]);
}

function errorCheck(stable: VariantSummary | undefined, canary: VariantSummary | undefined, a: CanaryAnalysis, alpha: number, snapshot?: { error_rate: number }): CheckOutcome {
  const rule = `rollback when the ${((1 - alpha) * 100).toPrecision(4)}% lower bound (Newcombe) of canary - stable error rate > ${a.max_error_rate_increase}`;
  const cn = canary?.requests ?? 0;
  const ce = canary?.errors ?? 0;
  if (!cn || (!snapshot && !stable?.requests)) return { outcome: "skipped", rule, p_value: null, alpha, detail: "no requests to compare" };
  const low = snapshot ? differenceLowerBound(ce, cn, snapshot.error_rate, Infinity, alpha) : differenceLowerBound(ce, cn, stable!.errors, stable!.requests, alpha);
  const cr = ce / cn;
  const sr = snapshot ? snapshot.error_rate : stable!.errors / stable!.requests;
  const fail = low > a.max_error_rate_increase;
  return {
    outcome: fail ? "fail" : "pass",
    rule,
    p_value: null,
    alpha,
    detail: `error rate ${(cr * 100).toFixed(2)}% (${ce}/${cn}) vs stable ${(sr * 100).toFixed(2)}%: lower bound of the increase ${(low * 100).toFixed(2)}% ${fail ? ">" : "<="} ${(a.max_error_rate_increase * 100).toFixed(2)}%`,
  };
}

function latencyCheck(canary: VariantSummary | undefined, stableP95: number | null, a: CanaryAnalysis, alpha: number): CanaryVerdict["checks"]["p95_latency"] {
  const rule = `rollback when more canary requests exceed stable p95 x ${a.max_p95_ratio} + ${a.p95_slack_ms} ms than Binomial(n, ${P95_TAIL}) allows at alpha`;
  const sketch = canary ? DDSketch.fromJSON(canary.latency) : null;
  if (!sketch || sketch.count === 0 || stableP95 === null) return { outcome: "skipped", rule, p_value: null, alpha, detail: "no latency to compare" };
  const bound = stableP95 * a.max_p95_ratio + a.p95_slack_ms;
  const n = sketch.count;
  const above = Math.round(sketch.fractionAbove(bound) * n);
  const p = binomialUpperTail(above, n, P95_TAIL);
  const cp95 = sketch.quantile(0.95);
  const fail = p < alpha && cp95 > bound;
  return {
    outcome: fail ? "fail" : "pass",
    rule,
    p_value: p,
    alpha,
    above_bound: above,
    bound_ms: bound,
    detail: `p95 latency ${cp95.toFixed(2)} ms vs ${a.max_p95_ratio} x stable ${stableP95.toFixed(2)} ms + ${a.p95_slack_ms} ms = ${bound.toFixed(2)} ms; ${above}/${n} canary requests above it (p = ${p.toPrecision(3)}, alpha ${alpha.toPrecision(3)})`,
  };
}

function scoreCheck(stable: VariantSummary | undefined, canary: VariantSummary | undefined, a: CanaryAnalysis, alpha: number, againstSnapshot: boolean): CanaryVerdict["checks"]["score"] {
  const rule = `rollback when the two-sample KS test rejects at alpha and the 20-bin PSI > ${a.max_psi}; needs ${MIN_SCORE_ROWS} scored rows a side`;
  const rows = { stable: againstSnapshot ? 0 : sampleOf(stable).length, canary: sampleOf(canary).length };
  const base = { rule, alpha, rows, max_psi: a.max_psi };
  if (againstSnapshot) return { ...base, outcome: "skipped", p_value: null, psi: null, ks_statistic: null, detail: "stable has no traffic at 100%: no score sample to compare with" };
  if (rows.stable < MIN_SCORE_ROWS || rows.canary < MIN_SCORE_ROWS) {
    return { ...base, outcome: "skipped", p_value: null, psi: null, ks_statistic: null, detail: `score check needs ${MIN_SCORE_ROWS} scored rows a side (stable ${rows.stable}, canary ${rows.canary})` };
  }
  const ks = ksTwoSample(sampleOf(stable), sampleOf(canary));
  const value = psi(stable!.score_counts, canary!.score_counts);
  const fail = ks.pvalue < alpha && value > a.max_psi;
  return {
    ...base,
    outcome: fail ? "fail" : "pass",
    p_value: ks.pvalue,
    psi: value,
    ks_statistic: ks.statistic,
    detail: `score distribution vs stable: PSI ${value.toFixed(3)} (max ${a.max_psi}), KS D ${ks.statistic.toFixed(3)} p = ${ks.pvalue.toPrecision(3)} (alpha ${alpha.toPrecision(3)}) on ${rows.stable}/${rows.canary} rows`,
  };
}

/** Raw scores of a variant: the monitoring sample when present, else midpoints of the histogram bins. */
function sampleOf(v: VariantSummary | undefined): number[] {
  if (!v) return [];
  if (v.score_sample) return v.score_sample;
  const out: number[] = [];
  v.score_counts.forEach((count, i) => {
    for (let k = 0; k < count; k++) out.push((i + 0.5) / v.score_counts.length);
  });
  return out;
}

const round = (x: number | null, d = 4) => (x === null || !Number.isFinite(x) ? null : Number(x.toFixed(d)));

function safeAuc(rows: { score: number; positive: number }[]): number {
  try {
    return auc(
      rows.map((r) => r.positive),
      rows.map((r) => r.score),
    );
  } catch {
    return Number.NaN;
  }
}

export function variantResults(summary: StatsSummary, order: { name: string; version: string; weight: number }[], metric: "auc" | "conversion") {
  const control = order[0]?.name;
  const controlStats = summary.variants[control];
  const variants = order.map((o) => {
    const v = summary.variants[o.name];
    const sketch = v ? DDSketch.fromJSON(v.latency) : new DDSketch();
    const labelled = v?.labels ?? [];
    const aucValue = labelled.length >= 2 ? safeAuc(labelled) : Number.NaN;
    return {
      name: o.name,
      version: o.version,
      weight: o.weight,
      requests: v?.requests ?? 0,
      errors: v?.errors ?? 0,
      error_rate: round(errorRate(v)),
      latency_ms: { p50: round(sketch.count ? sketch.quantile(0.5) : null, 3), p95: round(sketch.count ? sketch.quantile(0.95) : null, 3), p99: round(sketch.count ? sketch.quantile(0.99) : null, 3) },
      score: {
        rows: v?.scored_rows ?? 0,
        mean: round(v && v.scored_rows ? v.score_sum / v.scored_rows : null),
        histogram: v?.score_counts ?? [],
        psi_vs_control: round(o.name !== control && v?.scored_rows && controlStats?.scored_rows ? psi(controlStats.score_counts, v.score_counts) : null),
      },
      feedback: {
        labelled: v?.feedback.n ?? 0,
        conversion: round(v && v.feedback.n ? v.feedback.positives / v.feedback.n : null),
        accuracy: round(v && v.feedback.n ? v.feedback.correct / v.feedback.n : null),
        auc: round(Number.isFinite(aucValue) ? aucValue : null),
      },
    };
  });

  // Winner on the chosen metric.
  const value = (name: string) => {
    const v = summary.variants[name];
    if (!v || v.feedback.n < MIN_LABELLED) return null;
    if (metric === "conversion") return v.feedback.positives / v.feedback.n;
    const a = safeAuc(v.labels);
    return Number.isFinite(a) ? a : null;
  };
  const scored = order.map((o) => ({ name: o.name, value: value(o.name) }));
  const comparisons: { variant: string; against: string; difference: number | null; p_value?: number; interval?: { low: number; high: number } | null; significant: boolean }[] = [];
  let winner: string | null = null;
  let clear = false;
  let reason: string;
  if (scored.some((s) => s.value === null)) {
    reason = `every variant needs at least ${MIN_LABELLED} labelled predictions (feedback) for a ${metric} comparison`;
  } else {
    const best = scored.reduce((a, b) => ((b.value as number) > (a.value as number) ? b : a));
    const alpha = 0.05 / Math.max(1, order.length - 1);
    for (const other of scored.filter((s) => s.name !== best.name)) {
      const bv = summary.variants[best.name];
      const ov = summary.variants[other.name];
      if (metric === "conversion") {
        const t = twoProportionZTest(bv.feedback.positives, bv.feedback.n, ov.feedback.positives, ov.feedback.n);
        comparisons.push({ variant: best.name, against: other.name, difference: round((best.value as number) - (other.value as number)), p_value: round(t.p_value, 6) ?? 1, significant: t.p_value < alpha });
      } else {
        const interval = bootstrapDifference(bv.labels.slice(0, 2000), ov.labels.slice(0, 2000), safeAuc, { confidence: 1 - alpha, iterations: 300 });
        comparisons.push({
          variant: best.name,
          against: other.name,
          difference: round((best.value as number) - (other.value as number)),
          interval: interval && { low: round(interval.low)!, high: round(interval.high)! },
          significant: interval !== null && interval.low > 0,
        });
      }
    }
    clear = comparisons.every((c) => c.significant);
    winner = clear ? best.name : null;
    reason = clear
      ? `${best.name} has the best ${metric} and beats every other variant at the 5% level (Bonferroni over ${comparisons.length} comparison(s))`
      : `no variant is significantly best on ${metric} yet (leader: ${best.name})`;
  }
  return {
    control,
    metric,
    variants,
    comparisons,
    winner: { clear, variant: winner, reason },
  };
}

export function shadowResults(s: StatsSummary["shadow"]) {
  const diff = DDSketch.fromJSON(s.abs_diff);
  const latency = DDSketch.fromJSON(s.latency);
  return {
    requests: s.requests,
    errors: s.errors,
    timeouts: s.timeouts,
    compared_rows: s.compared_rows,
    /** Rows the consumer left unscored (its budget SHADOW_BUDGET_MS or the isolate share SHADOW_CPU_SHARE): acknowledged, not compared. */
    skipped_rows: s.skipped_rows,
    agreement_rate: round(s.compared_rows ? s.agreements / s.compared_rows : null),
    abs_score_diff: { mean: round(diff.count ? diff.sum / diff.count : null, 6), p50: round(diff.count ? diff.quantile(0.5) : null, 6), p95: round(diff.count ? diff.quantile(0.95) : null, 6), max: round(diff.count ? diff.max : null, 6) },
    latency_ms: { p50: round(latency.count ? latency.quantile(0.5) : null, 3), p95: round(latency.count ? latency.quantile(0.95) : null, 3) },
  };
}
