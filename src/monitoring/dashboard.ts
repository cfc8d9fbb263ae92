/**
 * Dashboard data (the original design's export) and the dashboard page. The page is static HTML
 * with inline SVG charts drawn by a small script from the JSON at
 * /v1/monitoring/models/:model/dashboard (no external assets: it works offline and under a
 * strict CSP). Charts: latency p50/p95/p99, volume, errors, prediction PSI, live AUC, alerts.
 */
import { DDSketch } from "../stats/sketch";
import { psi } from "../stats/drift";
import { round, summarize } from "./aggregate";
import { DAY } from "./config";
import { driftReport } from "./drift";
import { activeVersions, fleetLabels, fleetSeries, fleetWindow, loadVersion, WINDOWS, type WindowName } from "./fleet";
import { livePerformance } from "./performance";

export async function dashboardData(env: Env, model: string, window: WindowName, now = Date.now()) {
  const span = WINDOWS[window];
  const control = env.MODEL_CONTROL.getByName(model);
  const [active, alerts, compliance] = await Promise.all([activeVersions(env, model, now - Math.max(span, DAY)), control.alerts(50), control.compliance(now)]);
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
          const scorePsi = refScore && a.score.counts ? round(psi(refScore, a.score.counts)) : null;
          return { t: start, requests: a.requests, rows: a.rows, server_errors: errors, client_errors: clientErrors, p50: q(0.5), p95: q(0.95), p99: q(0.99), score_psi: Number.isFinite(scorePsi) ? scorePsi : null };
        }),
        drift: v?.reference ? driftReport(v, w.aggregate) : null,
        performance: v && labels.length ? livePerformance(v, labels) : null,
        live_auc_daily: v
          ? [...daily]
              .sort((a, b) => a[0] - b[0])
              .map(([day, rows]) => ({ t: day, n: rows.length, auc: livePerformance(v, rows).metrics.auc ?? null }))
          : [],
      };
    }),
  );
  return { model, generated_at: new Date(now).toISOString(), window, versions, alerts, compliance };
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
.critical{color:#c0392b}.warning{color:#d68910}.info{color:#2471a3}.drift{background:#fde2e2}#status{font-size:12px}
</style></head><body>
<header><h1>Monitoring: <span id="model"></span></h1>
<label>window <select id="window"><option>5m</option><option selected>1h</option><option>6h</option><option>24h</option><option>7d</option></select></label>
<span id="status">loading...</span></header>
<main id="main">
<section><h2>Latency (ms)</h2><svg id="latency" data-chart="latency"></svg><div class="legend" id="latency-legend"></div></section>
<section><h2>Volume (requests per bucket)</h2><svg id="volume" data-chart="volume"></svg></section>
<section><h2>Errors (per bucket)</h2><svg id="errors" data-chart="errors"></svg><div class="legend" id="errors-legend"></div></section>
<section><h2>Prediction drift (score PSI per bucket)</h2><svg id="drift" data-chart="drift"></svg></section>
<section><h2>Live AUC (daily, from feedback)</h2><svg id="auc" data-chart="auc"></svg></section>
<section><h2>Feature drift</h2><table id="features"><thead><tr><th>version</th><th>feature</th><th>PSI</th><th>test</th><th>status</th></tr></thead><tbody></tbody></table></section>
<section><h2>Alerts</h2><table id="alerts"><thead><tr><th>when</th><th>severity</th><th>state</th><th>alert</th></tr></thead><tbody></tbody></table></section>
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
    if (opts.bars) { const w = Math.max(2, (W - L) / Math.max(p.length * 1.5, 8)); p.forEach((q) => svg.appendChild(el("rect", { class: "series", x: X(q[0]) - w / 2 + i * 2, y: Y(q[1]), width: w, height: H - B - Y(q[1]), fill: s.color || COLORS[i] }))); }
    else { svg.appendChild(el("path", { class: "series", d: p.map((q, j) => (j ? "L" : "M") + X(q[0]).toFixed(1) + " " + Y(q[1]).toFixed(1)).join(" "), fill: "none", stroke: s.color || COLORS[i], "stroke-width": 2.5 })); p.forEach((q) => svg.appendChild(el("circle", { cx: X(q[0]), cy: Y(q[1]), r: 2.5, fill: s.color || COLORS[i] }))); }
    drawn++;
  });
  svg.dataset.drawn = String(drawn);
}
function legend(id, series) { document.getElementById(id).innerHTML = series.map((s, i) => '<span><i style="background:' + (s.color || COLORS[i]) + '"></i>' + s.name + "</span>").join(""); }
function row(tbody, cells, cls) { const tr = document.createElement("tr"); if (cls) tr.className = cls; cells.forEach((c) => { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }); tbody.appendChild(tr); }
async function load() {
  const win = document.getElementById("window").value;
  const headers = {}; const key = localStorage.getItem("edge-ml-api-key"); if (key) headers["x-api-key"] = key;
  const res = await fetch("/v1/monitoring/models/" + encodeURIComponent(MODEL) + "/dashboard?window=" + win, { headers });
  if (res.status === 401 || res.status === 403) { const k = prompt("API key"); if (k) { localStorage.setItem("edge-ml-api-key", k); return load(); } }
  if (!res.ok) { document.getElementById("status").textContent = "error " + res.status; return; }
  const d = await res.json(); const vs = d.versions;
  const lat = []; vs.forEach((v) => ["p50", "p95", "p99"].forEach((q) => lat.push({ name: v.version + " " + q, points: v.series.map((s) => [s.t, s[q]]) })));
  chart(document.getElementById("latency"), lat, {}); legend("latency-legend", lat);
  chart(document.getElementById("volume"), vs.map((v) => ({ points: v.series.map((s) => [s.t, s.requests]) })), { bars: true });
  const errs = []; vs.forEach((v) => { errs.push({ name: v.version + " 5xx", color: "#dc2626", points: v.series.map((s) => [s.t, s.server_errors]) }); errs.push({ name: v.version + " 4xx", color: "#f59e0b", points: v.series.map((s) => [s.t, s.client_errors]) }); });
  chart(document.getElementById("errors"), errs, { bars: true, min: 1 }); legend("errors-legend", errs);
  chart(document.getElementById("drift"), vs.map((v) => ({ points: v.series.map((s) => [s.t, s.score_psi]) })), { threshold: 0.2, min: 0.25 });
  chart(document.getElementById("auc"), vs.map((v) => ({ points: v.live_auc_daily.map((s) => [s.t, s.auc]) })), { min: 1 });
  const ft = document.querySelector("#features tbody"); ft.innerHTML = "";
  vs.forEach((v) => v.drift && Object.entries(v.drift.features).forEach(([f, r]) => row(ft, [v.version, f, r.psi === null ? "-" : r.psi.toFixed(3), r.ks ? "KS " + r.ks.statistic.toFixed(3) : r.js_distance !== undefined ? "JS " + r.js_distance.toFixed(3) : "-", r.status], r.drifted ? "drift" : "")));
  const at = document.querySelector("#alerts tbody"); at.innerHTML = "";
  d.alerts.history.slice(0, 15).forEach((a) => row(at, [new Date(a.at).toISOString().slice(5, 16).replace("T", " "), a.severity, a.state, a.message], a.severity));
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
