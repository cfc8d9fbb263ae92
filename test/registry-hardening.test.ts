/**
 * Registry hardening (issue 13): manifests that lie about their artifact are refused by example
 * rows with known outputs and by the declared artifact sha256; onnxruntime's internals never reach
 * the caller; concurrent alias moves audit the version each move really replaced; artifacts that a
 * killed registration left unreferenced are swept after a grace period.
 */
import { createExecutionContext, createScheduledController, env, SELF, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../src/index";
import { ARTIFACT_GRACE_MS, sweepArtifacts } from "../src/registry/sweep";
import { ADMIN, call, register } from "./support/api";
import { repoBytes, repoJson } from "./support/files";

let manifest: any;
let bytes: Uint8Array;
let examples: { features: Record<string, unknown>; expected: { probabilities: Record<string, number> } }[];

const sha256 = async (b: Uint8Array) => [...new Uint8Array(await crypto.subtle.digest("SHA-256", b))].map((x) => x.toString(16).padStart(2, "0")).join("");

beforeAll(async () => {
  manifest = await repoJson("models/credit-risk-lr.manifest.json");
  bytes = await repoBytes("models/credit-risk-lr.onnx");
  expect((await register("credit-risk", manifest, bytes, ["champion"])).status).toBe(201);
  // What the trained model answers for a few rows (what a training-side CLI would write).
  const rows = (await repoJson("models/credit-risk-holdout.json")).rows.slice(0, 8).map((r: any) => r.features);
  const res = await call("POST", "/v1/models/credit-risk/predict", { instances: rows });
  examples = rows.map((features: Record<string, unknown>, i: number) => ({ features, expected: { probabilities: res.json.predictions[i].probabilities } }));
});

describe("manifest example rows", () => {
  it("register when the artifact reproduces every expected output", async () => {
    const res = await register("credit-risk", { ...manifest, version: "1.0.1", examples }, bytes);
    expect(res.status, JSON.stringify(res.json)).toBe(201);
  });

  it("refuse a manifest with a swapped class order, permuted dense columns or an off output", async () => {
    const swapped = structuredClone(manifest);
    swapped.version = "1.0.2";
    swapped.featureSchema.output.classes = [1, 0];
    const r1 = await register("credit-risk", { ...swapped, examples }, bytes);
    expect(r1.status, JSON.stringify(r1.json)).toBe(422);
    expect(r1.json.error).toMatchObject({ code: "invalid_artifact", message: expect.stringMatching(/does not reproduce \d+ output\(s\)/) });
    expect(r1.json.error.details[0].path).toMatch(/^manifest\.examples\[\d+\]\.expected\.probabilities\./);

    const permuted = structuredClone(manifest);
    permuted.version = "1.0.3";
    const cols = permuted.featureSchema.input.columns;
    const [a, b] = [cols.findIndex((c: any) => c.feature === "Seniority"), cols.findIndex((c: any) => c.feature === "Time")];
    [cols[a], cols[b]] = [cols[b], cols[a]];
    expect((await register("credit-risk", { ...permuted, examples }, bytes)).status).toBe(422);

    const off = structuredClone(examples);
    off[3].expected.probabilities["1"] += 2e-5;
    off[3].expected.probabilities["0"] -= 2e-5;
    const r3 = await register("credit-risk", { ...manifest, version: "1.0.4", examples: off }, bytes);
    expect(r3.status).toBe(422);
    expect(r3.json.error.details.map((d: any) => d.path).sort()).toEqual(["manifest.examples[3].expected.probabilities.0", "manifest.examples[3].expected.probabilities.1"]);

    // Examples that do not fit the output kind, or invalid feature values, are input errors.
    expect((await register("credit-risk", { ...manifest, version: "1.0.5", examples: [{ features: examples[0].features, expected: { value: 0.3 } }] }, bytes)).status).toBe(422);
    const badRow = await register("credit-risk", { ...manifest, version: "1.0.5", examples: [{ ...examples[0], features: { ...examples[0].features, Age: -4 } }] }, bytes);
    expect(badRow.json.error.code).toBe("invalid_input");
    expect(badRow.json.error.details[0].path).toBe("manifest.examples[0].features.Age");
    const versions = await call("GET", "/admin/models/credit-risk/versions", undefined, ADMIN);
    expect(versions.json.versions.map((v: any) => v.version).sort()).toEqual(["1.0.0", "1.0.1"]);
  });
});

describe("artifact sha256", () => {
  it("a declared sha256 must match the upload", async () => {
    const sha = await sha256(bytes);
    const wrong = await register("credit-risk", { ...manifest, version: "1.1.0", artifactSha256: "0".repeat(64) }, bytes);
    expect(wrong.status).toBe(422);
    expect(wrong.json.error.details[0].path).toBe("manifest.artifactSha256");
    const flipped = bytes.slice();
    flipped[flipped.length - 40] ^= 0x10;
    expect((await register("credit-risk", { ...manifest, version: "1.1.0", artifactSha256: sha }, flipped)).status).toBe(422);
    expect((await register("credit-risk", { ...manifest, version: "1.1.0", artifactSha256: sha.toUpperCase() }, bytes)).status).toBe(201);
  });
});

describe("registration input", () => {
  it("metrics outside their range, and a form field given twice, are 422 and register nothing (a black-box probe registered auc 1e308)", async () => {
    const before = (await call("GET", "/admin/models/credit-risk", undefined, ADMIN)).json.versions.length;
    const bad = await register("credit-risk", { ...manifest, version: "9.0.0", metrics: { auc: 1e308, rmse: -1, gini: -0.2, custom: -5 } }, bytes);
    expect(bad.status).toBe(422);
    expect(bad.json.error.details.map((d: { path: string }) => d.path).sort()).toEqual(["manifest.metrics.auc", "manifest.metrics.rmse"]);
    for (const field of ["manifest", "artifact"]) {
      const form = new FormData();
      form.set("manifest", JSON.stringify({ ...manifest, version: "9.0.1" }));
      form.set("artifact", new Blob([bytes]), "model.onnx");
      form.append(field, field === "artifact" ? new Blob([bytes]) : JSON.stringify({ ...manifest, version: "9.0.2" }));
      const res = await SELF.fetch("http://worker/admin/models/credit-risk/versions", { method: "POST", headers: ADMIN, body: form });
      const json = (await res.json()) as any;
      expect(res.status, JSON.stringify(json)).toBe(422);
      expect(json.error.details).toEqual([{ path: field, message: "given more than once" }]);
    }
    expect((await call("GET", "/admin/models/credit-risk", undefined, ADMIN)).json.versions.length).toBe(before);
    // Metrics in range (gini may be negative, unknown names are free) still register.
    expect((await register("credit-risk", { ...manifest, version: "9.0.3", metrics: { auc: 0.5, gini: -0.2, custom: -5 } }, bytes)).status).toBe(201);
  });
});

describe("registration errors", () => {
  it("never carry onnxruntime's internals", async () => {
    const fixture = await repoJson("test/fixtures/onnx/lr-gemm-sigmoid.manifest.json");
    const model = new TextDecoder("latin1").decode(await repoBytes("test/fixtures/onnx/lr-gemm-sigmoid.onnx"));
    // An operator onnxruntime does not know: the file decodes as ONNX, then the runtime refuses it.
    const broken = Uint8Array.from(model.replaceAll("Gemm", "Gemq"), (ch) => ch.charCodeAt(0));
    const res = await register(fixture.name, fixture, broken);
    expect(res.status).toBe(422);
    expect(res.json.error.message).toMatch(/does not load in onnxruntime-web/);
    expect(JSON.stringify(res.json)).not.toMatch(/Gemq|\.cc|\.h:\d|onnxruntime\/core|Could not find|implementation/);
  });
});

describe("concurrent alias moves", () => {
  it("audit the version each move actually replaced", async () => {
    const versions = ["3.0.0", "3.0.1", "3.0.2", "3.0.3", "3.0.4", "3.0.5"];
    for (const v of versions) expect((await register("credit-risk", { ...manifest, version: v }, bytes)).status).toBe(201);
    const moves = Array.from({ length: 36 }, (_, i) => versions[(i * 7) % versions.length]);
    const answers = await Promise.all(moves.map((v) => call("PUT", "/admin/models/credit-risk/aliases/race", { version: v }, ADMIN)));
    for (const a of answers) expect(a.status).toBe(200);
    const audit = await env.DB.prepare("SELECT id, version, details FROM audit_log WHERE action = 'alias.set' AND json_extract(details, '$.alias') = 'race' ORDER BY id").all<{ version: string; details: string }>();
    expect(audit.results).toHaveLength(moves.length);
    let current: string | null = null;
    for (const row of audit.results) {
      expect(JSON.parse(row.details).previous).toBe(current);
      current = row.version;
    }
    const alias = await env.DB.prepare("SELECT version FROM aliases WHERE model_name = 'credit-risk' AND alias = 'race'").first<{ version: string }>();
    expect(alias!.version).toBe(current);
    // Each response reports the same `previous` as its audit entry.
    const reported = answers.map((a) => `${a.json.previous}->${a.json.version}`).sort();
    expect(audit.results.map((r) => `${JSON.parse(r.details).previous}->${r.version}`).sort()).toEqual(reported);
  });

  it("a move to an archived version changes nothing", async () => {
    expect((await call("POST", "/admin/models/credit-risk/versions/3.0.4/archive", {}, ADMIN)).status).toBe(200);
    const before = await env.DB.prepare("SELECT count(*) AS n FROM audit_log").first<{ n: number }>();
    expect((await call("PUT", "/admin/models/credit-risk/aliases/race2", { version: "3.0.4" }, ADMIN)).status).toBe(409);
    expect(await env.DB.prepare("SELECT count(*) AS n FROM audit_log").first<{ n: number }>()).toEqual(before);
  });
});

describe("orphaned artifacts", () => {
  it("are swept by the daily cron once older than the grace period; referenced and young ones stay", async () => {
    const orphan = `artifacts/sha256/${"ab".repeat(32)}.onnx`;
    await env.ARTIFACTS.put(orphan, new Uint8Array([1, 2, 3]));
    const referenced = `artifacts/sha256/${await sha256(bytes)}.onnx`;
    expect((await sweepArtifacts(env)).deleted).toEqual([]); // young: a registration may be about to reference it
    expect(await env.ARTIFACTS.head(orphan)).not.toBeNull();

    const ctx = createExecutionContext();
    await worker.scheduled!(createScheduledController({ cron: "0 6 * * *", scheduledTime: Date.now() + ARTIFACT_GRACE_MS + 60_000 }), env, ctx);
    await waitOnExecutionContext(ctx);
    expect(await env.ARTIFACTS.head(orphan)).toBeNull();
    expect(await env.ARTIFACTS.head(referenced)).not.toBeNull();
    const listed = await env.ARTIFACTS.list({ prefix: "artifacts/" });
    expect(listed.objects.map((o) => o.key)).toContain(referenced);
  });
});

describe("memory held per isolate", () => {
  it("the resolver cache stays within its byte bound, however many wide versions are resolved", async () => {
    const { MAX_CACHE_BYTES, resolveVersion, resolverCacheStats } = await import("../src/registry/resolver");
    // Training references at their largest (5,000 samples a feature): ~1.5 MB of JSON each.
    const wide = structuredClone(manifest);
    for (const f of Object.values(wide.reference.features) as any[]) if (f.type === "numeric") f.sample = Array.from({ length: 5000 }, (_, i) => i / 7);
    wide.reference.score.sample = Array.from({ length: 5000 }, (_, i) => i / 5000);
    const versions = Array.from({ length: 12 }, (_, i) => `5.0.${i}`);
    for (const v of versions) expect((await register("credit-risk", { ...wide, version: v }, bytes)).status).toBe(201);
    for (const v of versions) {
      await resolveVersion(env, "credit-risk", { version: v });
      expect(resolverCacheStats().bytes).toBeLessThanOrEqual(MAX_CACHE_BYTES);
    }
    expect(resolverCacheStats().entries).toBeLessThan(versions.length);
    // Two selectors of one version share one parsed copy.
    await call("PUT", "/admin/models/credit-risk/aliases/wide", { version: "5.0.11" }, ADMIN);
    const [byAlias, byVersion] = await Promise.all([resolveVersion(env, "credit-risk", { alias: "wide" }), resolveVersion(env, "credit-risk", { version: "5.0.11" })]);
    expect(byAlias.version).toBe(byVersion.version);
  });
});
