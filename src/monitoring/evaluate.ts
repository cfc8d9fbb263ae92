/**
 * One evaluation of a model: for each version with recent traffic, gather its windows (5 m,
 * 30 m, 1 h, 6 h), drift over the last hour, live performance over 7 days of labels, derive the SLA
 * and burn-rate checks, and hand them to the model's control object (alert state, compliance,
 * notifications, the snapshot /metrics exports). Run every minute by cron and on demand by admins.
 */
import { listModels, registryDb } from "../registry/store";
import { summarize } from "./aggregate";
import { DAY } from "./config";
import type { Snapshot } from "./control";
import { driftReport } from "./drift";
import { activeVersions, fleetLabels, fleetWindow, loadVersion, WINDOWS } from "./fleet";
import { livePerformance } from "./performance";
import { evaluateChecks, type Check } from "./sla";

export interface VersionEvaluation {
  version: string;
  checks: Check[];
  fired: string[];
  resolved: string[];
  suppressed: string[];
}

export async function evaluateModel(env: Env, model: string, now = Date.now()): Promise<VersionEvaluation[]> {
  const control = env.MODEL_CONTROL.getByName(model);
  const [{ config }, active] = await Promise.all([control.sla(), control.active(now - DAY)]);
  const out: VersionEvaluation[] = [];
  for (const { version, shards } of active) {
    const v = await loadVersion(env, model, version).catch(() => null);
    if (!v) continue; // the version was deleted from the registry
    const [w5, w30, w1h, w6h, labels] = await Promise.all([
      fleetWindow(env, shards, WINDOWS["5m"], now),
      fleetWindow(env, shards, WINDOWS["30m"], now),
      fleetWindow(env, shards, WINDOWS["1h"], now),
      fleetWindow(env, shards, WINDOWS["6h"], now),
      fleetLabels(env, model, version, now - WINDOWS["7d"]),
    ]);
    const drift = v.reference ? driftReport(v, w1h.aggregate, config.max_psi !== undefined ? { psi: config.max_psi } : {}) : null;
    const performance = labels.length ? livePerformance(v, labels) : null;
    const checks = evaluateChecks(config, { windows: { "5m": w5.aggregate, "30m": w30.aggregate, "1h": w1h.aggregate, "6h": w6h.aggregate }, drift, performance });
    const s = summarize(w5.aggregate, w5.seconds);
    const slaChecks = checks.filter((c) => c.sla);
    const snapshot: Snapshot = {
      latency_ms_5m: { p50: s.latency_ms.p50, p95: s.latency_ms.p95, p99: s.latency_ms.p99 },
      requests_per_second_5m: s.requests_per_second,
      error_rate_5m: s.error_rate,
      score_psi_1h: drift?.score?.psi ?? null,
      feature_psi_1h: Object.fromEntries(Object.entries(drift?.features ?? {}).map(([k, d]) => [k, d.psi])),
      drifted_features_1h: drift?.drifted_features ?? [],
      live: performance?.metrics ?? {},
      live_labels: performance?.n ?? 0,
      compliant: slaChecks.length ? !slaChecks.some((c) => c.firing) : null,
    };
    const result = await control.applyEvaluation(model, version, now, checks, snapshot);
    out.push({ version, checks, ...result });
  }
  return out;
}

/** Cron task (every minute): evaluates every registered model that has monitoring data. */
export async function evaluateAll(env: Env, now = Date.now()): Promise<void> {
  const models = await listModels(registryDb(env.DB));
  const results = await Promise.allSettled(models.map((m) => evaluateModel(env, m.name, now)));
  for (const r of results) if (r.status === "rejected") console.error(JSON.stringify({ level: "error", msg: "evaluation failed", error: String(r.reason) }));
}
