/**
 * The dashboard: its JSON export, and the page rendered in headless Chromium (Debian's
 * `chromium`, driven through the test-only TEST_BROWSER Node service) with a screenshot check:
 * every chart must have drawn its series, and the series colours must be on screen.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { emptyAggregate } from "../../src/monitoring/aggregate";
import { DAY, MINUTE, shardName } from "../../src/monitoring/config";
import { DDSketch } from "../../src/stats/sketch";
import { ADMIN, call, registerStem } from "../support/api";
import { repoJson } from "../support/files";
import { eventually } from "./helpers";

beforeAll(async () => {
  expect((await registerStem("models", "credit-risk-lr", ["champion"])).status).toBe(201);
  const holdout = (await repoJson("models/credit-risk-holdout.json")).rows as { features: Record<string, unknown>; label: number }[];
  const rows = holdout.filter((_, i) => i % 2 === 0);
  const res = await call("POST", "/v1/models/credit-risk/predict", { instances: rows.map((r) => r.features) }, { "x-request-id": "dash-batch" });
  expect(res.status).toBe(200);
  // Feedback takes the server's id (the caller's x-request-id is only a correlation id).
  const id: string = res.json.request_id;
  for (let i = 0; i < 3; i++) await call("POST", "/v1/models/credit-risk/predict", { features: { ...rows[0].features, Age: 1 } });
  await eventually(async () => expect((await call("GET", "/v1/monitoring/models/credit-risk/summary?window=1m")).json.versions[0]?.requests).toBe(4));
  await eventually(async () => {
    const fb = await call("POST", "/v1/feedback", { model: "credit-risk", feedback: [{ request_id: id, row: 0, actual: rows[0].label }] });
    expect(fb.json.joined).toBe(1);
  });
  await call("POST", "/v1/feedback", { model: "credit-risk", feedback: rows.slice(1).map((r, i) => ({ request_id: id, row: i + 1, actual: r.label })) });
  // History so the charts have lines, not single points: the previous minute (10 requests, 2
  // server errors, 5-8 ms) straight into the shard, and yesterday's labels.
  const earlier = emptyAggregate();
  earlier.requests = 10;
  earlier.rows = 8;
  earlier.errors["500 internal_error"] = 2;
  const sketch = new DDSketch();
  for (let i = 0; i < 10; i++) sketch.add(5 + (i % 4));
  earlier.latency = sketch.toJSON();
  const shard = env.MONITOR_SHARD.getByName(shardName("credit-risk", "1.0.0", 0));
  await shard.ingest({ model: "credit-risk", version: "1.0.0", buckets: { [String((Math.floor(Date.now() / MINUTE) - 1) * MINUTE)]: earlier } });
  const yesterday = Date.now() - DAY;
  await shard.addLabels(rows.slice(0, 200).map((r, i) => ({ requestId: `old-${i}`, row: 0, predictedAt: yesterday - DAY, labelledAt: yesterday, score: r.label ? 0.6 + (i % 5) / 20 : 0.2 + (i % 7) / 20, predicted: null, actual: String(r.label) })));
  await call("PUT", "/admin/monitoring/credit-risk/sla", { p95_latency_ms: 0.001, max_error_rate: 0.5 }, ADMIN);
  await call("POST", "/admin/monitoring/credit-risk/evaluate", undefined, ADMIN);
});

describe("dashboard JSON", () => {
  it("exports summary, per-bucket series, drift, live performance, alerts and compliance", async () => {
    const res = await call("GET", "/v1/monitoring/models/credit-risk/dashboard?window=1h");
    expect(res.status).toBe(200);
    const v = res.json.versions[0];
    expect(v.summary).toMatchObject({ requests: 14, rows: 454 });
    expect(v.series.length).toBeGreaterThanOrEqual(2);
    expect(v.series.reduce((s: number, b: any) => s + b.requests, 0)).toBe(14);
    expect(v.series.reduce((s: number, b: any) => s + b.client_errors, 0)).toBe(3);
    expect(v.series.reduce((s: number, b: any) => s + b.server_errors, 0)).toBe(2);
    expect(v.drift.has_drift).toBe(false);
    expect(v.performance.n).toBe(646);
    expect(v.performance.metrics.auc).toBeGreaterThan(0.75);
    expect(v.live_auc_daily).toHaveLength(2);
    expect(res.json.alerts.active.map((a: any) => a.rule)).toContain("latency_p95");
    expect(res.json.compliance[0].current.compliant).toBe(false);
  });
});

describe("dashboard page in headless Chromium", () => {
  it("renders every chart and the tables; the screenshot shows the series", async () => {
    const page = await call("GET", "/dashboard/credit-risk");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("content-security-policy")).toContain("default-src 'self'");
    const data = await call("GET", "/v1/monitoring/models/credit-risk/dashboard?window=1h");
    const job = {
      path: "/dashboard/credit-risk",
      responses: {
        "/dashboard/credit-risk": { status: 200, contentType: "text/html", body: page.text },
        "/v1/monitoring/models/credit-risk/dashboard?window=1h": { status: 200, contentType: "application/json", body: data.text },
      },
      charts: ["latency", "volume", "errors", "drift", "auc"],
      colors: ["#2563eb", "#f59e0b", "#dc2626"],
    };
    const res = await env.TEST_BROWSER.fetch("http://browser/", { method: "POST", body: JSON.stringify(job) });
    const shot = (await res.json()) as any;
    expect(res.status, JSON.stringify(shot)).toBe(200);
    expect(shot.errors).toEqual([]);
    expect(shot.title).toBe("edge-ml monitoring: credit-risk");
    expect(shot.width).toBe(1400);
    for (const chart of ["latency", "volume", "errors", "drift", "auc"]) expect(shot.charts[chart].drawn, chart).toBeGreaterThanOrEqual(1);
    expect(shot.charts.latency.drawn).toBe(3); // p50, p95, p99
    // Pixels of the series colours in each chart's screenshot: one version, one colour (blue) in
    // every chart; quantiles differ by dash and 4xx bars are outlined, not recoloured.
    expect(shot.charts.volume.pixels["#2563eb"]).toBeGreaterThan(500);
    expect(shot.charts.latency.pixels["#2563eb"]).toBeGreaterThan(300);
    expect(shot.charts.errors.pixels["#2563eb"]).toBeGreaterThan(300);
    for (const chart of ["latency", "volume", "errors", "drift", "auc"]) {
      expect(shot.charts[chart].pixels["#f59e0b"], chart).toBe(0);
      expect(shot.charts[chart].pixels["#dc2626"], chart).toBeLessThan(chart === "drift" ? 2000 : 1); // drift: the red threshold line only
    }
    expect(shot.charts.drift.pixels["#2563eb"]).toBeGreaterThan(10); // one bucket carries scores: a point
    expect(shot.charts.auc.pixels["#2563eb"]).toBeGreaterThan(100);
    expect(shot.text).toContain("Income");
    expect(shot.text).toContain("latency_p95");
    expect(shot.text).toContain("violating");
  }, 60_000);
});
