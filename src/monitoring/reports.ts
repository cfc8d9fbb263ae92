/**
 * The daily drift report (cron "0 6 * * *"): per model and active version, the drift report of the
 * last 24 hours and live performance over 7 days, stored in R2 as JSON and HTML under
 * `reports/drift/<model>/<version>/<YYYY-MM-DD>.{json,html}` and announced to the model's
 * notification targets that take reports.
 *
 * The HTML is self-contained (inline SVG, no script): per feature the reference and current
 * distributions as side-by-side bars on the reference's bins, the statistics with their sample
 * sizes, and the verdict with its reason against the thresholds printed at the top; prediction
 * drift under the output's name; live metrics beside the registered ones at the same precision,
 * with the worse ones highlighted; and a link to the live dashboard.
 */
import { listModels, registryDb, type ModelVersion } from "../registry/store";
import { summarize, type Aggregate } from "./aggregate";
import { DEFAULT_DRIFT_THRESHOLDS, driftReport, type DriftReport, type DriftThresholds, type FeatureDrift } from "./drift";
import { activeVersions, fleetLabels, fleetWindow, loadVersion, WINDOWS } from "./fleet";
import { livePerformance, type LivePerformance } from "./performance";

/** Reference and current shares of one feature (or the score) on the reference's bins, for the picture. */
export interface Distribution {
  bins: string[];
  reference: number[];
  current: number[];
  /** Rows behind each side: the reference's training rows and the window's observed rows. */
  reference_n: number;
  current_n: number;
}

export interface DailyReport {
  model: string;
  version: string;
  date: string;
  window: { from: string; to: string };
  generated_at: string;
  /** Where the live dashboard of this model is (path on this deployment). */
  dashboard: string;
  /** What "prediction drift" measures: the named output and the class whose probability is the score. */
  prediction: { output: string; measure: string };
  summary: ReturnType<typeof summarize>;
  drift: DriftReport | null;
  distributions: Record<string, Distribution>;
  score_distribution: Distribution | null;
  performance: LivePerformance | null;
}

const escape = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** One display precision for every metric, live or registered, so they compare digit for digit. */
const metric = (v: number | undefined | null) => (v === undefined || v === null || !Number.isFinite(v) ? "-" : v.toFixed(4));
const stat = (v: number | undefined | null) => (v === undefined || v === null || !Number.isFinite(v) ? "-" : v.toFixed(4));
const pvalue = (v: number) => (v < 1e-4 ? v.toExponential(2) : v.toFixed(4));
const edge = (v: number) => (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-2) ? v.toExponential(1) : String(+v.toPrecision(4)));

const shares = (counts: number[]) => {
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.map((c) => (total ? c / total : 0));
};

function numericDistribution(edges: number[], ref: number[], cur: number[] | null): Distribution | null {
  if (!cur || cur.length !== ref.length) return null;
  const bins = ref.map((_, i) => `${edge(edges[i])} to ${edge(edges[i + 1])}`);
  return { bins, reference: shares(ref), current: shares(cur), reference_n: ref.reduce((a, b) => a + b, 0), current_n: cur.reduce((a, b) => a + b, 0) };
}

function categoricalDistribution(ref: Record<string, number>, cur: Record<string, number>): Distribution {
  const bins = [...new Set([...Object.keys(ref), ...Object.keys(cur)])];
  const r = bins.map((b) => ref[b] ?? 0);
  const c = bins.map((b) => cur[b] ?? 0);
  return { bins, reference: shares(r), current: shares(c), reference_n: r.reduce((a, b) => a + b, 0), current_n: c.reduce((a, b) => a + b, 0) };
}

/** Reference vs current distributions of every feature with a reference, and of the score. */
export function distributions(v: Pick<ModelVersion, "featureSchema" | "reference">, agg: Aggregate): { features: Record<string, Distribution>; score: Distribution | null } {
  const features: Record<string, Distribution> = {};
  for (const f of v.featureSchema.features) {
    const r = v.reference?.features?.[f.name];
    const cur = agg.features[f.name];
    if (!r || !cur) continue;
    const d = r.type === "numeric" && cur.type === "numeric" ? numericDistribution(r.edges, r.counts, cur.counts) : r.type === "categorical" && cur.type === "categorical" ? categoricalDistribution(r.counts, cur.counts) : null;
    if (d) features[f.name] = d;
  }
  const score = v.reference?.score ? numericDistribution(v.reference.score.edges, v.reference.score.counts, agg.score.counts) : null;
  return { features, score };
}

export const REFERENCE_COLOR = "#94a3b8";
export const CURRENT_COLOR = "#2563eb";

