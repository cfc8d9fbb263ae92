/**
 * Fleet-wide Prometheus exposition: counters summed over every stats shard of every active
 * version (so they cover all isolates, not the one answering the scrape), latency histograms
 * derived from the cumulative DDSketch (cumulative bucket counts only grow, so rate() works),
 * and gauges from each version's latest evaluation snapshot (windowed quantiles, error ratio,
 * PSI, live metrics, SLA compliance) and the firing alerts. Names follow Prometheus conventions:
 * `_total` counters, base units (seconds, ratios), one HELP/TYPE per family.
 */
import { listModels, registryDb } from "../registry/store";
import { DDSketch } from "../stats/sketch";
import type { Snapshot } from "./control";
import type { Totals } from "./shard";
import { DAY } from "./config";

const LE_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
const fmtLabels = (l: Record<string, string>) => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
};
const num = (v: number) => (Number.isFinite(v) ? String(v) : Number.isNaN(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");

class Families {
  private readonly order: string[] = [];
  private readonly fams = new Map<string, { help: string; type: string; lines: string[] }>();
  add(name: string, type: string, help: string, labels: Record<string, string>, value: number, suffix = "") {
    let f = this.fams.get(name);
    if (!f) {
      this.fams.set(name, (f = { help, type, lines: [] }));
      this.order.push(name);
    }
    f.lines.push(`${name}${suffix}${fmtLabels(labels)} ${num(value)}`);
  }
  render(): string {
    return this.order.map((n) => {
      const f = this.fams.get(n)!;
      return [`# HELP ${n} ${f.help}`, `# TYPE ${n} ${f.type}`, ...f.lines].join("\n");
    }).join("\n");
  }
}

export interface FleetData {
  totals: { model: string; version: string; totals: Totals }[];
  snapshots: { model: string; version: string; snapshot: Snapshot }[];
  alerts: { model: string; severity: string; count: number }[];
  /** Models (or the model list) whose monitoring objects could not be read for this scrape. */
  errors: number;
}

export async function collectFleet(env: Env, now = Date.now()): Promise<FleetData> {
  const data: FleetData = { totals: [], snapshots: [], alerts: [], errors: 0 };
  let models: { name: string }[];
  try {
    models = await listModels(registryDb(env.DB));
  } catch (error) {
    console.error(JSON.stringify({ level: "error", msg: "metrics: model list unavailable", error: String(error) }));
    data.errors++;
    return data;
  }
  const settled = await Promise.allSettled(
    models.map(async (m) => {
      const control = env.MODEL_CONTROL.getByName(m.name);
      const [active, snaps, alerts] = await Promise.all([control.active(now - 8 * DAY), control.snapshots(), control.alerts(0)]);
      for (const { version, shards } of active) {
        const parts = await Promise.all(shards.map((s) => env.MONITOR_SHARD.getByName(s).totals()));
        const sum: Totals = { requests: 0, rows: 0, errors: {}, latency: null, labelled: 0 };
        const sketch = new DDSketch();
        for (const p of parts) {
          sum.requests += p.requests;
          sum.rows += p.rows;
          sum.labelled += p.labelled;
          for (const [k, v] of Object.entries(p.errors)) sum.errors[k] = (sum.errors[k] ?? 0) + v;
          if (p.latency) sketch.merge(p.latency);
        }
        sum.latency = sketch.toJSON();
        data.totals.push({ model: m.name, version, totals: sum });
      }
      for (const s of snaps) data.snapshots.push({ model: m.name, version: s.version, snapshot: s.snapshot });
      const bySeverity: Record<string, number> = { info: 0, warning: 0, critical: 0 };
      for (const a of alerts.active) bySeverity[a.severity] = (bySeverity[a.severity] ?? 0) + 1;
      for (const [severity, count] of Object.entries(bySeverity)) data.alerts.push({ model: m.name, severity, count });
    }),
  );
  for (const r of settled) {
    if (r.status === "rejected") {
      data.errors++;
      console.error(JSON.stringify({ level: "error", msg: "metrics: monitoring objects unavailable", error: String(r.reason) }));
    }
  }
  return data;
}

export function renderFleet(data: FleetData): string {
  const f = new Families();
  for (const { model, version, totals: t } of data.totals) {
    const l = { model, version };
    f.add("edge_ml_model_requests_total", "counter", "Prediction requests (answered and failed) across all isolates.", l, t.requests);
    f.add("edge_ml_model_predictions_total", "counter", "Rows scored across all isolates.", l, t.rows);
    f.add("edge_ml_model_labels_total", "counter", "Predictions joined to a delayed label (feedback), kept within retention.", l, t.labelled);
    for (const [key, v] of Object.entries(t.errors)) {
      const [status, code] = key.split(" ");
      f.add("edge_ml_model_errors_total", "counter", "Failed prediction requests by status class and error code.", { ...l, class: `${status[0]}xx`, code: code ?? "unknown" }, v);
    }
    const sketch = t.latency ? DDSketch.fromJSON(t.latency) : new DDSketch();
    const name = "edge_ml_model_request_duration_seconds";
    for (const le of LE_SECONDS) {
      const below = sketch.count ? Math.round(sketch.count * (1 - sketch.fractionAbove(le * 1000))) : 0;
      f.add(name, "histogram", "Prediction handler latency across all isolates (from a DDSketch, 1% relative error).", { ...l, le: String(le) }, below, "_bucket");
    }
    f.add(name, "histogram", "", { ...l, le: "+Inf" }, sketch.count, "_bucket");
    f.add(name, "histogram", "", l, sketch.sum / 1000, "_sum");
    f.add(name, "histogram", "", l, sketch.count, "_count");
  }
  for (const { model, version, snapshot: s } of data.snapshots) {
    const l = { model, version };
    // A gauge per percentile ("quantile" is reserved for summaries, whose counts would be cumulative).
    for (const [p, v] of [["p50", s.latency_ms_5m.p50], ["p95", s.latency_ms_5m.p95], ["p99", s.latency_ms_5m.p99]] as const) {
      if (v !== null) f.add("edge_ml_model_latency_window_seconds", "gauge", "Latency percentiles over the last 5 minutes (latest evaluation, DDSketch 1% relative error).", { ...l, window: "5m", percentile: p }, v / 1000);
    }
    f.add("edge_ml_model_request_rate", "gauge", "Requests per second over the last 5 minutes (latest evaluation).", { ...l, window: "5m" }, s.requests_per_second_5m);
    f.add("edge_ml_model_error_ratio", "gauge", "Server error ratio over the last 5 minutes (latest evaluation).", { ...l, window: "5m" }, s.error_rate_5m);
    if (s.score_psi_1h !== null) f.add("edge_ml_model_score_psi", "gauge", "PSI of the prediction score against the training reference, last hour.", { ...l, window: "1h" }, s.score_psi_1h);
    for (const [feature, v] of Object.entries(s.feature_psi_1h)) {
      if (v !== null) f.add("edge_ml_model_feature_psi", "gauge", "PSI of each feature against the training reference, last hour.", { ...l, feature, window: "1h" }, v);
    }
    f.add("edge_ml_model_drifted_features", "gauge", "Features flagged as drifted over the last hour.", { ...l, window: "1h" }, s.drifted_features_1h.length);
    for (const [metric, v] of Object.entries(s.live)) f.add("edge_ml_model_live_metric", "gauge", "Live performance from delayed labels over 7 days (auc, ks, accuracy, f1, rmse...).", { ...l, metric, window: "7d" }, v);
    if (s.compliant !== null) f.add("edge_ml_model_sla_compliant", "gauge", "1 when the latest evaluation met every SLA threshold, else 0.", l, s.compliant ? 1 : 0);
  }
  for (const { model, severity, count } of data.alerts) f.add("edge_ml_alerts_firing", "gauge", "Alerts currently firing, by severity.", { model, severity }, count);
  f.add("edge_ml_monitoring_scrape_errors", "gauge", "Models whose monitoring objects could not be read for this scrape (their series are missing).", {}, data.errors);
  const text = f.render();
  return text ? text + "\n" : "";
}

/** Plain counters (one series each), e.g. this isolate's own counters appended to /metrics. */
export function renderCounters(counters: Record<string, { help: string; value: number }>): string {
  return Object.entries(counters)
    .map(([name, c]) => `# HELP ${name} ${c.help}\n# TYPE ${name} counter\n${name} ${num(c.value)}\n`)
    .join("");
}
