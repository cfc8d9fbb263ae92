/**
 * The daily drift report and the dashboard with two versions under a canary (issue 11):
 *  - report: reference vs current bars per feature (SVG), thresholds and the reason of each flag,
 *    prediction drift by output name, live metrics beside registered ones at the same precision
 *    with the worse ones highlighted, sample sizes, a link to the dashboard;
 *  - dashboard: no drift point from a bucket under the minimum rows and no AUC point from a day
 *    under the minimum labels, one colour per version in every chart and legend, the version of
 *    each alert, and the canary (step, variants, weights);
 *  - both rendered in headless Chromium (TEST_BROWSER) and checked on screen.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { CURRENT_COLOR, REFERENCE_COLOR } from "../../src/monitoring/reports";
import { createStarted, holdoutSet, setupModel, storeTestSet } from "../deployments/helpers";
import { ADMIN, call } from "../support/api";
import { eventually } from "./helpers";

const M = "drift_view";
const FORCE = (variant: string) => ({ "x-force-variant": variant, "x-admin-token": "test-admin-token" });
let deploymentId: string;
let stableRows: { features: Record<string, unknown>; label: number }[];
const date = new Date().toISOString().slice(0, 10);

beforeAll(async () => {
  await setupModel(M);
  await storeTestSet(M);
  deploymentId = await createStarted({ strategy: "canary", model: M, version: "1.1.0" });
  const holdout = (await holdoutSet()).rows;
  // Stable: 300 rows with Seniority shifted to 0 (a drift the report must flag, with its reason).
  stableRows = holdout.filter((_, i) => i % 2 === 0).slice(0, 300);
  const stable = await call("POST", `/v1/models/${M}/predict`, { instances: stableRows.map((r) => ({ ...r.features, Seniority: 0 })) }, { ...FORCE("stable"), "x-request-id": "rd-stable" });
  expect(stable.status, stable.text).toBe(200);
  // Canary: 11 single rows of both classes, far under both minimums (100 scored rows, 50 labels).
  const few = [...holdout.filter((r) => r.label === 1).slice(0, 5), ...holdout.filter((r) => r.label === 0).slice(0, 6)];
  // Feedback takes the server's ids (the caller's x-request-id is only a correlation id).
  const canaryIds: string[] = [];
  for (const [i, r] of few.entries()) {
    const res = await call("POST", `/v1/models/${M}/predict`, { features: r.features }, { ...FORCE("canary"), "x-request-id": `rd-canary-${i}` });
    expect(res.json.version).toBe("1.1.0");
    canaryIds.push(res.json.request_id);
  }
  await eventually(async () => expect((await call("GET", `/v1/monitoring/models/${M}/summary?window=5m`)).json.versions.map((v: any) => v.requests).sort()).toEqual([1, 11]));
  await eventually(async () => {
    const fb = await call("POST", "/v1/feedback", { model: M, feedback: [{ request_id: stable.json.request_id, row: 0, actual: stableRows[0].label }, ...few.map((r, i) => ({ request_id: canaryIds[i], row: 0, actual: r.label }))] });
    expect(fb.json.joined).toBe(12);
  });
  await call("POST", "/v1/feedback", { model: M, feedback: stableRows.slice(1).map((r, i) => ({ request_id: stable.json.request_id, row: i + 1, actual: r.label })) });
  await call("PUT", `/admin/monitoring/${M}/sla`, { p95_latency_ms: 0.001 }, ADMIN);
  await call("POST", `/admin/monitoring/${M}/evaluate`, undefined, ADMIN);
  const published = await call("POST", `/admin/monitoring/${M}/reports`, undefined, ADMIN);
  expect(published.status, published.text).toBe(201);
});

async function shoot(job: { path: string; responses: Record<string, { status: number; contentType: string; body: string }>; charts: string[]; colors: string[] }) {
  const res = await env.TEST_BROWSER.fetch("http://browser/", { method: "POST", body: JSON.stringify(job) });
  const shot = (await res.json()) as any;
  expect(res.status, JSON.stringify(shot)).toBe(200);
  expect(shot.errors).toEqual([]);
  return shot;
}

describe("daily drift report", () => {
  it("JSON: distributions of every feature and the score, the prediction's output name, the dashboard link", async () => {
    const report = await (await env.ARTIFACTS.get(`reports/drift/${M}/1.0.0/${date}.json`))!.json<any>();
    expect(report.dashboard).toBe(`/dashboard/${M}`);
    expect(report.prediction).toEqual({ output: "probabilities", measure: "probabilities (probability of class 1)" });
    const features = Object.keys(report.drift.features);
    expect(Object.keys(report.distributions).sort()).toEqual(features.sort());
    const seniority = report.distributions.Seniority;
    expect(seniority.current_n).toBe(300);
    expect(seniority.reference.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 9);
    // Every shifted row sits in the bin that holds 0.
    expect(Math.max(...seniority.current)).toBe(1);
    expect(report.score_distribution.current_n).toBe(300);
    expect(report.drift.features.Seniority.drifted).toBe(true);
  });

  it("HTML: bars per feature, thresholds and reasons, prediction drift by name, metrics at one precision with deltas highlighted; on screen in Chromium", async () => {
    const html = await call("GET", `/admin/monitoring/${M}/reports/1.0.0/${date}.html`, undefined, ADMIN);
    expect(html.status).toBe(200);
    const report = await (await env.ARTIFACTS.get(`reports/drift/${M}/1.0.0/${date}.json`))!.json<any>();
    const nFeatures = Object.keys(report.drift.features).length;
    expect(html.text.match(/<svg id="hist-\d+" class="hist"/g)).toHaveLength(nFeatures);
    expect(html.text).toContain('<svg id="hist-score" class="hist"');
    expect(html.text).toContain(`<a id="dashboard-link" href="/dashboard/${M}">`);
    expect(html.text).toMatch(/Thresholds: PSI &gt; 0\.2; or KS p &lt; 0\.01 with D &ge; 0\.1/);
    expect(html.text).toContain("Prediction drift: probabilities");
    // Seniority is first (drifted), with its reason and its sample sizes.
    const block = html.text.slice(html.text.indexOf('data-feature="Seniority"'), html.text.indexOf("</div>", html.text.indexOf('data-feature="Seniority"')));
    expect(html.text.indexOf('data-feature="Seniority"')).toBeLessThan(html.text.indexOf('data-feature="Age"'));
    expect(block).toMatch(/drift: PSI [\d.]+ &#62; 0\.2; KS D=[\d.]+ \(p=[\d.e-]+\)/);
    expect(block).toMatch(/n = 300 \(reference \d+ rows, current 300 rows/);
    // Registered metrics at the same 4 decimals as live ones; a worse live metric is highlighted.
    const perf = report.performance;
    expect(perf.n).toBe(300);
    const aucRow = html.text.match(/<tr class="(\w*)" data-metric="auc"><td>auc<\/td><td>([\d.]+)<\/td><td>([\d.]+)<\/td><td>([+-][\d.]+)<\/td><\/tr>/)!;
    expect(aucRow[2]).toBe(perf.metrics.auc.toFixed(4));
    expect(aucRow[3]).toBe("0.8275"); // registered 0.827515
    expect(aucRow[4]).toBe(`${perf.metrics.auc - 0.827515 >= 0 ? "+" : ""}${(perf.metrics.auc - 0.827515).toFixed(4)}`);
    expect(aucRow[1]).toBe(perf.degradation.auc.degradation > 0 ? "worse" : perf.degradation.auc.degradation < 0 ? "better" : "");
    expect(html.text).toMatch(/<tr class="worse" data-metric="\w+">/);

    const path = `/admin/monitoring/${M}/reports/1.0.0/${date}.html`;
    const shot = await shoot({ path, responses: { [path]: { status: 200, contentType: "text/html", body: html.text } }, charts: ["hist-0", "hist-score"], colors: [REFERENCE_COLOR, CURRENT_COLOR] });
    expect(shot.title).toBe(`Drift report ${M}@1.0.0 ${date}`);
    for (const id of ["hist-0", "hist-score"]) {
      expect(shot.charts[id].pixels[REFERENCE_COLOR], id).toBeGreaterThan(100);
      expect(shot.charts[id].pixels[CURRENT_COLOR], id).toBeGreaterThan(100);
    }
    expect(shot.text).toContain("drift: PSI");
    expect(shot.text).toContain("Live dashboard");
  }, 60_000);
});

describe("dashboard with two versions under a canary", () => {
  it("JSON: no score PSI under 100 rows, no AUC under 50 labels; the canary's step and variants", async () => {
    const res = await call("GET", `/v1/monitoring/models/${M}/dashboard?window=1h`);
    expect(res.status).toBe(200);
    expect(res.json.minimums).toEqual({ score_rows: 100, labels: 50 });
    expect(res.json.deployment).toMatchObject({
      id: deploymentId,
      strategy: "canary",
      state: "active",
      step: 0,
      steps: [5, 25, 50, 100],
      variants: [
        { name: "stable", version: "1.0.0", weight: 95 },
        { name: "canary", version: "1.1.0", weight: 5 },
      ],
    });
    const byVersion = Object.fromEntries(res.json.versions.map((v: any) => [v.version, v]));
    const canary = byVersion["1.1.0"];
    expect(canary.series.reduce((s: number, b: any) => s + b.score_n, 0)).toBe(11);
    expect(canary.series.every((b: any) => b.score_psi === null)).toBe(true);
    expect(canary.live_auc_daily).toEqual([{ t: expect.any(Number), n: 11, auc: null }]);
    const stable = byVersion["1.0.0"];
    expect(stable.series.some((b: any) => b.score_n >= 100 && typeof b.score_psi === "number")).toBe(true);
    expect(stable.live_auc_daily[0].n).toBe(300);
    expect(stable.live_auc_daily[0].auc).toBeGreaterThan(0.5);
    // Every alert names its version. (The canary's latency alert is not asserted: with workerd's
    // millisecond clock an idle machine measures its 11 requests at 0 ms, under any threshold.)
    const alertVersions = res.json.alerts.history.map((a: any) => a.version);
    expect(alertVersions).toContain("1.0.0");
    for (const v of alertVersions) expect(["1.0.0", "1.1.0"]).toContain(v);
  });

  it("page in Chromium: one colour per version in every chart and legend, small samples not plotted, alert versions, the canary", async () => {
    const page = await call("GET", `/dashboard/${M}`);
    const data = await call("GET", `/v1/monitoring/models/${M}/dashboard?window=1h`);
    const order = data.json.versions.map((v: any) => v.version);
    const colours = ["#2563eb", "#f59e0b"];
    const canaryColour = colours[order.indexOf("1.1.0")];
    const stableColour = colours[order.indexOf("1.0.0")];
    const shot = await shoot({
      path: `/dashboard/${M}`,
      responses: {
        [`/dashboard/${M}`]: { status: 200, contentType: "text/html", body: page.text },
        [`/v1/monitoring/models/${M}/dashboard?window=1h`]: { status: 200, contentType: "application/json", body: data.text },
      },
      charts: ["latency", "volume", "errors", "drift", "auc"],
      colors: colours,
    });
    // Each version keeps its colour: both versions in latency (one bucket each: points) and volume...
    for (const chart of ["latency", "volume"]) {
      expect(shot.charts[chart].pixels[stableColour], chart).toBeGreaterThan(15);
      expect(shot.charts[chart].pixels[canaryColour], chart).toBeGreaterThan(15);
    }
    // ...but the canary's 11 rows and 11 labels draw no drift or AUC point.
    expect(shot.charts.drift.pixels[stableColour]).toBeGreaterThan(10);
    expect(shot.charts.drift.pixels[canaryColour]).toBe(0);
    expect(shot.charts.auc.pixels[stableColour]).toBeGreaterThan(10);
    expect(shot.charts.auc.pixels[canaryColour]).toBe(0);
    expect(shot.text).toMatch(/Points only from buckets with at least 100 scored rows; \d+ smaller bucket\(s\) not plotted\./);
    expect(shot.text).toMatch(/Points only from days with at least 50 labels; 1 day\(s\) with fewer not plotted\./);
    // Legends: every chart names both versions.
    const legends = shot.text.split("\n").filter((l: string) => /^1\.0\.0\s*1\.1\.0/.test(l));
    expect(legends).toHaveLength(5);
    // The canary and the alerts' versions.
    expect(shot.text).toContain(`canary ${deploymentId} (active): step 1 of 4 (5% > 25% > 50% > 100%), candidate 1.1.0, baseline 1.0.0`);
    expect(shot.text).toMatch(/stable\s+1\.0\.0\s+95%/);
    expect(shot.text).toMatch(/canary\s+1\.1\.0\s+5%/);
    expect(shot.text).toMatch(/1\.0\.0\s+\w+\s+firing\s+/);
  }, 60_000);
});
