/**
 * What fuzzing, races and hostile callers found on the serving surface (issue 13): bodies nested
 * too deep, content types that only contain "application/json", feedback for models that do not
 * exist, models that answer NaN, colliding client request ids, rate limits keyed on unchecked
 * credentials, and pages that reveal model names without a credential.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../src/app";
import { logShardName } from "../src/monitoring/config";
import { ADMIN, call, register, registerStem } from "./support/api";
import { repoBytes, repoJson } from "./support/files";
import { eventually } from "./monitoring/helpers";

const ROW = { Seniority: 9, Home: "rent", Time: 60, Age: 30, Marital: "married", Records: "no", Job: "freelance", Expenses: 73, Income: 129, Assets: 0, Debt: 0, Amount: 800, Price: 846 };

beforeAll(async () => {
  expect((await registerStem("models", "credit-risk-lr", ["champion"])).status).toBe(201);
});

function nested(depth: number, leaf: unknown): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

describe("JSON bodies", () => {
  it("a body nested 10,000 deep is a 400 on /v2 and /v1, and no server error is counted against the version", async () => {
    const v2 = await call("POST", "/v2/models/credit-risk/infer", { inputs: [{ name: "float_input", shape: [1, 26], datatype: "FP32", data: nested(10_000, 0) }] });
    expect(v2.status, v2.text).toBe(400);
    // /v2 answers errors in the Open Inference Protocol's shape: { "error": "<message>" }.
    expect(v2.json.error).toEqual(expect.stringMatching(/deeper than 32 levels/));
    // The binary tensor data extension's JSON header is parsed with the same bound.
    const header = JSON.stringify({ inputs: [{ name: "float_input", shape: [1, 26], datatype: "FP32", data: nested(10_000, 0) }] });
    const binary = await call("POST", "/v2/models/credit-risk/infer", header, { "content-type": "application/octet-stream", "inference-header-content-length": String(new TextEncoder().encode(header).length) });
    expect(binary.status, binary.text).toBe(400);
    expect(binary.json.error).toEqual(expect.stringMatching(/JSON header .* deeper than 32 levels/));
    const v1 = await call("POST", "/v1/models/credit-risk/predict", { features: { ...ROW, Age: nested(10_000, 1) } });
    expect(v1.status, v1.text).toBe(400);
    expect(v1.json.error).toMatchObject({ code: "invalid_json", message: expect.stringMatching(/deeper than 32 levels/) });
    // A legitimate rank-2 tensor still works.
    const ok = await call("POST", "/v2/models/credit-risk/infer", { inputs: [{ name: "Age", shape: [1, 1], datatype: "INT64", data: [[30]] }, ...Object.entries(ROW).filter(([k]) => k !== "Age").map(([k, v]) => ({ name: k, shape: [1], datatype: typeof v === "string" ? "BYTES" : "FP32", data: [v] }))] });
    expect(ok.status, ok.text).toBe(200);
    const summary = await eventually(async () => {
      const res = await call("GET", "/v1/monitoring/models/credit-risk/summary?window=5m");
      expect(res.json.versions[0]?.requests).toBeGreaterThanOrEqual(1);
      return res.json.versions[0];
    });
    expect(summary.errors.server).toBe(0);
  });

  it("checks the media type, not a substring of the header", async () => {
    const res = await call("POST", "/v1/models/credit-risk/predict", { features: ROW }, { "content-type": "text/plain; note=application/json" });
    expect(res.status).toBe(400);
    expect(res.json.error.message).toMatch(/expected content-type application\/json/);
    expect((await call("POST", "/v1/models/credit-risk/predict", { features: ROW }, { "content-type": "Application/JSON; charset=utf-8" })).status).toBe(200);
  });
});

describe("feedback", () => {
  it("for a model that does not exist is a 404 and touches no prediction log", async () => {
    const res = await call("POST", "/v1/feedback", { model: "no-such-model", feedback: [{ request_id: "r1", actual: 1 }] });
    expect(res.status, res.text).toBe(404);
    expect(res.json.error.message).toMatch(/model 'no-such-model' not found/);
  });

  it("a caller's x-request-id reused by a second caller keeps both predictions apart: feedback takes the server's id", async () => {
    const rowA = { ...ROW, Age: 25 };
    const rowB = { ...ROW, Age: 60 };
    const a = await call("POST", "/v1/models/credit-risk/predict", { features: rowA }, { "x-request-id": "shared-id" });
    const b = await call("POST", "/v1/models/credit-risk/predict", { features: rowB }, { "x-request-id": "shared-id" });
    expect(a.json.correlation_id).toBe("shared-id");
    expect(b.json.correlation_id).toBe("shared-id");
    expect(a.json.request_id).not.toBe(b.json.request_id);
    for (const res of [a, b]) {
      await eventually(async () => {
        const entries = await env.PREDICTION_LOG.getByName(logShardName("credit-risk", res.json.request_id, 4)).entries(res.json.request_id);
        expect(entries).toHaveLength(1);
        expect(entries[0].score).toBeCloseTo(res.json.prediction.score, 6);
      });
    }
    const fb = await call("POST", "/v1/feedback", { model: "credit-risk", feedback: [{ request_id: a.json.request_id, actual: 1 }, { request_id: b.json.request_id, actual: 0 }] });
    expect(fb.json).toMatchObject({ joined: 2, duplicates: [], not_found: [] });
    // The client's id names no logged prediction: nothing is logged under it, and a label for it joins
    // nothing: it is not a UUIDv7, so no prediction can ever be logged under it, and it is not_found at once.
    expect(await env.PREDICTION_LOG.getByName(logShardName("credit-risk", "shared-id", 4)).entries("shared-id")).toEqual([]);
    const byClientId = await call("POST", "/v1/feedback", { model: "credit-risk", feedback: [{ request_id: "shared-id", actual: 1 }] });
    expect(byClientId.json).toMatchObject({ joined: 0, duplicates: [], not_found: [{ request_id: "shared-id", row: 0 }], pending: [] });
    // v2 says which id feedback takes, beside the caller's own id.
    const v2 = await call("POST", "/v2/models/credit-risk/infer", { id: "oip-1", inputs: Object.entries(ROW).map(([k, v]) => ({ name: k, shape: [1], datatype: typeof v === "string" ? "BYTES" : "FP32", data: [v] })) });
    expect(v2.json.id).toBe("oip-1");
    expect(v2.json.parameters.request_id).toBe(v2.headers.get("x-request-id"));
  });
});

describe("models that output NaN", () => {
  it("answer an error, counted against the version, never a 200 with a null score", async () => {
    // A linear model told to receive NaN for a missing Income: registration's probe row has Income, so it registers.
    const manifest = await repoJson("test/fixtures/onnx/lr-gemm-sigmoid.manifest.json");
    manifest.name = "nan-model";
    manifest.featureSchema.features.find((f: any) => f.name === "Income").missing = { policy: "nan" };
    expect((await register("nan-model", manifest, await repoBytes("test/fixtures/onnx/lr-gemm-sigmoid.onnx"), ["champion"])).status).toBe(201);
    const fine = await call("POST", "/v1/models/nan-model/predict", { features: { Age: 40, Income: 100, Home: "rent", Records: false } });
    expect(fine.status, fine.text).toBe(200);
    const bad = await call("POST", "/v1/models/nan-model/predict", { instances: [{ Age: 40, Income: 100, Home: "rent", Records: false }, { Age: 40, Home: "rent", Records: false }] });
    expect(bad.status, bad.text).toBe(500);
    expect(bad.json.error).toMatchObject({ code: "model_error", message: expect.stringMatching(/non-finite outputs .* for 1 of 2 row/) });
    const v2 = await call("POST", "/v2/models/nan-model/infer", { inputs: [{ name: "Age", shape: [1], datatype: "INT64", data: [40] }, { name: "Home", shape: [1], datatype: "BYTES", data: ["rent"] }, { name: "Records", shape: [1], datatype: "BOOL", data: [false] }] });
    expect(v2.status, v2.text).toBe(500);
    const summary = await eventually(async () => {
      const res = await call("GET", "/v1/monitoring/models/nan-model/summary?window=5m");
      expect(res.json.versions[0]?.requests).toBe(3);
      return res.json.versions[0];
    });
    expect(summary.errors).toMatchObject({ server: 2, by_code: { "500 model_error": 2 } });
  });
});

describe("rate limits", () => {
  const tight = { ...env, PREDICT_RATE_LIMITER: env.TEST_TIGHT_LIMITER, ADMIN_RATE_LIMITER: env.TEST_TIGHT_LIMITER, REQUIRE_API_KEY: "true" };
  const app = createApp();
  const predictAs = (ip: string, key?: string) =>
    app.request("/v1/models/credit-risk/predict", { method: "POST", headers: { "content-type": "application/json", "cf-connecting-ip": ip, ...(key ? { "x-api-key": key } : {}) }, body: JSON.stringify({ features: ROW }) }, tight);

  it("a fresh junk API key per attempt shares the client IP's budget", async () => {
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await predictAs("198.51.100.7", `junk-${i}`)).status);
    expect(statuses).toEqual([403, 403, 403, 429, 429]);
    // No key at all counts against the same IP budget; a valid key has its own.
    expect((await predictAs("198.51.100.7")).status).toBe(429);
    expect((await predictAs("198.51.100.7", "test-key-1")).status).toBe(200);
    expect((await predictAs("198.51.100.8", "junk-x")).status).toBe(403);
  });

  it("admin guesses with fresh tokens share the client IP's budget", async () => {
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await app.request("/admin/models", { headers: { authorization: `Bearer guess-${i}`, "cf-connecting-ip": "203.0.113.9" } }, tight)).status);
    expect(statuses).toEqual([403, 403, 403, 429, 429]);
    expect((await app.request("/admin/models", { headers: { ...ADMIN, "cf-connecting-ip": "203.0.113.9" } }, tight)).status).toBe(200);
  });
});

describe("REQUIRE_API_KEY = true", () => {
  const locked = { ...env, REQUIRE_API_KEY: "true" };
  const app = createApp();

  it("/ready, /metrics (no metrics token) and the dashboard page need a credential", async () => {
    for (const path of ["/ready", "/metrics", "/dashboard/credit-risk"]) {
      const anonymous = await app.request(path, {}, locked);
      expect(anonymous.status, path).toBe(401);
      expect(await anonymous.text(), path).not.toMatch(/credit-risk"/);
      expect((await app.request(path, { headers: { "x-api-key": "wrong" } }, locked)).status, path).toBe(403);
      expect((await app.request(path, { headers: { "x-api-key": "test-key-2" } }, locked)).status, path).toBe(200);
    }
    // A browser can present the key as HTTP Basic credentials; the admin token also opens /metrics.
    expect((await app.request("/dashboard/credit-risk", { headers: { authorization: `Basic ${btoa("me:test-key-1")}` } }, locked)).status).toBe(200);
    expect((await app.request("/metrics", { headers: ADMIN }, locked)).status).toBe(200);
    // Unchanged when keys are not required.
    expect((await app.request("/ready", {}, env)).status).toBe(200);
  });
});