/** Side-by-side bars per bin: reference (grey) then current (blue), heights as shares of rows. */
export function histogramSvg(id: string, d: Distribution): string {
  const W = 420;
  const H = 150;
  const L = 34;
  const B = 34;
  const top = Math.max(...d.reference, ...d.current, 0.01) * 1.1;
  const slot = (W - L - 6) / d.bins.length;
  const bar = Math.max(1, slot * 0.38);
  const y = (share: number) => H - B - (share / top) * (H - B - 6);
  const parts: string[] = [];
  for (let i = 0; i <= 2; i++) {
    const v = (top * i) / 2;
    parts.push(`<line x1="${L}" x2="${W - 6}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#eee"/><text x="${L - 3}" y="${(y(v) + 3).toFixed(1)}" font-size="9" text-anchor="end" fill="#666">${Math.round(v * 100)}%</text>`);
  }
  d.bins.forEach((bin, i) => {
    const x = L + i * slot + slot * 0.1;
    const rect = (share: number, dx: number, color: string, cls: string) =>
      `<rect class="${cls}" x="${(x + dx).toFixed(1)}" y="${y(share).toFixed(1)}" width="${bar.toFixed(1)}" height="${(H - B - y(share)).toFixed(1)}" fill="${color}"><title>${escape(bin)}: ${cls} ${(share * 100).toFixed(1)}%</title></rect>`;
    parts.push(rect(d.reference[i], 0, REFERENCE_COLOR, "reference"), rect(d.current[i], bar, CURRENT_COLOR, "current"));
    if (d.bins.length <= 12) parts.push(`<text x="${(x + bar).toFixed(1)}" y="${H - B + 11}" font-size="8" text-anchor="middle" fill="#666">${escape(bin.length > 14 ? bin.slice(0, 13) + "…" : bin)}</text>`);
  });
  return `<svg id="${escape(id)}" class="hist" data-drawn="2" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="reference and current distribution">${parts.join("")}</svg>`;
}

function thresholdsText(t: DriftThresholds): string {
  return `PSI &gt; ${t.psi}; or KS p &lt; ${t.pvalue} with D &ge; ${t.ks_statistic} (numeric); or chi-square p &lt; ${t.pvalue} with Jensen-Shannon &ge; ${t.js_distance} (categorical); no verdict under ${t.min_samples} rows`;
}

function verdict(d: FeatureDrift, t: DriftThresholds): string {
  if (d.drifted) return `drift: ${d.reasons.map(escape).join("; ")}`;
  if (d.status === "insufficient_data") return `no verdict: ${d.n} rows &lt; ${t.min_samples}`;
  if (d.status === "no_reference") return "no reference recorded";
  return "within thresholds";
}

function testText(d: FeatureDrift): string {
  if (d.ks) return `KS D=${stat(d.ks.statistic)} p=${pvalue(d.ks.pvalue)} (sample ${d.ks.sample_size})`;
  if (d.chi_square) return `chi-square ${stat(d.chi_square.statistic)} (dof ${d.chi_square.dof}) p=${pvalue(d.chi_square.pvalue)}, JS ${stat(d.js_distance)}`;
  return "-";
}

function featureBlock(name: string, d: FeatureDrift, dist: Distribution | undefined, t: DriftThresholds, id: string): string {
  const picture = dist ? histogramSvg(id, dist) : `<p class="muted">no distribution to draw</p>`;
  const sizes = dist ? `reference ${dist.reference_n} rows, current ${dist.current_n} rows` : `current ${d.n} rows`;
  const missing = d.missing_rate.current !== null ? `; missing ${(d.missing_rate.current * 100).toFixed(1)}% (reference ${d.missing_rate.reference === null ? "-" : (d.missing_rate.reference * 100).toFixed(1) + "%"})` : "";
  return `<div class="feature ${d.drifted ? "drift" : ""}" data-feature="${escape(name)}"><h3>${escape(name)} <small>${d.type}</small></h3>${picture}
<p>PSI ${stat(d.psi)}; ${escape(testText(d))}<br>n = ${d.n} (${sizes}${missing})<br><strong class="verdict">${verdict(d, t)}</strong></p></div>`;
}

