/**
 * What monitoring accepts: feedback `actual` values checked against the model's classes (422,
 * nothing written), references validated at registration (422, nothing registered), and
 * monitored-only features: declared in the manifest, sent with predictions, not fed to the model,
 * monitored for drift.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { logShardName } from "../../src/monitoring/config";
import { ADMIN, call, register, registerStem } from "../support/api";
import { repoBytes, repoJson } from "../support/files";
import { eventually } from "./helpers";

let manifest: any;
let artifact: Uint8Array;
let holdout: { features: Record<string, unknown>; label: number }[];
const copy = <T>(x: T): T => JSON.parse(JSON.stringify(x));

beforeAll(async () => {
  manifest = await repoJson("models/credit-risk-lr.manifest.json");
  artifact = await repoBytes("models/credit-risk-lr.onnx");
  holdout = (await repoJson("models/credit-risk-holdout.json")).rows;
  expect((await registerStem("models", "credit-risk-lr", ["champion"], { name: "labels-model" })).status).toBe(201);
});

describe("feedback actual values", () => {
  it("rejects values that are not one of the model's classes with 422 naming the field, and writes nothing", async () => {
    const res = await call("POST", "/v1/models/labels-model/predict", { features: holdout[0].features }, { "x-request-id": "label-check" });
    expect(res.status).toBe(200);
    // Feedback takes the server's id (the caller's x-request-id is only a correlation id).
    const id: string = res.json.request_id;
    await eventually(async () => expect(await env.PREDICTION_LOG.getByName(logShardName("labels-model", id, 4)).entries(id)).toHaveLength(1));
    for (const actual of [true, "bad", 7, 0.5]) {
      const bad = await call("POST", "/v1/feedback", { model: "labels-model", feedback: [{ request_id: id, actual: 1 }, { request_id: id, row: 0, actual }] });
      expect(bad.status, JSON.stringify(actual)).toBe(422);
      expect(bad.json.error.details).toEqual([expect.objectContaining({ path: "feedback[1].actual" })]);
      expect(bad.json.error.details[0].message).toContain("0, 1");
    }
    // Nothing was joined by the rejected requests: the first valid label joins.
    const ok = await call("POST", "/v1/feedback", { model: "labels-model", feedback: [{ request_id: id, actual: "1" }] });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json.joined).toBe(1);
    expect((await call("POST", "/v1/feedback", { model: "no-such-model", feedback: [{ request_id: "x", actual: 1 }] })).status).toBe(404);
  });
});

describe("reference validation at registration", () => {
  const cases: [string, (m: any) => void, string][] = [
    ["reversed edges", (m) => m.reference.features.Income.edges.reverse(), "manifest.reference.features.Income.edges[1]"],
    ["counts that do not match the bins", (m) => m.reference.features.Age.counts.pop(), "manifest.reference.features.Age.counts"],
    ["an unsorted sample", (m) => m.reference.features.Amount.sample.reverse(), "manifest.reference.features.Amount.sample[1]"],
    ["a category the schema does not have", (m) => (m.reference.features.Home.counts.castle = 5), "manifest.reference.features.Home.counts"],
    ["a categorical reference for a numeric feature", (m) => (m.reference.features.Age = { type: "categorical", counts: { a: 1 } }), "manifest.reference.features.Age.type"],
    ["a reference for an unknown feature", (m) => (m.reference.features.Nope = m.reference.features.Age), "manifest.reference.features.Nope"],
    ["reversed score edges", (m) => m.reference.score.edges.reverse(), "manifest.reference.score.edges[1]"],
    ["a count in a bin between equal edges", (m) => (m.reference.features.Debt.counts[3] = 7), "manifest.reference.features.Debt.counts[3]"],
  ];
  it.each(cases)("rejects %s with 422, and registers nothing", async (_name, edit, path) => {
    const m = copy(manifest);
    m.name = "bad-reference";
    edit(m);
    const res = await register("bad-reference", m, artifact);
    expect(res.status, JSON.stringify(res.json)).toBe(422);
    expect(res.json.error.details.map((d: any) => d.path)).toContain(path);
    expect((await call("GET", "/admin/models/bad-reference/versions/1.0.0", undefined, ADMIN)).status).toBe(404);
  });
  it("accepts the demo references (repeated edges of tied deciles, empty bins between them)", async () => {
    const m = copy(manifest);
    m.name = "good-reference";
    expect((await register("good-reference", m, artifact)).status).toBe(201);
  });
});

describe("monitored-only features", () => {
  function withRegion() {
    const m = copy(manifest);
    m.name = "region-model";
    m.featureSchema.features.push({ name: "region", type: "categorical", categories: ["north", "south"], missing: { policy: "reject" }, monitorOnly: true });
    m.featureSchema.features.push({ name: "raw_score", type: "numeric", missing: { policy: "nan" }, monitorOnly: true });
    m.reference.features.region = { type: "categorical", counts: { north: 500, south: 500 }, missing: 0 };
    return m;
  }

  it("are accepted with predictions, not fed to the model, and monitored for drift", async () => {
    const reg = await register("region-model", withRegion(), artifact, ["champion"]);
    expect(reg.status, JSON.stringify(reg.json)).toBe(201);
    const rows = holdout.slice(0, 300).map((r, i) => ({ ...r.features, region: i < 150 ? "north" : "south", raw_score: i }));
    // The same scores as the model without the extra columns.
    const plain = await call("POST", "/v1/models/labels-model/predict", { instances: holdout.slice(0, 300).map((r) => r.features) });
    const extra = await call("POST", "/v1/models/region-model/predict", { instances: rows });
    expect(extra.status, extra.text).toBe(200);
    expect(extra.json.predictions.map((p: any) => p.score)).toEqual(plain.json.predictions.map((p: any) => p.score));
    // Declared columns are validated like any feature; undeclared ones are still unknown.
    const badRegion = await call("POST", "/v1/models/region-model/predict", { features: { ...holdout[0].features, region: "west", raw_score: 1 } });
    expect(badRegion.status).toBe(422);
    expect(badRegion.json.error.details[0].path).toBe("features.region");
    const unknown = await call("POST", "/v1/models/region-model/predict", { features: { ...holdout[0].features, region: "north", channel: "web" } });
    expect(unknown.status).toBe(422);
    expect(unknown.json.error.details[0]).toMatchObject({ path: "features.channel", message: "unknown feature" });

    // All of the next traffic comes from the south: region drifts, nothing the model takes does.
    const south = holdout.slice(300, 700).map((r) => ({ ...r.features, region: "south", raw_score: 1 }));
    expect((await call("POST", "/v1/models/region-model/predict", { instances: south })).status).toBe(200);
    const drift = await eventually(async () => {
      const res = await call("GET", "/v1/monitoring/models/region-model/drift?window=1h");
      expect(res.json.versions[0]?.n).toBe(700);
      return res.json.versions[0];
    });
    expect(drift.features.region.n).toBe(700);
    expect(drift.features.region.psi).toBeGreaterThan(0.2);
    expect(drift.drifted_features).toContain("region");
    expect(drift.features.raw_score.status).toBe("no_reference");
  });

  it("may not be used by the input, and an unused feature must be declared monitorOnly", async () => {
    const used = copy(manifest);
    used.name = "region-used";
    used.featureSchema.features[0].monitorOnly = true; // Seniority feeds the dense input
    const res = await register("region-used", used, artifact);
    expect(res.status).toBe(422);
    expect(res.json.error.details.map((d: any) => d.path)).toContain("manifest.featureSchema.features[0].monitorOnly");
    const undeclared = withRegion();
    undeclared.name = "region-undeclared";
    delete undeclared.featureSchema.features.at(-2).monitorOnly;
    const res2 = await register("region-undeclared", undeclared, artifact);
    expect(res2.status).toBe(422);
    expect(res2.json.error.details[0].message).toContain("monitorOnly");
  });
});

describe("labels that arrive before their prediction is logged", () => {
  it("are kept and joined when the prediction arrives: live performance gets them", async () => {
    // The server makes every request id (UUIDv7) and answers it before the isolate's flush logs the
    // prediction, so a fast caller's label can reach the log first. Made deterministic here: the
    // label for a fresh worker-style id first, then that request's flush (the served predictions).
    const { RequestPacker } = await import("../../src/monitoring/prediction-log");
    const { columnsOf } = await import("../support/columns");
    const { v7: uuidv7 } = await import("uuid");
    const id = uuidv7();
    const early = await call("POST", "/v1/feedback", { model: "labels-model", feedback: [{ request_id: id, actual: 1 }, { request_id: id, row: 1, actual: 0 }] });
    expect(early.status, early.text).toBe(200);
    expect(early.json).toMatchObject({ joined: 0, not_found: [], pending: [{ request_id: id, row: 0 }, { request_id: id, row: 1 }] });
    const res = await call("POST", "/v1/models/labels-model/predict", { instances: holdout.slice(0, 2).map((r) => r.features) });
    expect(res.status).toBe(200);
    const packer = new RequestPacker();
    packer.add({ requestId: id, version: res.json.version, at: Date.now() }, columnsOf(res.json.predictions));
    await env.PREDICTION_LOG.getByName(logShardName("labels-model", id, 4)).append("labels-model", packer.pack());
    const labels = await eventually(async () => {
      const rows = (await env.MONITOR_SHARD.getByName("labels-model@1.0.0#0").labelled(0)).filter((l) => l.requestId === id);
      expect(rows).toHaveLength(2);
      return rows;
    });
    expect(labels.find((l) => l.row === 0)).toMatchObject({ actual: "1", score: res.json.predictions[0].score });
    expect(labels.find((l) => l.row === 1)).toMatchObject({ actual: "0", score: res.json.predictions[1].score });
    // Joined once: a later label for the same row is a duplicate.
    const again = await call("POST", "/v1/feedback", { model: "labels-model", feedback: [{ request_id: id, actual: 0 }] });
    expect(again.json).toMatchObject({ joined: 0, duplicates: [{ request_id: id, row: 0 }], pending: [] });
  });

  it("expire after PENDING_LABEL_MS; a worker-generated id older than that, or an id that is not a UUIDv7, is not_found at once", async () => {
    const { PENDING_LABEL_MS, RequestPacker } = await import("../../src/monitoring/prediction-log");
    const { columnsOf } = await import("../support/columns");
    const stub = env.PREDICTION_LOG.getByName("early-model#0");
    const now = Date.now();
    const v7At = (t: number, tail: string) => {
      const hex = t.toString(16).padStart(12, "0");
      return `${hex.slice(0, 8)}-${hex.slice(8)}-7abc-8def-${tail}`;
    };
    const late = v7At(now, "000000001a7e");
    const [waiting] = await stub.join([{ requestId: late, row: 0, actual: "1" }], now - PENDING_LABEL_MS - 1000);
    expect(waiting.status).toBe("pending");
    const packer = new RequestPacker();
    packer.add({ requestId: late, version: "1.0.0", at: now }, columnsOf([{ score: 0.7, label: 1, probabilities: {} }]));
    await stub.append("early-model", packer.pack());
    // Expired before its prediction came: not joined, so the row is still open for a fresh label.
    expect((await env.MONITOR_SHARD.getByName("early-model@1.0.0#0").labelled(0)).length).toBe(0);
    const [fresh] = await stub.join([{ requestId: late, row: 0, actual: "1" }]);
    expect(fresh.status).toBe("joined");
    const [old] = await stub.join([{ requestId: v7At(now - PENDING_LABEL_MS - 60_000, "0123456789ab"), row: 0, actual: "1" }]);
    expect(old.status).toBe("not_found");
    // A client-chosen id is never logged (the worker logs its own UUIDv7s): not kept waiting 10 minutes.
    const clientIds = await stub.join([
      { requestId: "late-1", row: 0, actual: "1" },
      { requestId: "0190c7e4-1234-4abc-8def-0123456789ab", row: 0, actual: "1" }, // a UUIDv4
    ]);
    expect(clientIds.map((r) => r.status)).toEqual(["not_found", "not_found"]);
  });
});
