/**
 * Registry admin API: registration with validation before any write, listing, aliases, archiving,
 * the audit log, and credentials. Every rejected registration must leave D1 and R2 unchanged.
 */
import { env, SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../src/app";
import { ADMIN, call, register, registerForm } from "./support/api";
import { repoBytes, repoJson } from "./support/files";

let lrManifest: any;
let lrBytes: Uint8Array;
let gbtManifest: any;
let gbtBytes: Uint8Array;

async function snapshot() {
  const count = async (table: string) => ((await env.DB.prepare(`SELECT count(*) AS n FROM ${table}`).first<{ n: number }>())!.n);
  const objects = (await env.ARTIFACTS.list()).objects.map((o) => o.key).sort();
  return { models: await count("models"), versions: await count("model_versions"), aliases: await count("aliases"), audit: await count("audit_log"), objects };
}

beforeAll(async () => {
  lrManifest = await repoJson("models/credit-risk-lr.manifest.json");
  lrBytes = await repoBytes("models/credit-risk-lr.onnx");
  gbtManifest = await repoJson("models/credit-risk-gbt.manifest.json");
  gbtBytes = await repoBytes("models/credit-risk-gbt.onnx");
});

describe("registration", () => {
  it("registers a version, stores the artifact content-addressed in R2, records the audit entry", async () => {
    const res = await register("credit-risk", lrManifest, lrBytes, ["champion"]);
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    const sha = [...new Uint8Array(await crypto.subtle.digest("SHA-256", lrBytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
    expect(res.json).toMatchObject({
      name: "credit-risk",
      version: "1.0.0",
      status: "registered",
      environment: "production",
      artifact: { sha256: sha, size_bytes: lrBytes.byteLength, key: `artifacts/sha256/${sha}.onnx`, ir_version: 8 },
      metrics: { auc: lrManifest.metrics.auc, ks: lrManifest.metrics.ks, gini: lrManifest.metrics.gini },
      created_by: "admin",
      aliases: ["champion"],
    });
    expect(res.json.artifact.opsets["ai.onnx"]).toBeGreaterThan(0);
    const object = await env.ARTIFACTS.get(res.json.artifact.key);
    expect(new Uint8Array(await object!.arrayBuffer())).toEqual(lrBytes);
  });

  it("records the actor from x-actor and lists models, versions and aliases", async () => {
    const res = await register("credit-risk", gbtManifest, gbtBytes, [], { ...ADMIN, "x-actor": "alice" });
    expect(res.status).toBe(201);
    expect(res.json.created_by).toBe("alice");
    const models = await call("GET", "/admin/models", undefined, ADMIN);
    expect(models.json.models.map((m: any) => m.name)).toEqual(["credit-risk"]);
    const model = await call("GET", "/admin/models/credit-risk", undefined, ADMIN);
    expect(model.json.aliases).toEqual({ champion: "1.0.0" });
    expect(model.json.versions.map((v: any) => v.version)).toEqual(["1.1.0", "1.0.0"]);
    const one = await call("GET", "/admin/models/credit-risk/versions/1.1.0", undefined, ADMIN);
    expect(one.json.feature_schema.features.map((f: any) => f.name)).toContain("Income");
    expect(one.json.metrics.auc).toBeCloseTo(gbtManifest.metrics.auc, 6);
  });

  it("stores identical artifacts once", async () => {
    const before = await snapshot();
    const res = await register("credit-risk", { ...lrManifest, version: "1.0.1" }, lrBytes);
    expect(res.status).toBe(201);
    const after = await snapshot();
    expect(after.objects).toEqual(before.objects);
    expect(after.versions).toBe(before.versions + 1);
  });

  it("two concurrent registrations of one version: one wins, the other gets 409, one row and one object", async () => {
    const manifest = { ...gbtManifest, version: "1.2.0" };
    const results = await Promise.all([register("credit-risk", manifest, gbtBytes), register("credit-risk", manifest, gbtBytes)]);
    expect(results.map((r) => r.status).sort()).toEqual([201, 409]);
    const rows = await env.DB.prepare("SELECT count(*) AS n FROM model_versions WHERE version = '1.2.0'").first<{ n: number }>();
    expect(rows!.n).toBe(1);
    expect(await env.ARTIFACTS.head(results.find((r) => r.status === 201)!.json.artifact.key)).not.toBeNull();
  });

  describe("rejections change nothing", () => {
    const cases: [string, () => Promise<{ status: number; json: any }>, number, RegExp][] = [
      ["duplicate version", () => register("credit-risk", lrManifest, lrBytes), 409, /already exists/],
      ["bad semver", () => register("credit-risk", { ...lrManifest, version: "1.0" }, lrBytes), 422, /manifest\.version/],
      ["URL/manifest name mismatch", () => register("other-model", { ...lrManifest, version: "9.0.0" }, lrBytes), 400, /does not match/],
      ["manifest not JSON", () => register("credit-risk", "{not json", lrBytes), 400, /manifest is not valid JSON/],
      ["not an ONNX file", () => register("credit-risk", { ...lrManifest, version: "2.0.0" }, new TextEncoder().encode("hello, this is not onnx")), 422, /does not load|not an ONNX/],
      ["empty artifact", () => register("credit-risk", { ...lrManifest, version: "2.0.1" }, new Uint8Array()), 422, /artifact is empty/],
      [
        "schema builds more columns than the model takes",
        () =>
          register(
            "credit-risk",
            {
              ...lrManifest,
              version: "2.0.2",
              featureSchema: { ...lrManifest.featureSchema, input: { ...lrManifest.featureSchema.input, columns: [...lrManifest.featureSchema.input.columns, { feature: "Age" }] } },
            },
            lrBytes,
          ),
        422,
        /has 26 columns in the model but the schema builds 27/,
      ],
      [
        "declared output missing from the model",
        () => register("credit-risk", { ...lrManifest, version: "2.0.3", featureSchema: { ...lrManifest.featureSchema, output: { ...lrManifest.featureSchema.output, probabilities: "proba" } } }, lrBytes),
        422,
        /declared output 'proba' is not a tensor output/,
      ],
      [
        "wrong number of classes",
        () => register("credit-risk", { ...lrManifest, version: "2.0.4", task: "multiclass_classification", featureSchema: { ...lrManifest.featureSchema, output: { ...lrManifest.featureSchema.output, classes: [0, 1, 2] } } }, lrBytes),
        422,
        /has 2 classes; the schema declares 3/,
      ],
      [
        "impute value outside the feature's bounds",
        () =>
          register(
            "credit-risk",
            {
              ...lrManifest,
              version: "2.0.5",
              featureSchema: { ...lrManifest.featureSchema, features: lrManifest.featureSchema.features.map((f: any) => (f.name === "Income" ? { ...f, missing: { policy: "impute", value: -5 } } : f)) },
            },
            lrBytes,
          ),
        422,
        /features\[\d+\]\.missing\.value/,
      ],
      [
        "one-hot category that is not a category",
        () =>
          register(
            "credit-risk",
            {
              ...lrManifest,
              version: "2.0.6",
              featureSchema: { ...lrManifest.featureSchema, input: { ...lrManifest.featureSchema.input, columns: lrManifest.featureSchema.input.columns.map((c: any) => (c.oneHot === "rent" ? { ...c, oneHot: "castle" } : c)) } },
            },
            lrBytes,
          ),
        422,
        /'castle' is not a category of 'Home'/,
      ],
      ["per-feature model registered with a dense schema", async () => register("credit-risk", { ...lrManifest, version: "2.0.7" }, await repoBytes("test/fixtures/onnx/columnwise-pipeline.onnx")), 422, /model has inputs the schema does not build|is not a tensor input/],
      ["invalid alias", () => register("credit-risk", { ...lrManifest, version: "2.0.8" }, lrBytes, ["Not An Alias"]), 400, /invalid alias/],
    ];
    it.each(cases)("%s", async (_label, attempt, status, message) => {
      const before = await snapshot();
      const res = await attempt();
      expect(res.status, JSON.stringify(res.json)).toBe(status);
      expect(JSON.stringify(res.json.error)).toMatch(message);
      expect(await snapshot()).toEqual(before);
    });

    it("missing form fields and non-multipart bodies", async () => {
      const before = await snapshot();
      const noArtifact = new FormData();
      noArtifact.set("manifest", JSON.stringify(lrManifest));
      let res = await SELF.fetch("http://worker/admin/models/credit-risk/versions", { method: "POST", headers: ADMIN, body: noArtifact });
      expect(res.status).toBe(422);
      expect(((await res.json()) as any).error.details[0].path).toBe("artifact");
      const noManifest = new FormData();
      noManifest.set("artifact", new Blob([lrBytes]), "m.onnx");
      res = await SELF.fetch("http://worker/admin/models/credit-risk/versions", { method: "POST", headers: ADMIN, body: noManifest });
      expect(res.status).toBe(422);
      res = await SELF.fetch("http://worker/admin/models/credit-risk/versions", { method: "POST", headers: { ...ADMIN, "content-type": "application/json" }, body: "{}" });
      expect(res.status).toBe(400);
      expect(await snapshot()).toEqual(before);
    });

    it("an artifact over MAX_ARTIFACT_BYTES is refused before it is read", async () => {
      const before = await snapshot();
      const app = createApp();
      const res = await app.request(
        "/admin/models/credit-risk/versions",
        { method: "POST", headers: ADMIN, body: registerForm({ ...lrManifest, version: "3.0.0" }, lrBytes) },
        { ...env, MAX_ARTIFACT_BYTES: "100" },
      );
      expect(res.status).toBe(413);
      expect(((await res.json()) as any).error.message).toMatch(/artifact is \d+ bytes; the limit is 100/);
      expect(await snapshot()).toEqual(before);
    });
  });
});

describe("aliases, archiving and audit", () => {
  it("moves an alias and records who moved it and why", async () => {
    const res = await call("PUT", "/admin/models/credit-risk/aliases/champion", { version: "1.1.0", reason: "better KS" }, { ...ADMIN, "x-actor": "bob" });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ alias: "champion", version: "1.1.0", previous: "1.0.0" });
    const pred = await call("POST", "/v1/models/credit-risk/predict", { features: (await repoJson("models/credit-risk-holdout.json")).rows[0].features });
    expect(pred.json.version).toBe("1.1.0");
    const audit = await call("GET", "/admin/models/credit-risk/audit?limit=1", undefined, ADMIN);
    expect(audit.json.entries[0]).toMatchObject({ actor: "bob", action: "alias.set", version: "1.1.0", reason: "better KS", details: { alias: "champion", previous: "1.0.0" } });
    expect(audit.json.next_before).toBeTypeOf("number");
  });

  it("refuses an alias to an unknown version", async () => {
    const res = await call("PUT", "/admin/models/credit-risk/aliases/challenger", { version: "7.7.7" }, ADMIN);
    expect(res.status).toBe(404);
    expect(res.json.error.message).toMatch(/version 7.7.7/);
  });

  it("refuses to archive a version that serves traffic, then archives it once the alias moved", async () => {
    let res = await call("POST", "/admin/models/credit-risk/versions/1.1.0/archive", { reason: "retire" }, ADMIN);
    expect(res.status).toBe(409);
    expect(res.json.error.message).toMatch(/serves traffic \(alias 'champion'\)/);
    expect((await call("PUT", "/admin/models/credit-risk/aliases/champion", { version: "1.0.0" }, ADMIN)).status).toBe(200);
    res = await call("POST", "/admin/models/credit-risk/versions/1.1.0/archive", { reason: "retire" }, ADMIN);
    expect(res.status).toBe(200);
    expect(res.json.status).toBe("archived");
    res = await call("POST", "/admin/models/credit-risk/versions/1.1.0/archive", {}, ADMIN);
    expect(res.status).toBe(409);
    const pred = await call("POST", "/v1/models/credit-risk/predict", { version: "1.1.0", features: {} });
    expect(pred.status).toBe(409);
    expect(pred.json.error.message).toMatch(/archived/);
    res = await call("PUT", "/admin/models/credit-risk/aliases/old", { version: "1.1.0" }, ADMIN);
    expect(res.status).toBe(409);
  });

  it("deletes an alias", async () => {
    expect((await call("PUT", "/admin/models/credit-risk/aliases/shadow", { version: "1.0.1" }, ADMIN)).status).toBe(200);
    expect((await call("DELETE", "/admin/models/credit-risk/aliases/shadow", undefined, ADMIN)).status).toBe(204);
    expect((await call("DELETE", "/admin/models/credit-risk/aliases/shadow", undefined, ADMIN)).status).toBe(404);
  });

  it("keeps an append-only audit trail of every change, paged newest first", async () => {
    const all: any[] = [];
    let before: number | null | undefined;
    do {
      const page = await call("GET", `/admin/models/credit-risk/audit?limit=3${before ? `&before=${before}` : ""}`, undefined, ADMIN);
      all.push(...page.json.entries);
      before = page.json.next_before;
    } while (before);
    const actions = all.map((e) => e.action).reverse();
    expect(actions).toEqual(["version.register", "alias.set", "version.register", "version.register", "version.register", "alias.set", "alias.set", "version.archive", "alias.set", "alias.delete"]);
    expect(new Set(all.map((e) => e.id)).size).toBe(all.length);
  });
});

describe("credentials", () => {
  it("401 without a token, 403 with a wrong one, as JSON", async () => {
    let res = await call("GET", "/admin/models");
    expect(res.status).toBe(401);
    expect(res.json.error.code).toBe("unauthorized");
    expect(res.headers.get("www-authenticate")).toMatch(/Bearer/);
    res = await call("GET", "/admin/models", undefined, { authorization: "Bearer test-admin-tokem" });
    expect(res.status).toBe(403);
    expect(res.json.error.code).toBe("forbidden");
    res = await call("GET", "/admin/models", undefined, { authorization: "Basic abc" });
    expect(res.status).toBe(401);
  });

  it("admin routes are closed when no ADMIN_TOKEN secret is configured", async () => {
    const res = await createApp().request("/admin/models", { headers: ADMIN }, { ...env, ADMIN_TOKEN: "" });
    expect(res.status).toBe(403);
    expect(((await res.json()) as any).error.message).toMatch(/ADMIN_TOKEN/);
  });
});
