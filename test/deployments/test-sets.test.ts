/**
 * Test-set labels through the real worker: PUT /admin/deployments/test-sets/:model and
 * POST /admin/deployments/:id/validate refuse labels the model cannot predict (not one of its
 * classes; for a regressor, not a number) with a 422 naming rows[i].label, instead of letting AUC read
 * them as the negative class; an unknown model is a 404; nothing is stored or recorded on refusal.
 * A stored set whose labels do not fit the versions validated is a 409.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN, call, registerStem } from "../support/api";
import { admin, holdoutSet, setupModel } from "./helpers";

const M = "dep-labels";
const R = "dep-labels-reg";
const put = (model: string, body: unknown) => call("PUT", `/admin/deployments/test-sets/${model}`, body, ADMIN);
const stored = async (model: string) => (await env.ARTIFACTS.get(`test-sets/${model}.json`))?.text() ?? null;

let rows: { features: Record<string, unknown>; label: number }[];

beforeAll(async () => {
  await setupModel(M);
  expect((await registerStem("test/fixtures/onnx", "tree-regressor", ["champion"], { name: R })).status).toBe(201);
  rows = (await holdoutSet()).rows.slice(0, 40);
});

describe("PUT /admin/deployments/test-sets/:model", () => {
  it("answers 404 for a model that does not exist, storing nothing", async () => {
    const res = await put("no-such-model", { rows });
    expect(res.status, res.text).toBe(404);
    expect(res.json.error.message).toBe("model 'no-such-model' not found");
    expect(await stored("no-such-model")).toBeNull();
  });

  it("refuses labels that are not the classifier's classes with 422 naming rows[i].label; the stored set is unchanged", async () => {
    expect((await put(M, { rows })).status).toBe(200);
    const before = await stored(M);
    for (const bad of ["banana", 7, 2, true, -1]) {
      const set = rows.map((r, i) => (i === 5 ? { ...r, label: bad } : r));
      const res = await put(M, { rows: set });
      expect(res.status, `${JSON.stringify(bad)}: ${res.text}`).toBe(422);
      expect(res.json.error.details).toEqual([{ path: "rows[5].label", message: `expected one of the model's classes 0, 1; got ${JSON.stringify(bad)}` }]);
      expect(res.json.error.message).toContain("rows[5].label");
    }
    expect(await stored(M)).toBe(before);
  });

  it("accepts the classes as numbers or text, and unlabelled rows", async () => {
    const set = rows.map((r, i) => (i === 0 ? { features: r.features } : i % 2 ? { ...r, label: String(r.label) } : r));
    const res = await put(M, { rows: set });
    expect(res.status, res.text).toBe(200);
    expect(res.json).toEqual({ model: M, rows: 40, labelled: 39 });
  });

  it("wants a finite number for a regressor", async () => {
    const features = { Age: 30, Income: 120, Seniority: 3 };
    const res = await put(R, { rows: [{ features, label: 1.5 }, { features, label: "high" }] });
    expect(res.status, res.text).toBe(422);
    expect(res.json.error.details).toEqual([{ path: "rows[1].label", message: 'expected a finite number (regression model); got "high"' }]);
    expect(await stored(R)).toBeNull();
    expect((await put(R, { rows: [{ features, label: 1.5 }, { features, label: 0 }] })).status).toBe(200);
  });
});

describe("POST /admin/deployments/:id/validate", () => {
  let id: string;
  beforeAll(async () => {
    expect((await put(M, { rows })).status).toBe(200);
    const created = await admin("POST", "/", { strategy: "canary", model: M, version: "1.1.0" });
    expect(created.status, created.text).toBe(201);
    id = created.json.deployment.id;
  });

  const snapshot = async () => ({ deployment: (await admin("GET", `/${id}`)).json.deployment, events: (await admin("GET", `/${id}/history`)).json.events });

  it("refuses an inline test set with a label the versions cannot predict: 422 naming test_set.rows[i].label, nothing recorded", async () => {
    const before = await snapshot();
    const set = rows.map((r, i) => (i === 3 ? { ...r, label: 2 } : r));
    const res = await admin("POST", `/${id}/validate`, { test_set: { rows: set } });
    expect(res.status, res.text).toBe(422);
    expect(res.json.error.details).toEqual([{ path: "test_set.rows[3].label", message: "expected one of the model's classes 0, 1; got 2" }]);
    expect(res.json.error.message).toMatch(/^test_set: 1 label\(s\) that dep-labels@1\.(1|0)\.0 cannot predict; first: test_set\.rows\[3\]\.label/);
    expect(await snapshot()).toEqual(before);
  });

  it("refuses a stored set whose labels do not fit (stored before this check) with 409, nothing recorded", async () => {
    const before = await snapshot();
    const good = await stored(M);
    await env.ARTIFACTS.put(`test-sets/${M}.json`, JSON.stringify({ rows: rows.map((r, i) => (i === 7 ? { ...r, label: "banana" } : r)) }));
    const res = await admin("POST", `/${id}/validate`, {});
    expect(res.status, res.text).toBe(409);
    expect(res.json.error.details[0]).toEqual({ path: "rows[7].label", message: 'expected one of the model\'s classes 0, 1; got "banana"' });
    expect(res.json.error.message).toContain(`PUT /admin/deployments/test-sets/${M}`);
    expect(await snapshot()).toEqual(before);
    await env.ARTIFACTS.put(`test-sets/${M}.json`, good!);
  });

  it("validates with good labels", async () => {
    const res = await admin("POST", `/${id}/validate`, { test_set: { rows } });
    expect(res.status, res.text).toBe(200);
    expect(res.json.report.test_set).toEqual({ source: "request", rows: 40, labelled: 40 });
    await admin("POST", `/${id}/abort`, {});
  });
});
