/**
 * Evaluates one stored trigger of a model against its champion: degradation from live labels,
 * drift (PSI of the score or of features over a window), or a schedule. Each evaluation returns
 * whether it fires and why; the cron (cron.ts) stores the evaluation on the trigger and starts at
 * most one job per model.
 *
 * Sample sizes: degradation needs `min_labels` labels of both classes and fires only when the
 * live AUC's upper one-sided bound is below the limit (compare.ts); drift needs `min_samples`
 * observations in the window (driftReport's own insufficient_data rule). A quiet model never fires.
 */
import { DAY } from "../monitoring/config";
import { driftReport } from "../monitoring/drift";
import { activeVersions, fleetLabels, fleetWindow, WINDOWS } from "../monitoring/fleet";
import { positiveClassOf } from "../monitoring/performance";
import type { ModelVersion } from "../registry/store";
import { aucEstimate, upperBound, usable } from "./compare";
import type { Trigger } from "./model";

export interface TriggerEvaluation {
  fire: boolean;
  reason: string;
  at: string;
  details?: Record<string, unknown>;
}

const r4 = (x: number) => Math.round(x * 1e4) / 1e4;

/** The latest instant at or before `now` when a schedule was due (UTC). */
export function lastDue(t: Extract<Trigger, { type: "schedule" }>, now: number): number {
  const [hh, mm] = t.at.split(":").map(Number);
  const d = new Date(now);
  const at = (y: number, m: number, day: number) => Date.UTC(y, m, day, hh, mm);
  if (t.every === "daily") {
    const today = at(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    return today <= now ? today : today - DAY;
  }
  if (t.every === "weekly") {
    const weekday = t.day ?? 1;
    let due = at(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - ((d.getUTCDay() - weekday + 7) % 7));
    if (due > now) due -= 7 * DAY;
    return due;
  }
  const dom = t.day ?? 1;
  const step = t.every === "monthly" ? 1 : 3;
  let y = d.getUTCFullYear();
  let m = d.getUTCMonth() - (d.getUTCMonth() % step);
  let due = at(y, m, dom);
  while (due > now) {
    m -= step;
    if (m < 0) {
      m += 12;
      y -= 1;
    }
    due = at(y, m, dom);
  }
  return due;
}

export async function evaluateTrigger(env: Env, champion: ModelVersion, t: Trigger, last: { firedAt: number | null; createdAt: number }, now: number): Promise<TriggerEvaluation> {
  const stamp = new Date(now).toISOString();
  if (t.type === "schedule") {
    const due = lastDue(t, now);
    const since = Math.max(last.firedAt ?? 0, last.createdAt);
    const fire = due > since;
    return { fire, at: stamp, reason: fire ? `scheduled ${t.every} run due at ${new Date(due).toISOString()}` : `next run after ${new Date(due).toISOString()} already done or before the trigger existed`, details: { due: new Date(due).toISOString() } };
  }
  if (t.type === "degradation") {
    const registered = (champion.metrics as Record<string, number> | null)?.auc;
    const positive = positiveClassOf(champion);
    if (typeof registered !== "number" || positive === null) return { fire: false, at: stamp, reason: "the champion has no registered AUC (binary classifiers only)" };
    const labels = await fleetLabels(env, champion.modelName, champion.version, now - t.window_days * DAY);
    const e = aucEstimate(labels.map((l) => (l.actual === positive ? 1 : 0)), labels.map((l) => l.score));
    const limit = registered - t.max_auc_drop;
    const details = { labels: e.n, positives: e.positives, negatives: e.negatives, live_auc: e.auc === null ? null : r4(e.auc), registered_auc: registered, limit: r4(limit) };
    if (!usable(e, t.min_labels)) return { fire: false, at: stamp, reason: `not enough labels: ${e.n} (${e.positives} positive) of ${t.min_labels} needed, both classes at least 10`, details };
    const upper = upperBound(e, t.alpha);
    const fire = upper < limit;
    return {
      fire,
      at: stamp,
      reason: fire
        ? `live AUC ${r4(e.auc!)} (upper ${(1 - t.alpha) * 100}% bound ${r4(upper)}) is below registered ${registered} - ${t.max_auc_drop}`
        : `live AUC ${r4(e.auc!)} not credibly below ${r4(limit)} (upper bound ${r4(upper)})`,
      details: { ...details, upper_bound: r4(upper) },
    };
  }
  const active = await activeVersions(env, champion.modelName);
  const shards = active.find((a) => a.version === champion.version)?.shards ?? [];
  const window = await fleetWindow(env, shards, WINDOWS[t.window], now);
  const report = driftReport(champion, window.aggregate, { psi: t.psi, min_samples: t.min_samples });
  if (t.on === "score") {
    const s = report.score;
    if (!s || s.status === "insufficient_data" || s.psi === null) return { fire: false, at: stamp, reason: `score drift not measurable: ${s ? `${s.n} of ${t.min_samples} observations` : "no score reference"}`, details: { n: s?.n ?? 0 } };
    const fire = s.psi > t.psi;
    return { fire, at: stamp, reason: `score PSI ${s.psi} over ${t.window} ${fire ? ">" : "<="} ${t.psi}`, details: { psi: s.psi, n: s.n } };
  }
  const measured = Object.entries(report.features).filter(([, f]) => f.psi !== null && f.status !== "insufficient_data");
  const drifted = measured.filter(([, f]) => f.psi! > t.psi).map(([name, f]) => ({ feature: name, psi: f.psi }));
  if (!measured.length) return { fire: false, at: stamp, reason: `feature drift not measurable: fewer than ${t.min_samples} observations over ${t.window}` };
  const fire = drifted.length >= t.min_features;
  return { fire, at: stamp, reason: `${drifted.length} feature(s) with PSI > ${t.psi} over ${t.window} (fires at ${t.min_features})`, details: { drifted } };
}
