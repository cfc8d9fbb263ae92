/**
 * Dashboard data (the original design's export) and the dashboard page. The page is static HTML
 * with inline SVG charts drawn by a small script from the JSON at
 * /v1/monitoring/models/:model/dashboard (no external assets: it works offline and under a
 * strict CSP). Charts: latency p50/p95/p99, volume, errors, prediction PSI, live AUC, alerts.
 *
 * Each version keeps one colour in every chart and legend (quantiles and error kinds differ by
 * dash or outline, not colour). A drift point is plotted only from a bucket with at least the drift
 * report's minimum rows, an AUC point only from a day with the SLA's minimum labels: a PSI from 3
 * rows or an AUC from 11 labels is noise drawn as a verdict. The deployment routing traffic (strategy,
 * state, canary step, variants and weights) and each alert's version are on the page.
 */
import { DDSketch } from "../stats/sketch";
import { psi } from "../stats/drift";
import { round, summarize } from "./aggregate";
import { DAY } from "./config";
import { describeDeployment, deploymentsDb, routingDeployment } from "../deployments/store";
import { DEFAULT_DRIFT_THRESHOLDS, driftReport } from "./drift";
import { activeVersions, fleetLabels, fleetSeries, fleetWindow, loadVersion, WINDOWS, type WindowName } from "./fleet";
import { livePerformance } from "./performance";

/** The deployment routing the model's traffic now, as the dashboard shows it (null: the champion alone). */
async function activeDeployment(env: Env, model: string) {
  const d = await routingDeployment(deploymentsDb(env.DB), model);
  if (!d) return null;
  const view = describeDeployment(d);
  return {
    id: view.id,
    strategy: view.strategy,
    state: view.state,
    baseline_version: view.baseline_version,
    candidate_version: view.candidate_version,
    variants: d.variants.map((v) => ({ name: v.name, version: v.version, weight: v.weight })),
    ...(d.config.steps ? { steps: d.config.steps, step: d.config.step ?? 0 } : {}),
    step_started_at: view.step_started_at,
  };
}

export async function dashboardData(env: Env, model: string, window: WindowName, now = Date.now()) {
  const span = WINDOWS[window];
  const control = env.MODEL_CONTROL.getByName(model);
  const [active, alerts, compliance, sla, deployment] = await Promise.all([
    activeVersions(env, model, now - Math.max(span, DAY)),
    control.alerts(50),
    control.compliance(now),
    control.sla(),
    activeDeployment(env, model),
  ]);
  // Plotted verdicts need a sample that controls their false-alarm rate: the drift report's
  // minimum rows for a score PSI point, the SLA's minimum labels for a daily AUC point.
  const minSamples = DEFAULT_DRIFT_THRESHOLDS.min_samples;
  const minLabels = sla.config.min_labels;
  const versions = await Promise.all(
    active.map(async ({ version, shards }) => {
      const v = await loadVersion(env, model, version).catch(() => null);
      const [w, series, labels] = await Promise.all([fleetWindow(env, shards, span, now), fleetSeries(env, shards, span, now), fleetLabels(env, model, version, now - WINDOWS["7d"])]);
      const refScore = v?.reference?.score?.counts;
      const daily = new Map<number, typeof labels>();
      for (const l of labels) {
        const day = Math.floor(l.labelledAt / DAY) * DAY;
        daily.set(day, [...(daily.get(day) ?? []), l]);
      }
      return {
        version,
        window: { name: window, from: w.from, to: w.to, seconds: w.seconds },
        summary: summarize(w.aggregate, w.seconds),
        series: series.map(({ start, aggregate: a }) => {
          const sk = a.latency ? DDSketch.fromJSON(a.latency) : null;
          const q = (p: number) => (sk && sk.count ? round(sk.quantile(p)) : null);
          const errors = Object.entries(a.errors).reduce((s, [k, n]) => s + (Number(k.split(" ")[0]) >= 500 ? n : 0), 0);
          const clientErrors = Object.values(a.errors).reduce((s, n) => s + n, 0) - errors;
          const scoreN = a.score.counts ? a.score.counts.reduce((s, n) => s + n, 0) : 0;
          const scorePsi = refScore && a.score.counts && scoreN >= minSamples ? round(psi(refScore, a.score.counts)) : null;
          return { t: start, requests: a.requests, rows: a.rows, server_errors: errors, client_errors: clientErrors, p50: q(0.5), p95: q(0.95), p99: q(0.99), score_n: scoreN, score_psi: Number.isFinite(scorePsi) ? scorePsi : null };
        }),
        drift: v?.reference ? driftReport(v, w.aggregate) : null,
        performance: v && labels.length ? livePerformance(v, labels) : null,
        live_auc_daily: v
          ? [...daily]
              .sort((a, b) => a[0] - b[0])
              .map(([day, rows]) => ({ t: day, n: rows.length, auc: rows.length >= minLabels ? (livePerformance(v, rows).metrics.auc ?? null) : null }))
          : [],
      };
    }),
  );
  return { model, generated_at: new Date(now).toISOString(), window, minimums: { score_rows: minSamples, labels: minLabels }, deployment, versions, alerts, compliance };
}

