/**
 * /v1 prediction API and /v2 (Open Inference Protocol): answers, missing-value policies, and every
 * kind of bad input answered with a 4xx that names the field. Plus API keys, body and batch
 * limits, health, readiness and /metrics.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { predictLogistic, predictTrees } from "../scripts/lib/predict-reference";
import { createApp } from "../src/app";
import { onFailure, onPrediction } from "../src/serving/events";
import { ADMIN, call, registerStem } from "./support/api";
import { repoJson } from "./support/files";

const ROW = { Seniority: 9, Home: "rent", Time: 60, Age: 30, Marital: "married", Records: "no", Job: "freelance", Expenses: 73, Income: 129, Assets: 0, Debt: 0, Amount: 800, Price: 846 };
let lrParams: any;
let gbtParams: any;

beforeAll(async () => {
  expect((await registerStem("models", "credit-risk-lr", ["champion"])).status).toBe(201);
  expect((await registerStem("models", "credit-risk-gbt", ["challenger"])).status).toBe(201);
  lrParams = await repoJson("models/credit-risk-lr.params.json");
  gbtParams = await repoJson("models/credit-risk-gbt.params.json");
});

const predict = (body: unknown, headers?: Record<string, string>) => call("POST", "/v1/models/credit-risk/predict", body, headers);

describe("POST /v1/models/:name/predict", () => {
  it("answers one row with prediction, probabilities, model, version, alias and request id", async () => {
    const res = await predict({ features: ROW }, { "x-request-id": "client-req-42" });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ correlation_id: "client-req-42", model: "credit-risk", version: "1.0.0", alias: "champion" });
    expect(res.json.request_id).not.toBe("client-req-42"); // the server's id: the one feedback takes
    const p = res.json.prediction;
    expect(p.score).toBeCloseTo(predictLogistic(lrParams, ROW), 5);
    expect(p.probabilities["1"]).toBe(p.score);
    expect(p.probabilities["0"] + p.probabilities["1"]).toBeCloseTo(1, 6);
    expect(p.label).toBe(p.score > 0.5 ? 1 : 0);
    expect(res.headers.get("x-request-id")).toBe(res.json.request_id);
    expect(res.headers.get("x-correlation-id")).toBe("client-req-42");
    expect(res.headers.get("x-model-version")).toBe("1.0.0");
    expect(res.headers.get("server-timing")).toMatch(/^inference;dur=\d+\.\d{3}$/);
  });

  it("gives requests without an id a time-ordered UUIDv7 (the prediction log indexes by id)", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await predict({ features: ROW })).json.request_id);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(5);
  });

  it("answers a batch in order, by version or alias", async () => {
    const rows = (await repoJson("models/credit-risk-holdout.json")).rows.slice(0, 50).map((r: any) => r.features);
    const byAlias = await predict({ instances: rows, alias: "challenger" });
    expect(byAlias.status).toBe(200);
    expect(byAlias.json.version).toBe("1.1.0");
    byAlias.json.predictions.forEach((p: any, i: number) => expect(Math.abs(p.score - predictTrees(gbtParams, rows[i]))).toBeLessThan(1e-5));
    const byVersion = await predict({ instances: rows, version: "1.1.0" });
    expect(byVersion.json.predictions).toEqual(byAlias.json.predictions);
    expect(byVersion.json.alias).toBeUndefined();
  });

  it("applies missing-value policies: impute for the LR, NaN for the trees, never zero", async () => {
    const { Income, Home, ...partial } = ROW;
    const lr = await predict({ features: { ...partial, Home: null } });
    expect(lr.status).toBe(200);
    expect(lr.json.prediction.score).toBeCloseTo(predictLogistic(lrParams, partial), 5);
    expect(lr.json.prediction.score).toBeCloseTo((await predict({ features: { ...partial, Income: 125, Home: "owner" } })).json.prediction.score, 6);
    expect(lr.json.prediction.score).not.toBeCloseTo((await predict({ features: { ...partial, Income: 0, Home: "owner" } })).json.prediction.score, 4);
    const gbt = await predict({ features: partial, version: "1.1.0" });
    expect(gbt.status).toBe(200);
    expect(gbt.json.prediction.score).toBeCloseTo(predictTrees(gbtParams, partial), 5);
  });

  const bad: [string, unknown, number, string, RegExp][] = [
    ["wrong type", { features: { ...ROW, Age: "thirty" } }, 422, "features.Age", /expected a finite number, got string/],
    ["below range", { features: { ...ROW, Seniority: -1 } }, 422, "features.Seniority", /must be >= 0/],
    ["above range", { features: { ...ROW, Age: 250 } }, 422, "features.Age", /must be <= /],
    ["not an integer", { features: { ...ROW, Age: 30.5 } }, 422, "features.Age", /integer/],
    ["unknown category", { features: { ...ROW, Home: "castle" } }, 422, "features.Home", /unknown category "castle"/],
    ["missing required field", { features: { ...ROW, Age: undefined } }, 422, "features.Age", /required/],
    ["null for a required field", { features: { ...ROW, Age: null } }, 422, "features.Age", /null/],
    ["unknown field", { features: { ...ROW, Favourite: 1 } }, 422, "features.Favourite", /unknown feature/],
    ["row in a batch", { instances: [ROW, ROW, { ...ROW, Debt: "lots" }] }, 422, "instances[2].Debt", /expected a finite number, got string/],
    ["row not an object", { instances: [ROW, 5] }, 422, "instances[1]", /object/],
    ["both features and instances", { features: ROW, instances: [ROW] }, 422, "(root)", /exactly one/],
    ["neither", { alias: "champion" }, 422, "(root)", /exactly one/],
    ["empty instances", { instances: [] }, 422, "instances", /must not be empty/],
    ["unknown body field", { features: ROW, extra: true }, 422, "(root)", /extra/],
    ["bad version", { features: ROW, version: "latest" }, 422, "version", /semantic/],
  ];
  it.each(bad)("%s -> 4xx naming the field", async (_label, body, status, path, message) => {
    const res = await predict(body);
    expect(res.status, res.text).toBe(status);
    expect(res.json.error.code).toBe("invalid_input");
    const issue = res.json.error.details.find((d: any) => d.path === path);
    expect(issue, JSON.stringify(res.json.error.details)).toBeDefined();
    expect(issue.message).toMatch(message);
    expect(res.json.request_id).toBeTypeOf("string");
  });

  it("NaN and Infinity cannot be smuggled in (not JSON; as strings they are wrong types)", async () => {
    let res = await predict('{"features": {"Age": NaN}}');
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe("invalid_json");
    res = await predict({ features: { ...ROW, Income: "Infinity" } });
    expect(res.status).toBe(422);
    expect(res.json.error.details[0].path).toBe("features.Income");
  });

  it("malformed JSON, wrong content type, unknown model/alias/version", async () => {
    expect((await predict("{")).json.error.code).toBe("invalid_json");
    expect((await predict("a=1", { "content-type": "application/x-www-form-urlencoded" })).status).toBe(400);
    let res = await call("POST", "/v1/models/nope/predict", { features: ROW });
    expect(res.status).toBe(404);
    expect(res.json.error.message).toMatch(/champion of model 'nope'/);
    res = await predict({ features: ROW, alias: "staging" });
    expect(res.status).toBe(404);
    expect(res.json.error.message).toMatch(/alias 'staging'/);
    res = await predict({ features: ROW, version: "9.9.9" });
    expect(res.status).toBe(404);
    res = await call("POST", "/v1/models/Bad_Name/predict", { features: ROW });
    expect(res.status).toBe(400);
  });

  it("too many rows -> 413, too large a body -> 413", async () => {
    const app = createApp();
    const small = { ...env, MAX_BATCH_ROWS: "10", MAX_BODY_BYTES: "2000" };
    let res = await app.request("/v1/models/credit-risk/predict", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ instances: Array(11).fill(ROW) }) }, small);
    expect(res.status).toBe(413);
    expect(((await res.json()) as any).error).toMatchObject({ code: "too_many_rows", message: "instances has 11 rows; the limit is 10" });
    res = await app.request("/v1/models/credit-risk/predict", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ instances: Array(10).fill(ROW), pad: "x".repeat(3000) }) }, small);
    expect(res.status).toBe(413);
    expect(((await res.json()) as any).error.code).toBe("body_too_large");
  });
});

describe("prediction events", () => {
  it("reach every listener once, even when another listener throws or rejects, and never change the answer", async () => {
    const seen: string[] = [];
    const failed: string[] = [];
    onPrediction(() => {
      throw new Error("listener throws synchronously");
    });
    onPrediction(async () => {
      throw new Error("listener rejects");
    });
    onPrediction(async (_env, event) => void seen.push(event.requestId));
    onFailure(() => Promise.reject(new Error("failure listener rejects")));
    onFailure(async (_env, event) => void failed.push(event.requestId));
    const ok = await predict({ features: ROW });
    const bad = await predict({ version: "1.0.0", features: { ...ROW, Age: "thirty" } });
    expect([ok.status, bad.status]).toEqual([200, 422]);
    const badId = bad.headers.get("x-request-id");
    for (let i = 0; i < 50 && !(seen.includes(ok.json.request_id) && failed.includes(badId!)); i++) await new Promise((r) => setTimeout(r, 20));
    expect(seen.filter((id) => id === ok.json.request_id)).toHaveLength(1);
    expect(failed.filter((id) => id === badId)).toHaveLength(1);
    expect(seen).not.toContain(badId);
  });
});

describe("API keys", () => {
  const keyed = () => ({ ...env, REQUIRE_API_KEY: "true" });
  const post = (headers: Record<string, string>) =>
    createApp().request("/v1/models/credit-risk/predict", { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ features: ROW }) }, keyed());
  it("are required when REQUIRE_API_KEY is true", async () => {
    const missing = await post({});
    expect(missing.status).toBe(401);
    expect(((await missing.json()) as any).error.code).toBe("unauthorized");
    const wrong = await post({ "x-api-key": "test-key-3" });
    expect(wrong.status).toBe(403);
    expect((await post({ "x-api-key": "test-key-2" })).status).toBe(200);
    expect((await post({ authorization: "Bearer test-key-1" })).status).toBe(200);
    const v2 = await createApp().request("/v2/models/credit-risk", {}, keyed());
    expect(v2.status).toBe(401);
    expect((await createApp().request("/v2/health/live", {}, keyed())).status).toBe(200);
  });
});

describe("Open Inference Protocol v2", () => {
  it("health, server and model metadata, readiness", async () => {
    expect((await call("GET", "/v2/health/live")).json).toEqual({ live: true });
    expect((await call("GET", "/v2/health/ready")).json).toEqual({ ready: true });
    expect((await call("GET", "/v2")).json.name).toBe("edge-ml-runtime");
    const meta = await call("GET", "/v2/models/credit-risk");
    expect(meta.json).toMatchObject({ name: "credit-risk", versions: ["1.1.0", "1.0.0"], platform: "onnx_onnxv1", inputs: [{ name: "float_input", datatype: "FP32", shape: [-1, 26] }], parameters: { version: "1.0.0" } });
    expect((await call("GET", "/v2/models/credit-risk/versions/1.1.0")).json.parameters.version).toBe("1.1.0");
    expect((await call("GET", "/v2/models/credit-risk/ready")).json).toMatchObject({ ready: true, version: "1.0.0" });
    expect((await call("GET", "/v2/models/credit-risk/versions/1.1.0/ready")).json).toMatchObject({ ready: true, version: "1.1.0" });
    expect((await call("GET", "/v2/models/credit-risk/versions/5.0.0/ready")).status).toBe(404);
  });

  it("infers from the model's raw dense tensor, like existing v2 clients send", async () => {
    const manifest = await repoJson("models/credit-risk-lr.manifest.json");
    const columns = manifest.featureSchema.input.columns as { feature: string; oneHot?: string }[];
    const vector = columns.map((c) => (c.oneHot ? ((ROW as any)[c.feature] === c.oneHot ? 1 : 0) : (ROW as any)[c.feature]));
    const res = await call("POST", "/v2/models/credit-risk/versions/1.0.0/infer", { inputs: [{ name: "float_input", shape: [2, 26], datatype: "FP32", data: [vector, vector] }], outputs: [{ name: "probabilities" }] });
    expect(res.status, res.text).toBe(200);
    expect(res.json.outputs).toHaveLength(1);
    expect(res.json.outputs[0]).toMatchObject({ name: "probabilities", datatype: "FP32", shape: [2, 2] });
    expect(res.json.outputs[0].data[1]).toBeCloseTo(predictLogistic(lrParams, ROW), 5);
    expect(res.json.model_version).toBe("1.0.0");
  });

  const v2bad: [string, unknown, RegExp][] = [
    ["wrong width", { inputs: [{ name: "float_input", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] }] }, /shape \[N, 26\]/],
    ["data does not match shape", { inputs: [{ name: "float_input", shape: [2, 26], datatype: "FP32", data: Array(26).fill(0) }] }, /needs 52/],
    ["one-hot column not 0/1", { inputs: [{ name: "float_input", shape: [1, 26], datatype: "FP32", data: Array(26).fill(5) }] }, /0 or 1|must be/],
    ["unknown input", { inputs: [{ name: "pixels", shape: [1], datatype: "FP32", data: [1] }] }, /unknown input\(s\): pixels/],
    ["unknown output", { inputs: [{ name: "Age", shape: [1], datatype: "INT64", data: [30] }], outputs: [{ name: "logits" }] }, /unknown output\(s\): logits/],
    ["feature datatype mismatch", { inputs: [{ name: "Home", shape: [1], datatype: "FP32", data: [1] }] }, /FP32 cannot carry categorical/],
    ["missing required feature", { inputs: [{ name: "Age", shape: [1], datatype: "INT64", data: [30] }] }, /row\[0\]\.Seniority: required/],
    ["bad datatype", { inputs: [{ name: "Age", shape: [1], datatype: "FLOAT", data: [30] }] }, /inputs\[0\]\.datatype/],
  ];
  it.each(v2bad)("%s -> 422 naming the problem", async (_label, body, message) => {
    const res = await call("POST", "/v2/models/credit-risk/infer", body);
    expect(res.status, res.text).toBe(422);
    expect(JSON.stringify(res.json.error)).toMatch(message);
  });
});

describe("health, readiness and metrics", () => {
  it("/health and /ready", async () => {
    expect((await call("GET", "/health")).json).toEqual({ status: "ok" });
    const ready = await call("GET", "/ready");
    expect(ready.status).toBe(200);
    expect(ready.json).toEqual({ ready: true, registry: "ok", models: { "credit-risk": { version: "1.0.0", status: "ok" } } });
  });

  it("/ready is 503 when a champion cannot load", async () => {
    const reg = await registerStem("test/fixtures/onnx", "lr-gemm-sigmoid", ["champion"]);
    expect(reg.status).toBe(201);
    await env.ARTIFACTS.delete(reg.json.artifact.key); // never loaded by this isolate: loading now fails
    const ready = await call("GET", "/ready");
    expect(ready.status).toBe(503);
    expect(ready.json.ready).toBe(false);
    expect(ready.json.models["fixture-lr-gemm-sigmoid"]).toMatchObject({ status: "error", error: expect.stringMatching(/artifact .* is missing/) });
    expect(ready.json.models["credit-risk"].status).toBe("ok");
    expect((await call("GET", "/v2/health/ready")).status).toBe(503);
    const pred = await call("POST", "/v1/models/fixture-lr-gemm-sigmoid/predict", { features: {} });
    expect(pred.status).toBe(422); // input validation happens before loading
    await call("DELETE", "/admin/models/fixture-lr-gemm-sigmoid/aliases/champion", undefined, ADMIN);
    expect((await call("GET", "/ready")).status).toBe(200);
  });

  it("/metrics is Prometheus text with request counters and latency histograms", async () => {
    await predict({ features: ROW });
    const res = await call("GET", "/metrics");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/plain; version=0\.0\.4/);
    expect(res.text).toMatch(/^# TYPE edge_ml_http_requests_total counter$/m);
    expect(res.text).toMatch(/^edge_ml_http_requests_total\{route="\/v1\/models\/:name\/predict",code="200"\} \d+$/m);
    expect(res.text).toMatch(/^edge_ml_http_requests_total\{route="\/v1\/models\/:name\/predict",code="422"\} \d+$/m);
    expect(res.text).toMatch(/^edge_ml_http_request_duration_seconds_bucket\{route="\/v1\/models\/:name\/predict",le="\+Inf"\} \d+$/m);
    expect(res.text).toMatch(/^edge_ml_predicted_rows_total\{model="credit-risk",version="1.0.0"\} \d+$/m);
    expect(res.text).toMatch(/^edge_ml_sessions_created_total \d+$/m);
  });

  it("/metrics requires the METRICS_TOKEN bearer when that secret is set", async () => {
    const app = createApp();
    const secured = { ...env, METRICS_TOKEN: "scrape-secret" };
    expect((await app.request("/metrics", {}, secured)).status).toBe(401);
    expect((await app.request("/metrics", { headers: { authorization: "Bearer wrong" } }, secured)).status).toBe(403);
    expect((await app.request("/metrics", { headers: { authorization: "Bearer scrape-secret" } }, secured)).status).toBe(200);
  });

  it("unknown routes are JSON 404s", async () => {
    const res = await call("GET", "/nowhere");
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe("not_found");
  });
});

describe("rate limits", () => {
  it("answer 429 with retry-after once a client's budget is spent, per API key", async () => {
    const app = createApp();
    const limited = { ...env, PREDICT_RATE_LIMITER: env.TEST_TIGHT_LIMITER, REQUIRE_API_KEY: "true" };
    const post = (key: string) =>
      app.request("/v1/models/credit-risk/predict", { method: "POST", headers: { "content-type": "application/json", "x-api-key": key, "cf-connecting-ip": "192.0.2.1" }, body: JSON.stringify({ features: ROW }) }, limited);
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await post("test-key-1")).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const res = await post("test-key-1");
    expect(res.headers.get("retry-after")).toBe("60");
    expect(((await res.json()) as any).error.code).toBe("rate_limited");
    expect((await post("test-key-2")).status).toBe(200);
  });
});
