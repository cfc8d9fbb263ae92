/**
 * The OpenAPI document (/openapi.json): it describes every route the app serves and nothing else,
 * real responses of the running worker validate against it (JSON Schema 2020-12 through
 * @cfworker/json-schema, which runs in workerd), the requests we send validate against its request
 * schemas, and the published manifest JSON Schema accepts every manifest in the repository and
 * rejects broken ones.
 */
import { SELF } from "cloudflare:test";
import { Validator } from "@cfworker/json-schema";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../src/app";
import { openApiPath } from "../src/openapi";
import { ADMIN, call, registerStem } from "./support/api";
import { repoJson } from "./support/files";
import { configBody } from "./retraining/helpers";

let doc: any;
const J = { "content-type": "application/json" };
const ROW = { Seniority: 9, Home: "rent", Time: 60, Age: 30, Marital: "married", Records: "no", Job: "freelance", Expenses: 73, Income: 129, Assets: 0, Debt: 0, Amount: 800, Price: 846 };

function operation(method: string, template: string) {
  const op = doc.paths[openApiPath(template)]?.[method];
  if (!op) throw new Error(`${method.toUpperCase()} ${template} is not in the document`);
  return op;
}

function check(schema: unknown, value: unknown) {
  const result = new Validator(schema as object, "2020-12", false).validate(value);
  return result.valid ? [] : result.errors.map((e) => `${e.instanceLocation} ${e.keyword}: ${e.error}`);
}

/** Calls the worker and checks the answer against the document's schema for that route and status. */
async function conforms(method: string, template: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const op = operation(method, template);
  if (body !== undefined && typeof body !== "string") {
    const requestSchema = op.requestBody?.content?.["application/json"]?.schema;
    expect(requestSchema, `${template}: request body documented`).toBeDefined();
    expect(check(requestSchema, body), `${method} ${template} request`).toEqual([]);
  }
  const res = await call(method.toUpperCase(), path, body, headers);
  const documented = op.responses[String(res.status)];
  expect(documented, `${method} ${template} answered ${res.status}, which the document does not list: ${res.text.slice(0, 300)}`).toBeDefined();
  const schema = documented.content?.["application/json"]?.schema;
  if (schema) expect(check(schema, res.json), `${method} ${template} ${res.status}: ${res.text.slice(0, 300)}`).toEqual([]);
  return res;
}

beforeAll(async () => {
  const res = await SELF.fetch("http://worker/openapi.json");
  expect(res.status).toBe(200);
  doc = await res.json();
  for (const stem of ["credit-risk-lr", "credit-risk-gbt"]) {
    const r = await registerStem("models", stem, stem.endsWith("lr") ? ["champion"] : ["challenger"]);
    expect(r.status, JSON.stringify(r.json)).toBe(201);
  }
});