export function reportHtml(r: DailyReport): string {
  const t = r.drift?.thresholds ?? DEFAULT_DRIFT_THRESHOLDS;
  const entries = Object.entries(r.drift?.features ?? {}).sort((a, b) => Number(b[1].drifted) - Number(a[1].drifted) || (b[1].psi ?? -1) - (a[1].psi ?? -1));
  const blocks = entries.map(([name, d], i) => featureBlock(name, d, r.distributions[name], t, `hist-${i}`)).join("");
  const score = r.drift?.score;
  const perf = r.performance;
  const names = [...new Set([...Object.keys(perf?.metrics ?? {}), ...Object.keys(perf?.registered ?? {})])].filter((k) => k !== "n_holdout");
  const perfRows = names
    .map((k) => {
      const deg = perf?.degradation[k];
      const cls = deg ? (deg.degradation > 0 ? "worse" : deg.degradation < 0 ? "better" : "") : "";
      const delta = deg ? `${deg.live - deg.registered >= 0 ? "+" : ""}${(deg.live - deg.registered).toFixed(4)}` : "-";
      return `<tr class="${cls}" data-metric="${escape(k)}"><td>${escape(k)}</td><td>${metric(perf?.metrics[k])}</td><td>${metric(perf?.registered[k])}</td><td>${delta}</td></tr>`;
    })
    .join("");
  const drifted = r.drift?.drifted_features ?? [];
  const headline = r.drift?.has_drift ? `Drift detected: ${escape([...drifted, ...(score?.drifted ? [`prediction (${r.prediction.output})`] : [])].join(", "))}` : r.drift ? "No drift detected" : "No reference recorded: no drift verdicts";
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Drift report ${escape(r.model)}@${escape(r.version)} ${r.date}</title>
<style>body{font:14px system-ui,sans-serif;margin:2rem;color:#1f2933}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:12px}.feature{border:1px solid #ddd;border-radius:6px;padding:8px}.feature h3{margin:0 0 4px;font-size:15px}
.drift{background:#fde2e2;border-color:#e8a0a0}tr.worse{background:#fde2e2;font-weight:600}tr.better{background:#e3f6e8}.muted{color:#777}.key i{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}</style></head>
<body data-ready="true"><main>
<h1>Drift report: ${escape(r.model)}@${escape(r.version)}</h1>
<p>${escape(r.window.from)} to ${escape(r.window.to)}. Requests ${r.summary.requests}, rows ${r.summary.rows}, server error rate ${(r.summary.error_rate * 100).toFixed(2)}%. <a id="dashboard-link" href="${escape(r.dashboard)}">Live dashboard</a></p>
<p><strong id="headline">${headline}</strong></p>
<p id="thresholds">Thresholds: ${thresholdsText(t)}.</p>
<h2>Prediction drift: ${escape(r.prediction.output)}</h2>
<div id="prediction">${score ? featureBlock(r.prediction.measure, score, r.score_distribution ?? undefined, t, "hist-score") : `<p class="muted">no score reference recorded</p>`}</div>
<h2>Features <span class="key"><i style="background:${REFERENCE_COLOR}"></i>reference (training)<i style="background:${CURRENT_COLOR}"></i>current (24 h)</span></h2>
<div class="grid" id="features">${blocks}</div>
<h2>Live performance (7 days, ${perf?.n ?? 0} labels)</h2>
${perf?.note ? `<p class="muted">${escape(perf.note)}</p>` : ""}
<table id="performance"><thead><tr><th>metric</th><th>live</th><th>registered</th><th>live - registered</th></tr></thead><tbody>${perfRows}</tbody></table>
</main></body></html>`;
}

/** The output and class the score stands for, named as the schema names them. */
function predictionName(v: Pick<ModelVersion, "featureSchema">): DailyReport["prediction"] {
  const out = v.featureSchema.output;
  if (out.kind === "regressor") return { output: out.value, measure: `${out.value} (predicted value)` };
  const positive = out.positiveClass ?? (out.classes.length === 2 ? out.classes[1] : undefined);
  return { output: out.probabilities, measure: positive === undefined ? `${out.probabilities} (top-class probability)` : `${out.probabilities} (probability of class ${positive})` };
}

export async function buildDailyReport(env: Env, model: string, version: string, shards: string[], now = Date.now()): Promise<DailyReport> {
  const v = await loadVersion(env, model, version);
  const [w, labels] = await Promise.all([fleetWindow(env, shards, WINDOWS["24h"], now), fleetLabels(env, model, version, now - WINDOWS["7d"])]);
  const { config } = await env.MODEL_CONTROL.getByName(model).sla();
  const pictures = distributions(v, w.aggregate);
  return {
    model,
    version,
    date: new Date(now).toISOString().slice(0, 10),
    window: { from: new Date(w.from).toISOString(), to: new Date(now).toISOString() },
    generated_at: new Date(now).toISOString(),
    dashboard: `/dashboard/${model}`,
    prediction: predictionName(v),
    summary: summarize(w.aggregate, w.seconds),
    drift: v.reference ? driftReport(v, w.aggregate, config.max_psi !== undefined ? { psi: config.max_psi } : {}) : null,
    distributions: pictures.features,
    score_distribution: pictures.score,
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
      links: { json: `/admin/monitoring/${model}/reports/${version}/${report.date}.json`, html: `/admin/monitoring/${model}/reports/${version}/${report.date}.html`, dashboard: report.dashboard },
    });
  }
  return keys;
}

/** Cron task ("0 6 * * *"). */
export async function publishAllDailyReports(env: Env, now = Date.now()): Promise<void> {
  const models = await listModels(registryDb(env.DB));
  for (const m of models) await publishDailyReports(env, m.name, now);
}