export function dashboardPage(model: string): string {
  const m = JSON.stringify(model).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>edge-ml monitoring: ${model.replace(/[^a-z0-9_-]/g, "")}</title>
<style>
body{font:14px system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1f2933}
header{background:#1f2933;color:#fff;padding:12px 20px;display:flex;gap:16px;align-items:center}
header h1{font-size:18px;margin:0;flex:1} select,input,button{font:inherit}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:16px;padding:16px}
section{background:#fff;border-radius:6px;box-shadow:0 1px 2px #0002;padding:12px}
section h2{font-size:14px;margin:0 0 8px} svg{width:100%;height:180px;display:block}
.legend span{margin-right:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:3px 6px;border-bottom:1px solid #eee}
.note{font-size:12px;color:#666;margin:4px 0 0}.legend i.dash{background:none!important;border-top:2px dashed #333;height:0}.legend i.outline{background:#fff!important;border:2px solid #333;width:7px;height:7px}
.critical{color:#c0392b}.warning{color:#d68910}.info{color:#2471a3}.drift{background:#fde2e2}#status{font-size:12px}
</style></head><body>
<header><h1>Monitoring: <span id="model"></span></h1>
<label>window <select id="window"><option>5m</option><option selected>1h</option><option>6h</option><option>24h</option><option>7d</option></select></label>
<span id="status">loading...</span></header>
<main id="main">
<section id="deployment-panel"><h2>Deployment</h2><div id="deployment">-</div></section>
<section><h2>Latency (ms)</h2><svg id="latency" data-chart="latency"></svg><div class="legend" id="latency-legend"></div></section>
<section><h2>Volume (requests per bucket)</h2><svg id="volume" data-chart="volume"></svg><div class="legend" id="volume-legend"></div></section>
<section><h2>Errors (per bucket)</h2><svg id="errors" data-chart="errors"></svg><div class="legend" id="errors-legend"></div></section>
<section><h2>Prediction drift (score PSI per bucket)</h2><svg id="drift" data-chart="drift"></svg><div class="legend" id="drift-legend"></div><p class="note" id="drift-note"></p></section>
<section><h2>Live AUC (daily, from feedback)</h2><svg id="auc" data-chart="auc"></svg><div class="legend" id="auc-legend"></div><p class="note" id="auc-note"></p></section>
<section><h2>Feature drift</h2><table id="features"><thead><tr><th>version</th><th>feature</th><th>PSI</th><th>test</th><th>status</th></tr></thead><tbody></tbody></table></section>
<section><h2>Alerts</h2><table id="alerts"><thead><tr><th>when</th><th>version</th><th>severity</th><th>state</th><th>alert</th></tr></thead><tbody></tbody></table></section>
<section><h2>SLA compliance</h2><table id="sla"><thead><tr><th>version</th><th>now</th><th>24h</th><th>7d</th></tr></thead><tbody></tbody></table></section>
</main>
<script>
const MODEL = ${m};
const COLORS = ["#2563eb", "#f59e0b", "#dc2626", "#16a34a", "#7c3aed", "#0891b2"];
document.getElementById("model").textContent = MODEL;
function el(tag, attrs, text) { const e = document.createElementNS("http://www.w3.org/2000/svg", tag); for (const k in attrs) e.setAttribute(k, attrs[k]); if (text !== undefined) e.textContent = text; return e; }
function chart(svg, series, opts) {
  svg.innerHTML = ""; const W = 400, H = 180, L = 44, B = 20; svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  const pts = series.flatMap((s) => s.points.filter((p) => p[1] !== null));
  if (!pts.length) { svg.appendChild(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#888" }, "no data")); svg.dataset.drawn = "0"; return; }
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  let x0 = Math.min(...xs), x1 = Math.max(...xs); if (x1 === x0) { x0 -= 60000; x1 += 60000; } if (opts.bars) { const pad = (x1 - x0) * 0.08; x0 -= pad; x1 += pad; }
  const y1 = Math.max(opts.min || 0, ...ys) * 1.1 || 1;
  const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - 8), Y = (y) => H - B - (y / y1) * (H - B - 8);
  for (let i = 0; i <= 4; i++) { const v = (y1 * i) / 4; svg.appendChild(el("line", { x1: L, x2: W - 8, y1: Y(v), y2: Y(v), stroke: "#eee" })); svg.appendChild(el("text", { x: L - 4, y: Y(v) + 4, "text-anchor": "end", "font-size": 10, fill: "#666" }, +v.toPrecision(3))); }
  svg.appendChild(el("text", { x: L, y: H - 4, "font-size": 10, fill: "#666" }, new Date(x0).toISOString().slice(5, 16).replace("T", " ")));
  svg.appendChild(el("text", { x: W - 8, y: H - 4, "font-size": 10, fill: "#666", "text-anchor": "end" }, new Date(x1).toISOString().slice(5, 16).replace("T", " ")));
  if (opts.threshold !== undefined) svg.appendChild(el("line", { x1: L, x2: W - 8, y1: Y(opts.threshold), y2: Y(opts.threshold), stroke: "#dc2626", "stroke-dasharray": "4 3" }));
  let drawn = 0;
  series.forEach((s, i) => {
    const p = s.points.filter((q) => q[1] !== null); if (!p.length) return;
    const color = s.color || COLORS[i % COLORS.length];
    if (opts.bars) { const w = Math.max(2, (W - L) / Math.max(p.length * 1.5 * series.length, 8)); p.forEach((q) => svg.appendChild(el("rect", { class: "series", x: X(q[0]) - (w * series.length) / 2 + i * w, y: Y(q[1]), width: w, height: H - B - Y(q[1]), fill: s.outline ? "#fff" : color, stroke: color, "stroke-width": s.outline ? 2 : 0 }))); }
    else { svg.appendChild(el("path", { class: "series", d: p.map((q, j) => (j ? "L" : "M") + X(q[0]).toFixed(1) + " " + Y(q[1]).toFixed(1)).join(" "), fill: "none", stroke: color, "stroke-width": 2.5, "stroke-dasharray": s.dash || "" })); p.forEach((q) => svg.appendChild(el("circle", { cx: X(q[0]), cy: Y(q[1]), r: 3, fill: color }))); }
    drawn++;
  });
  svg.dataset.drawn = String(drawn);
}
/** One entry per version in its colour, then the style key of the chart (dash, outline). */
function legend(id, versions, styles) {
  const box = document.getElementById(id); box.innerHTML = "";
  const add = (text, color, cls, version) => { const s = document.createElement("span"); const i = document.createElement("i"); if (color) i.style.background = color; if (cls) i.className = cls; s.appendChild(i); s.appendChild(document.createTextNode(text)); if (version) s.dataset.version = version; box.appendChild(s); };
  versions.forEach((v, k) => add(v, versionColor(k), "", v));
  (styles || []).forEach((st) => add(st.name, "", st.cls));
}
function versionColor(k) { return COLORS[k % COLORS.length]; }
function row(tbody, cells, cls) { const tr = document.createElement("tr"); if (cls) tr.className = cls; cells.forEach((c) => { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }); tbody.appendChild(tr); }
async function load() {
  const win = document.getElementById("window").value;
  const headers = {}; const key = localStorage.getItem("edge-ml-api-key"); if (key) headers["x-api-key"] = key;
  const res = await fetch("/v1/monitoring/models/" + encodeURIComponent(MODEL) + "/dashboard?window=" + win, { headers });
  if (res.status === 401 || res.status === 403) { const k = prompt("API key"); if (k) { localStorage.setItem("edge-ml-api-key", k); return load(); } }
  if (!res.ok) { document.getElementById("status").textContent = "error " + res.status; return; }
  const d = await res.json(); const vs = d.versions;
  const names = vs.map((v) => v.version);
  const DASH = { p50: "", p95: "7 4", p99: "2 3" };
  const lat = []; vs.forEach((v, k) => ["p50", "p95", "p99"].forEach((q) => lat.push({ name: v.version + " " + q, color: versionColor(k), dash: DASH[q], points: v.series.map((s) => [s.t, s[q]]) })));
  chart(document.getElementById("latency"), lat, {}); legend("latency-legend", names, [{ name: "p50 solid", cls: "" }, { name: "p95 dashed", cls: "dash" }, { name: "p99 dotted", cls: "dash" }]);
  chart(document.getElementById("volume"), vs.map((v, k) => ({ color: versionColor(k), points: v.series.map((s) => [s.t, s.requests]) })), { bars: true }); legend("volume-legend", names);
  const errs = []; vs.forEach((v, k) => { errs.push({ name: v.version + " 5xx", color: versionColor(k), points: v.series.map((s) => [s.t, s.server_errors]) }); errs.push({ name: v.version + " 4xx", color: versionColor(k), outline: true, points: v.series.map((s) => [s.t, s.client_errors]) }); });
  chart(document.getElementById("errors"), errs, { bars: true, min: 1 }); legend("errors-legend", names, [{ name: "5xx filled", cls: "" }, { name: "4xx outlined", cls: "outline" }]);
  chart(document.getElementById("drift"), vs.map((v, k) => ({ color: versionColor(k), points: v.series.map((s) => [s.t, s.score_psi]) })), { threshold: 0.2, min: 0.25 }); legend("drift-legend", names);
  const hiddenPsi = vs.reduce((n, v) => n + v.series.filter((s) => s.score_psi === null && s.score_n > 0).length, 0);
  document.getElementById("drift-note").textContent = "Points only from buckets with at least " + d.minimums.score_rows + " scored rows" + (hiddenPsi ? "; " + hiddenPsi + " smaller bucket(s) not plotted." : ".");
  chart(document.getElementById("auc"), vs.map((v, k) => ({ color: versionColor(k), points: v.live_auc_daily.map((s) => [s.t, s.auc]) })), { min: 1 }); legend("auc-legend", names);
  const hiddenAuc = vs.reduce((n, v) => n + v.live_auc_daily.filter((s) => s.auc === null).length, 0);
  document.getElementById("auc-note").textContent = "Points only from days with at least " + d.minimums.labels + " labels" + (hiddenAuc ? "; " + hiddenAuc + " day(s) with fewer not plotted." : ".");
  const dep = document.getElementById("deployment"); dep.innerHTML = "";
  if (!d.deployment) dep.textContent = "No deployment routing traffic: the champion alias answers.";
  else {
    const x = d.deployment; const p = document.createElement("p");
    p.textContent = x.strategy + " " + x.id + " (" + x.state + ")" + (x.steps ? ": step " + (x.step + 1) + " of " + x.steps.length + " (" + x.steps.join("% > ") + "%)" : "") + (x.candidate_version ? ", candidate " + x.candidate_version : "") + (x.baseline_version ? ", baseline " + x.baseline_version : "");
    dep.appendChild(p);
    const t = document.createElement("table"); t.id = "variants"; t.innerHTML = "<thead><tr><th>variant</th><th>version</th><th>traffic</th></tr></thead><tbody></tbody>"; dep.appendChild(t);
    x.variants.forEach((v) => row(t.querySelector("tbody"), [v.name, v.version, +v.weight.toFixed(2) + "%"]));
  }
  const ft = document.querySelector("#features tbody"); ft.innerHTML = "";
  vs.forEach((v) => v.drift && Object.entries(v.drift.features).forEach(([f, r]) => row(ft, [v.version, f, r.psi === null ? "-" : r.psi.toFixed(3), r.ks ? "KS " + r.ks.statistic.toFixed(3) : r.js_distance !== undefined ? "JS " + r.js_distance.toFixed(3) : "-", r.status], r.drifted ? "drift" : "")));
  const at = document.querySelector("#alerts tbody"); at.innerHTML = "";
  d.alerts.history.slice(0, 15).forEach((a) => row(at, [new Date(a.at).toISOString().slice(5, 16).replace("T", " "), a.version, a.severity, a.state, a.message], a.severity));
  const st = document.querySelector("#sla tbody"); st.innerHTML = "";
  d.compliance.forEach((c) => row(st, [c.version, c.current.compliant ? "compliant" : "violating: " + c.current.violations.join(", "), fmt(c.windows["24h"].compliant_share), fmt(c.windows["7d"].compliant_share)]));
  document.getElementById("status").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
  document.body.dataset.ready = "true";
}
function fmt(v) { return v === null ? "-" : (v * 100).toFixed(1) + "%"; }
document.getElementById("window").addEventListener("change", load);
load(); setInterval(load, 30000);
</script></body></html>`;
}
