/**
 * Collection end to end through real HTTP: predictions and failures are buffered per isolate,
 * flushed from waitUntil into the version's MonitorShard, and read back as windows (volume,
 * errors by class, latency quantiles), drift reports and Prometheus text.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN, call, registerStem } from "../support/api";
import { repoJson } from "../support/files";
import { eventually, predictRows } from "./helpers";

let holdout: { features: Record<string, unknown>; label: number }[];

beforeAll(async () => {
  expect((await registerStem("models", "credit-risk-lr", ["champion"])).status).toBe(201);
  holdout = (await repoJson("models/credit-risk-holdout.json")).rows;
});

describe("volume, errors and latency", () => {
  it("aggregates answered and failed requests of the version across flushes", async () => {
    await predictRows("credit-risk", holdout.slice(0, 40).map((r) => r.features), "vol");
    // A batch request counts as one request and 25 rows.
    expect((await call("POST", "/v1/models/credit-risk/predict", { instances: holdout.slice(40, 65).map((r) => r.features) })).status).toBe(200);
    // Two failed requests (invalid feature values) after the version was chosen.
    for (let i = 0; i < 2; i++) expect((await call("POST", "/v1/models/credit-risk/predict", { features: { ...holdout[0].features, Age: 5 } })).status).toBe(422);

    const summary = await eventually(async () => {
      const res = await call("GET", "/v1/monitoring/models/credit-risk/summary?window=5m");
      expect(res.status, res.text).toBe(200);
      expect(res.json.versions[0]?.requests).toBe(43);
      return res.json.versions[0];
    });
    expect(summary.version).toBe("1.0.0");
    expect(summary.rows).toBe(65);
    expect(summary.errors).toMatchObject({ total: 2, client: 2, server: 0, by_code: { "422 invalid_input": 2 } });
    expect(summary.error_rate).toBe(0);
    expect(summary.client_error_rate).toBeCloseTo(2 / 43, 5);
    expect(summary.latency_ms.p50).toBeGreaterThanOrEqual(0);
    expect(summary.latency_ms.p99).toBeGreaterThanOrEqual(summary.latency_ms.p50);
    expect(summary.latency_ms.relative_error).toBe(0.01);
    expect(summary.requests_per_second).toBeGreaterThan(0);
    expect(summary.predicted_labels["0"] + summary.predicted_labels["1"]).toBe(65);

    // Every window sees the same traffic; 7d is answered from hour buckets.
    for (const window of ["1m", "1h", "24h", "7d"]) {
      const res = await call("GET", `/v1/monitoring/models/credit-risk/summary?window=${window}`);
      expect(res.json.versions[0].requests, window).toBe(43);
    }
  });

  it("rejects unknown windows and models with API errors", async () => {
    const bad = await call("GET", "/v1/monitoring/models/credit-risk/summary?window=2m");
    expect(bad.status).toBe(400);
    expect(bad.json.error.details[0].path).toBe("window");
    expect((await call("GET", "/v1/monitoring/models/no-such-model/summary")).status).toBe(404);
  });
});

describe("drift against the registration reference", () => {
  it("finds no drift on holdout traffic and flags shifted features", async () => {
    const before = (await call("GET", "/v1/monitoring/models/credit-risk/drift?window=1h")).json.versions[0]?.n ?? 0;
    // Four requests of 200 rows, each flushed before the next: a flush carries at most 250 sampled
    // values per feature, so the window then holds every holdout value and the KS tests are
    // deterministic (one 800-row flush would be a random 250 of them, and p < 0.01 by chance).
    let calm: any;
    for (let i = 0; i < 800; i += 200) {
      await call("POST", "/v1/models/credit-risk/predict", { instances: holdout.slice(i, i + 200).map((r) => r.features) });
      calm = await eventually(async () => {
        const res = await call("GET", "/v1/monitoring/models/credit-risk/drift?window=1h");
        expect(res.json.versions[0].n).toBe(before + i + 200);
        return res.json.versions[0];
      });
    }
    expect(calm.features.Expenses.ks.sample_size).toBeGreaterThanOrEqual(800);
    expect(calm.has_drift, JSON.stringify({ d: calm.drifted_features, s: calm.score, f: Object.fromEntries(Object.entries(calm.features).map(([k, v]: any) => [k, [v.psi, v.ks?.pvalue, v.chi_square?.pvalue, v.js_distance, v.reasons]])) })).toBe(false);
    expect(calm.drifted_features).toEqual([]);
    expect(calm.score.psi).toBeLessThan(0.1);
    expect(calm.features.Income.ks.pvalue).toBeGreaterThan(0.01);
    expect(calm.features.Home.chi_square.dof).toBeGreaterThan(0);

    // Shift: incomes tripled (capped at the schema max), everyone renting.
    const shifted = holdout.slice(0, 891).map((r) => ({ ...r.features, Income: Math.min(5000, Number(r.features.Income ?? 125) * 3), Home: "rent" }));
    for (let i = 0; i < shifted.length; i += 300) expect((await call("POST", "/v1/models/credit-risk/predict", { instances: shifted.slice(i, i + 300) })).status).toBe(200);
    const drift = await eventually(async () => {
      const res = await call("GET", "/v1/monitoring/models/credit-risk/drift?window=1h");
      expect(res.json.versions[0].n).toBe(before + 800 + 891);
      return res.json.versions[0];
    });
    expect(drift.has_drift).toBe(true);
    expect(drift.drifted_features).toEqual(expect.arrayContaining(["Income", "Home"]));
    expect(drift.drifted_features).not.toContain("Age");
    expect(drift.features.Income.psi).toBeGreaterThan(0.2);
    expect(drift.features.Income.ks.pvalue).toBeLessThan(1e-6);
    expect(drift.features.Home.chi_square.pvalue).toBeLessThan(1e-6);
    expect(drift.features.Home.js_distance).toBeGreaterThan(0.1);
    expect(drift.thresholds).toMatchObject({ psi: 0.2, pvalue: 0.01 });
  });
});

describe("Prometheus /metrics", () => {
  it("exports fleet-wide counters that promtool accepts", async () => {
    const res = await call("GET", "/metrics");
    expect(res.status).toBe(200);
    const requests = /edge_ml_model_requests_total\{model="credit-risk",version="1.0.0"\} (\d+)/.exec(res.text);
    expect(Number(requests?.[1])).toBeGreaterThanOrEqual(43);
    expect(res.text).toMatch(/edge_ml_model_errors_total\{model="credit-risk",version="1.0.0",class="4xx",code="invalid_input"\} 2/);
    expect(res.text).toMatch(/edge_ml_model_request_duration_seconds_bucket\{model="credit-risk",version="1.0.0",le="\+Inf"\} \d+/);
    const lint = (await (await env.TEST_PROMTOOL.fetch("http://promtool/", { method: "POST", body: res.text })).json()) as { code: number; output: string };
    expect(lint.output).toBe("");
    expect(lint.code).toBe(0);
  });

  it("exports the evaluation gauges, and the Grafana dashboard queries only metrics that exist", async () => {
    await call("PUT", "/admin/monitoring/credit-risk/sla", { p95_latency_ms: 10_000, max_psi: 0.3 }, ADMIN);
    // Labels, so live metrics exist.
    const labelled = await call("POST", "/v1/models/credit-risk/predict", { instances: holdout.slice(0, 200).map((r) => r.features) }, { "x-request-id": "prom-batch" });
    expect(labelled.status).toBe(200);
    // Labels sent at once: joined now, or kept (pending) until the prediction reaches the log.
    const id = labelled.json.request_id;
    const fb = await call("POST", "/v1/feedback", { model: "credit-risk", feedback: holdout.slice(0, 200).map((r, row) => ({ request_id: id, row, actual: r.label })) });
    expect(fb.json.joined + fb.json.pending.length).toBe(200);
    await eventually(async () => expect((await env.MONITOR_SHARD.getByName("credit-risk@1.0.0#0").labelled(0)).filter((l) => l.requestId === id)).toHaveLength(200));
    expect((await call("POST", "/admin/monitoring/credit-risk/evaluate", undefined, ADMIN)).status).toBe(200);
    const text = (await call("GET", "/metrics")).text;
    expect(text).toMatch(/edge_ml_model_sla_compliant\{model="credit-risk",version="1.0.0"\} 1/);
    expect(text).toMatch(/edge_ml_model_live_metric\{model="credit-risk",version="1.0.0",metric="auc",window="7d"\} 0\.\d+/);
    expect(text).toMatch(/edge_ml_model_feature_psi\{model="credit-risk",version="1.0.0",feature="Income",window="1h"\} /);
    const lint = (await (await env.TEST_PROMTOOL.fetch("http://promtool/", { method: "POST", body: text })).json()) as { code: number; output: string };
    expect(lint).toEqual({ code: 0, output: "" });

    const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const grafana = await repoJson("dashboards/grafana.json");
    const used = new Set<string>();
    for (const panel of grafana.panels) for (const t of panel.targets) for (const m of t.expr.matchAll(/\b(edge_ml_[a-z_]+)/g)) used.add(m[1].replace(/_(bucket|sum|count)$/, ""));
    expect(used.size).toBeGreaterThan(10);
    for (const name of used) expect(exported, name).toContain(name);
  });
});
