/**
 * Live performance from delayed labels joined to logged predictions, and its degradation against
 * the metrics registered with the version. Binary classification: AUC, KS, Gini, accuracy,
 * precision, recall, F1 (decision rule "score > 0.5", as at training), log loss, Brier.
 * Multiclass: accuracy and macro precision / recall / F1. Regression: RMSE, MAE, R^2.
 */
import type { ModelVersion } from "../registry/store";
import { accuracy, auc, brier, confusion, ks, logLoss, multiclassMetrics, precisionRecallF1 } from "../stats/classification";
import { mae, r2, rmse } from "../stats/regression";
import type { LabelRow } from "./shard";

const LOWER_IS_BETTER = new Set(["log_loss", "brier", "rmse", "mae"]);

export interface LivePerformance {
  n: number;
  metrics: Record<string, number>;
  registered: Record<string, number>;
  degradation: Record<string, { registered: number; live: number; degradation: number }>;
  note?: string;
}

export function positiveClassOf(v: Pick<ModelVersion, "featureSchema">): string | null {
  const out = v.featureSchema.output;
  if (out.kind !== "classifier" || out.classes.length !== 2) return null;
  return String(out.positiveClass ?? out.classes[1]);
}

export function livePerformance(v: Pick<ModelVersion, "task" | "featureSchema" | "metrics">, rows: LabelRow[]): LivePerformance {
  const registered = (v.metrics ?? {}) as Record<string, number>;
  const metrics: Record<string, number> = {};
  let note: string | undefined;
  if (v.task === "regression") {
    const pairs = rows.map((r) => [Number(r.actual), r.score] as const).filter(([a]) => Number.isFinite(a));
    if (pairs.length) {
      const a = pairs.map((p) => p[0]);
      const p = pairs.map((p) => p[1]);
      Object.assign(metrics, { rmse: rmse(a, p), mae: mae(a, p), r2: r2(a, p) });
    }
  } else if (positiveClassOf(v) !== null) {
    const positive = positiveClassOf(v)!;
    const y: number[] = rows.map((r) => (r.actual === positive ? 1 : 0));
    const s = rows.map((r) => r.score);
    if (rows.length) {
      const c = precisionRecallF1(confusion(y, s));
      Object.assign(metrics, { accuracy: accuracy(y, s), precision: c.precision, recall: c.recall, f1: c.f1, log_loss: logLoss(y, s), brier: brier(y, s) });
      const positives = y.reduce((a, b) => a + b, 0);
      if (positives > 0 && positives < y.length) {
        const a = auc(y, s);
        Object.assign(metrics, { auc: a, ks: ks(y, s), gini: 2 * a - 1 });
      } else note = "AUC, KS and Gini need labels of both classes";
    }
  } else if (rows.length) {
    Object.assign(metrics, multiclassMetrics(rows.map((r) => r.actual), rows.map((r) => r.predicted ?? "")));
  }
  const degradation: LivePerformance["degradation"] = {};
  for (const [k, live] of Object.entries(metrics)) {
    const reg = registered[k];
    if (typeof reg !== "number") continue;
    degradation[k] = { registered: reg, live, degradation: LOWER_IS_BETTER.has(k) ? live - reg : reg - live };
  }
  return { n: rows.length, metrics, registered, degradation, ...(note ? { note } : {}) };
}
