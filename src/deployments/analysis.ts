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
import { bootstrapDifference, twoProportionZTest } from "./stats";

export const MIN_LABELLED = 30;
/**
 * Scored rows each side needs before the score-distribution check counts: PSI over 20 bins from a
 * few dozen scores is noise (empty bins dominate), the same floor monitoring's drift report uses.
 */
export const MIN_PSI_ROWS = 100;

function errorRate(v: VariantSummary | undefined): number {
  return v && v.requests ? v.errors / v.requests : 0;
}

function p95(v: VariantSummary | undefined): number | null {
  const s = v ? DDSketch.fromJSON(v.latency) : null;
  return s && s.count > 0 ? s.quantile(0.95) : null;
}

export interface CanaryVerdict {
  decision: "advance" | "hold" | "rollback";
  reasons: string[];
  stable: { requests: number; error_rate: number; p95_ms: number | null };
  canary: { requests: number; error_rate: number; p95_ms: number | null };
  score_psi: number | null;
}

/** Compares canary with stable (or, with no stable traffic, with a stored stable snapshot). */
export function canaryVerdict(summary: StatsSummary, a: CanaryAnalysis, snapshot?: { error_rate: number; p95_ms: number | null }): CanaryVerdict {
  const stable = summary.variants.stable;
  const canary = summary.variants.canary;
  const s = { requests: stable?.requests ?? 0, error_rate: snapshot?.error_rate ?? errorRate(stable), p95_ms: snapshot ? snapshot.p95_ms : p95(stable) };
  const c = { requests: canary?.requests ?? 0, error_rate: errorRate(canary), p95_ms: p95(canary) };
  const enoughForPsi = (v: VariantSummary | undefined) => (v?.scored_rows ?? 0) >= MIN_PSI_ROWS;
  const scorePsi = !snapshot && enoughForPsi(stable) && enoughForPsi(canary) ? psi(stable.score_counts, canary.score_counts) : null;
  const verdict = (decision: CanaryVerdict["decision"], reasons: string[]): CanaryVerdict => ({ decision, reasons, stable: s, canary: c, score_psi: scorePsi });
  if (c.requests < a.min_requests) return verdict("hold", [`canary has ${c.requests} requests in the window; needs ${a.min_requests}`]);
  const worse: string[] = [];
  if (c.error_rate > s.error_rate + a.max_error_rate_increase) {
    worse.push(`error rate ${(c.error_rate * 100).toFixed(2)}% > stable ${(s.error_rate * 100).toFixed(2)}% + ${(a.max_error_rate_increase * 100).toFixed(2)}%`);
  }
  if (c.p95_ms !== null && s.p95_ms !== null && c.p95_ms > s.p95_ms * a.max_p95_ratio + a.p95_slack_ms) {
    worse.push(`p95 latency ${c.p95_ms.toFixed(2)} ms > ${a.max_p95_ratio} x stable ${s.p95_ms.toFixed(2)} ms + ${a.p95_slack_ms} ms`);
  }
  if (scorePsi !== null && scorePsi > a.max_psi) worse.push(`score PSI vs stable ${scorePsi.toFixed(3)} > ${a.max_psi}`);
  if (worse.length) return verdict("rollback", worse);
  if (!snapshot && s.requests === 0) return verdict("hold", ["stable has no requests in the window to compare with"]);
  return verdict("advance", ["canary is not worse than stable on error rate, p95 latency and score distribution"]);
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
    agreement_rate: round(s.compared_rows ? s.agreements / s.compared_rows : null),
    abs_score_diff: { mean: round(diff.count ? diff.sum / diff.count : null, 6), p50: round(diff.count ? diff.quantile(0.5) : null, 6), p95: round(diff.count ? diff.quantile(0.95) : null, 6), max: round(diff.count ? diff.max : null, 6) },
    latency_ms: { p50: round(latency.count ? latency.quantile(0.5) : null, 3), p95: round(latency.count ? latency.quantile(0.95) : null, 3) },
  };
}