describe("the OpenAPI document", () => {
  it("is OpenAPI 3.1 with unique operation ids, security and an error schema on every operation", () => {
    expect(doc.openapi).toBe("3.1.0");
    const ids = new Set<string>();
    for (const [path, ops] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(ops)) {
        expect(ids.has(op.operationId), `${method} ${path}: duplicate operationId ${op.operationId}`).toBe(false);
        ids.add(op.operationId);
        expect(Array.isArray(op.security), `${method} ${path}: security`).toBe(true);
        expect(op.responses["500"]?.content?.["application/json"]?.schema, `${method} ${path}: 500 error body`).toBeDefined();
        for (const p of (path.match(/\{(\w+)\}/g) ?? []).map((s) => s.slice(1, -1))) {
          expect(op.parameters?.some((x: any) => x.in === "path" && x.name === p), `${method} ${path}: path parameter ${p}`).toBe(true);
        }
      }
    }
  });

  it("describes every route the app serves, and no route it does not serve", () => {
    const served = new Set(
      createApp()
        .routes.filter((r) => r.method !== "ALL")
        .map((r) => `${r.method.toLowerCase()} ${openApiPath(r.path)}`),
    );
    const documented = new Set(Object.entries<any>(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`)));
    const missing = [...served].filter((r) => !documented.has(r));
    const stale = [...documented].filter((r) => !served.has(r));
    expect(missing, "routes without an entry: add them to src/openapi/<capability>.ts").toEqual([]);
    expect(stale, "entries for routes the app does not serve").toEqual([]);
  });

  it("real responses validate against it (success and error answers)", async () => {
    await conforms("get", "/health", "/health");
    await conforms("get", "/ready", "/ready");
    await conforms("post", "/v1/models/:name/predict", "/v1/models/credit-risk/predict", { features: ROW });
    await conforms("post", "/v1/models/:name/predict", "/v1/models/credit-risk/predict", { alias: "challenger", instances: [ROW, ROW] });
    const bad = await conforms("post", "/v1/models/:name/predict", "/v1/models/credit-risk/predict", { features: { ...ROW, Age: "x" } });
    expect(bad.status).toBe(422);
    const unknown = await conforms("post", "/v1/models/:name/predict", "/v1/models/no-such-model/predict", { features: ROW });
    expect(unknown.status).toBe(404);
    await conforms("get", "/v2", "/v2");
    await conforms("get", "/v2/health/live", "/v2/health/live");
    await conforms("get", "/v2/models/:name", "/v2/models/credit-risk");
    await conforms("get", "/v2/models/:name/versions/:version/ready", "/v2/models/credit-risk/versions/1.1.0/ready");
    await conforms("post", "/v2/models/:name/infer", "/v2/models/credit-risk/infer", {
      inputs: Object.entries(ROW).map(([name, v]) => ({ name, shape: [1], datatype: typeof v === "string" ? "BYTES" : "FP32", data: [v] })),
    });
    const noAuth = await conforms("get", "/admin/models", "/admin/models");
    expect(noAuth.status).toBe(401);
    await conforms("get", "/admin/models", "/admin/models", undefined, ADMIN);
    await conforms("get", "/admin/models/:name", "/admin/models/credit-risk", undefined, ADMIN);
    await conforms("get", "/admin/models/:name/versions", "/admin/models/credit-risk/versions", undefined, ADMIN);
    await conforms("get", "/admin/models/:name/versions/:version", "/admin/models/credit-risk/versions/1.1.0", undefined, ADMIN);
    await conforms("get", "/admin/models/:name/audit", "/admin/models/credit-risk/audit?limit=5", undefined, ADMIN);
    await conforms("put", "/admin/models/:name/aliases/:alias", "/admin/models/credit-risk/aliases/staging", { version: "1.1.0", reason: "openapi test" }, ADMIN);
    const create = await conforms("post", "/admin/deployments", "/admin/deployments", { model: "credit-risk", strategy: "shadow", version: "1.1.0", fraction: 10 }, ADMIN);
    expect(create.status).toBe(201);
    const id = create.json.deployment.id;
    await conforms("get", "/admin/deployments", "/admin/deployments?model=credit-risk", undefined, ADMIN);
    await conforms("get", "/admin/deployments/:id", `/admin/deployments/${id}`, undefined, ADMIN);
    await conforms("get", "/admin/deployments/:id/history", `/admin/deployments/${id}/history`, undefined, ADMIN);
    await conforms("post", "/admin/deployments/:id/abort", `/admin/deployments/${id}/abort`, { reason: "openapi test" }, ADMIN);
    await conforms("get", "/v1/monitoring/models/:model/summary", "/v1/monitoring/models/credit-risk/summary?window=5m");
    await conforms("get", "/v1/monitoring/models/:model/drift", "/v1/monitoring/models/credit-risk/drift?window=1h");
    await conforms("get", "/v1/monitoring/models/:model/sla", "/v1/monitoring/models/credit-risk/sla");
    await conforms("get", "/admin/monitoring/:model/sla", "/admin/monitoring/credit-risk/sla", undefined, ADMIN);
    await conforms("post", "/v1/feedback", "/v1/feedback", { model: "credit-risk", feedback: [{ request_id: "nope", row: 0, actual: 1 }] });
  });

  it("real responses of the feature store, batch scoring and retraining validate against it", async () => {
    // Features: a realtime count, an event for it, a lookup (200) and a lookup of an unknown feature (404).
    const def = await conforms("post", "/admin/features/definitions", "/admin/features/definitions", { group: "oa_customers", name: "txn_count_1h", kind: "realtime", dtype: "integer", aggregate: { event: "txn", fn: "count", window: "1h" } }, ADMIN);
    expect(def.status).toBe(201);
    await conforms("get", "/admin/features/definitions", "/admin/features/definitions?group=oa_customers", undefined, ADMIN);
    await conforms("get", "/admin/features/definitions/:group/:name", "/admin/features/definitions/oa_customers/txn_count_1h", undefined, ADMIN);
    const ev = await conforms("post", "/v1/events", "/v1/events", { group: "oa_customers", entity_id: "c1", event: "txn", event_id: "oa-e1", event_time: Date.now() - 60_000, fields: {} });
    expect(ev.status).toBe(200);
    const lookup = await conforms("post", "/v1/features/get", "/v1/features/get", { group: "oa_customers", entity_id: "c1", features: ["txn_count_1h"] });
    expect(lookup.status).toBe(200);
    expect(lookup.json.values).toEqual({ txn_count_1h: 1 });
    const many = await conforms("post", "/v1/features/batch", "/v1/features/batch", { group: "oa_customers", entity_ids: ["c1", "c2"], features: ["txn_count_1h"] });
    expect(many.json.results.map((r: any) => r.values.txn_count_1h)).toEqual([1, 0]);
    expect((await conforms("post", "/v1/features/get", "/v1/features/get", { group: "oa_customers", entity_id: "c1", features: ["nope"] })).status).toBe(404);
    await conforms("get", "/admin/features/metrics", "/admin/features/metrics", undefined, ADMIN);

    // Batch: an upload (file body, options in the query), then the job's status and the job list.
    const csv = ["Seniority,Home,Time,Age,Marital,Records,Job,Expenses,Income,Assets,Debt,Amount,Price", "9,rent,60,30,married,no,freelance,73,129,0,0,800,846"].join("\n") + "\n";
    const created = await conforms("post", "/v1/batch", "/v1/batch?model=credit-risk&output_key=out/openapi.csv", csv, { ...ADMIN, "content-type": "text/csv" });
    expect(created.status, created.text).toBe(202);
    const status = await conforms("get", "/v1/batch/:id", `/v1/batch/${created.json.job_id}`, undefined, ADMIN);
    expect(status.status).toBe(200);
    await conforms("get", "/v1/batch", "/v1/batch?limit=5", undefined, ADMIN);
    expect((await conforms("get", "/v1/batch/:id", "/v1/batch/not-a-job", undefined, ADMIN)).status).toBeGreaterThanOrEqual(400);

    // Retraining: configuration, a trigger, the trigger list and the (empty) job history.
    expect((await conforms("put", "/admin/retraining/:model/config", "/admin/retraining/credit-risk/config", configBody(), ADMIN)).status).toBe(200);
    await conforms("get", "/admin/retraining/:model/config", "/admin/retraining/credit-risk/config", undefined, ADMIN);
    const trigger = await conforms("post", "/admin/retraining/:model/triggers", "/admin/retraining/credit-risk/triggers", { type: "drift", psi: 0.25, on: "score", window: "24h" }, ADMIN);
    expect(trigger.status).toBe(201);
    const triggers = await conforms("get", "/admin/retraining/:model/triggers", "/admin/retraining/credit-risk/triggers", undefined, ADMIN);
    expect(triggers.json.triggers.map((t: any) => t.id)).toContain(trigger.json.id);
    await conforms("get", "/admin/retraining/:model/jobs", "/admin/retraining/credit-risk/jobs?limit=5", undefined, ADMIN);
    expect((await conforms("get", "/admin/retraining/jobs/:id", "/admin/retraining/jobs/no-such-job", undefined, ADMIN)).status).toBe(404);
    await conforms("delete", "/admin/retraining/:model/triggers/:id", `/admin/retraining/credit-risk/triggers/${trigger.json.id}`, undefined, ADMIN);
  });

  it("the checks have teeth: a response missing required fields or with a wrong type fails its schema", () => {
    const predict = operation("post", "/v1/models/:name/predict").responses["200"].content["application/json"].schema;
    expect(check(predict, { model: "credit-risk", version: "1.0.0", prediction: { score: 0.3 } })).not.toEqual([]); // no request_id
    expect(check(predict, { request_id: "r", model: "credit-risk", version: "1.0.0", prediction: { score: "high" } })).not.toEqual([]);
    const error = operation("post", "/v1/models/:name/predict").responses["422"].content["application/json"].schema;
    expect(check(error, { error: { code: "oops", message: "x" } })).not.toEqual([]);
  });
});

describe("the manifest JSON Schema (/schemas/manifest.json)", () => {
  it("accepts every manifest in the repository and names what is wrong in a broken one", async () => {
    const res = await SELF.fetch("http://worker/schemas/manifest.json");
    expect(res.status).toBe(200);
    const schema = await res.json();
    const stems = ["models/credit-risk-lr", "models/credit-risk-gbt", ...["lr-gemm-sigmoid", "lr-matmul-softmax", "linear-classifier", "tree-classifier-zipmap-int", "tree-classifier-zipmap-str", "tree-regressor", "columnwise-pipeline"].map((s) => `test/fixtures/onnx/${s}`)];
    for (const stem of stems) expect(check(schema, await repoJson(`${stem}.manifest.json`)), stem).toEqual([]);
    const good = await repoJson("models/credit-risk-lr.manifest.json");
    const { task: _task, ...noTask } = good;
    expect(check(schema, noTask).join("\n")).toMatch(/task/);
    expect(check(schema, { ...good, version: "1.0" })).not.toEqual([]);
    expect(check(schema, { ...good, featureSchema: { ...good.featureSchema, features: [{ name: "Age", type: "integer", missing: { policy: "guess" } }] } })).not.toEqual([]);
  });

  it("/docs is a page rendered from /openapi.json", async () => {
    const res = await SELF.fetch("http://worker/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/text\/html/);
    expect(await res.text()).toContain('fetch("/openapi.json")');
  });
});
