/**
 * The daily drift report (cron "0 6 * * *"): per model and active version, the drift report of the
 * last 24 hours and live performance over 7 days, stored in R2 as JSON and HTML under
 * `reports/drift/<model>/<version>/<YYYY-MM-DD>.{json,html}` and announced to the model's
 * notification targets that take reports.
 */
import { listModels, registryDb } from "../registry/store";
import { round, summarize } from "./aggregate";
import { driftReport, type DriftReport } from "./drift";
import { activeVersions, fleetLabels, fleetWindow, loadVersion, WINDOWS } from "./fleet";
import { livePerformance, type LivePerformance } from "./performance";

export interface DailyReport {
  model: string;
  version: string;
  date: string;
  window: { from: string; to: string };
  generated_at: string;
  summary: ReturnType<typeof summarize>;
  drift: DriftReport | null;
  performance: LivePerformance | null;
}

const escape = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function reportHtml(r: DailyReport): string {
  const rows = Object.entries(r.drift?.features ?? {})
    .map(([name, d]) => {
      // Display precision (the JSON report keeps full precision).
      const test = d.ks ? `KS D=${round(d.ks.statistic, 4)} p=${d.ks.pvalue.toExponential(2)}` : d.chi_square ? `chi2=${round(d.chi_square.statistic, 4)} p=${d.chi_square.pvalue.toExponential(2)}, JS=${round(d.js_distance ?? Number.NaN, 4)}` : "";
      return `<tr class="${d.drifted ? "drift" : ""}"><td>${escape(name)}</td><td>${d.type}</td><td>${d.n}</td><td>${d.psi === null ? "-" : round(d.psi, 4)}</td><td>${escape(test)}</td><td>${escape(d.status)}</td></tr>`;
    })
    .join("");
  const perf = Object.entries(r.performance?.metrics ?? {})
    .map(([k, v]) => `<tr><td>${escape(k)}</td><td>${round(v)}</td><td>${r.performance?.registered[k] !== undefined ? round(r.performance.registered[k]) : "-"}</td></tr>`)
    .join("");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Drift report ${escape(r.model)}@${escape(r.version)} ${r.date}</title>
<style>body{font:14px system-ui,sans-serif;margin:2rem}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}tr.drift{background:#fde2e2}</style></head><body>
<h1>Drift report: ${escape(r.model)}@${escape(r.version)}</h1>
<p>${escape(r.window.from)} to ${escape(r.window.to)}. Requests ${r.summary.requests}, rows ${r.summary.rows}, server error rate ${r.summary.error_rate}.</p>
<p><strong>${r.drift?.has_drift ? `Drift detected: ${escape(r.drift.drifted_features.join(", ") || "prediction score")}` : "No drift detected"}</strong>; prediction PSI ${r.drift?.score?.psi != null ? round(r.drift.score.psi, 4) : "-"}.</p>
<table><thead><tr><th>feature</th><th>type</th><th>n</th><th>PSI</th><th>test</th><th>status</th></tr></thead><tbody>${rows}</tbody></table>
<h2>Live performance (7 days, ${r.performance?.n ?? 0} labels)</h2>
<table><thead><tr><th>metric</th><th>live</th><th>registered</th></tr></thead><tbody>${perf}</tbody></table>
</body></html>`;
}

export async function buildDailyReport(env: Env, model: string, version: string, shards: string[], now = Date.now()): Promise<DailyReport> {
  const v = await loadVersion(env, model, version);
  const [w, labels] = await Promise.all([fleetWindow(env, shards, WINDOWS["24h"], now), fleetLabels(env, model, version, now - WINDOWS["7d"])]);
  const { config } = await env.MODEL_CONTROL.getByName(model).sla();
  return {
    model,
    version,
    date: new Date(now).toISOString().slice(0, 10),
    window: { from: new Date(w.from).toISOString(), to: new Date(now).toISOString() },
    generated_at: new Date(now).toISOString(),
    summary: summarize(w.aggregate, w.seconds),
    drift: v.reference ? driftReport(v, w.aggregate, config.max_psi !== undefined ? { psi: config.max_psi } : {}) : null,
    performance: labels.length ? livePerformance(v, labels) : null,
  };
}

/** Builds, stores and announces the reports of one model; returns the R2 keys written. */
export async function publishDailyReports(env: Env, model: string, now = Date.now()): Promise<string[]> {
  const keys: string[] = [];
  for (const { version, shards } of await activeVersions(env, model, now - WINDOWS["24h"])) {
    const report = await buildDailyReport(env, model, version, shards, now).catch(() => null);
    if (!report) continue;
    const base = `reports/drift/${model}/${version}/${report.date}`;
    await Promise.all([
      env.ARTIFACTS.put(`${base}.json`, JSON.stringify(report, null, 2), { httpMetadata: { contentType: "application/json" } }),
      env.ARTIFACTS.put(`${base}.html`, reportHtml(report), { httpMetadata: { contentType: "text/html; charset=utf-8" } }),
    ]);
    keys.push(`${base}.json`, `${base}.html`);
    await env.MODEL_CONTROL.getByName(model).announce({
      kind: "report",
      model,
      version,
      severity: report.drift?.has_drift ? "warning" : "info",
      title: `Daily drift report ${model}@${version} ${report.date}: ${report.drift?.has_drift ? "drift detected" : "no drift"}`,
      text: report.drift?.has_drift ? `Drifted: ${report.drift.drifted_features.join(", ") || "prediction score"}` : `No drift over ${report.summary.rows} rows.`,
      at: now,
      links: { json: `/admin/monitoring/${model}/reports/${version}/${report.date}.json`, html: `/admin/monitoring/${model}/reports/${version}/${report.date}.html` },
    });
  }
  return keys;
}

/** Cron task ("0 6 * * *"). */
export async function publishAllDailyReports(env: Env, now = Date.now()): Promise<void> {
  const models = await listModels(registryDb(env.DB));
  for (const m of models) await publishDailyReports(env, m.name, now);
}
