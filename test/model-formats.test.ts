/**
 * Every model format the runtime must serve, registered through the admin API and scored through
 * /v1 and /v2: Gemm+Sigmoid and MatMul+Softmax logistic models, ai.onnx.ml LinearClassifier,
 * TreeEnsembleClassifier with ZipMap outputs (int64 and string labels), TreeEnsembleRegressor, and a
 * column-wise pipeline with one named input per feature (int64, float and string tensors).
 * Expected outputs come from the plain-TypeScript reference in scripts/make-fixtures.ts.
 * The prediction log, written from the decoder's columns, must hold exactly what was answered.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { logShardName } from "../src/monitoring/config";
import { eventually } from "./monitoring/helpers";
import { call, registerStem } from "./support/api";
import { repoJson } from "./support/files";

const FIXTURES = [
  "lr-gemm-sigmoid",
  "lr-matmul-softmax",
  "linear-classifier",
  "tree-classifier-zipmap-int",
  "tree-classifier-zipmap-str",
  "tree-regressor",
  "columnwise-pipeline",
];

const manifests: Record<string, any> = {};

beforeAll(async () => {
  for (const stem of FIXTURES) {
    manifests[stem] = await repoJson(`test/fixtures/onnx/${stem}.manifest.json`);
    const res = await registerStem("test/fixtures/onnx", stem, ["champion"]);
    expect(res.status, JSON.stringify(res.json)).toBe(201);
  }
});

describe.each(FIXTURES)("%s", (stem) => {
  it("scores every fixture row in one batch like the reference (1e-5)", async () => {
    const expected = await repoJson(`test/fixtures/onnx/${stem}.expected.json`);
    const manifest = manifests[stem];
    const res = await call("POST", `/v1/models/${manifest.name}/predict`, { instances: expected.rows.map((r: any) => r.features) }, { "x-request-id": `formats-${stem}` });
    expect(res.status, res.text).toBe(200);
    // The log is keyed by the server's id; the caller's x-request-id is only a correlation id.
    expect(res.json.correlation_id).toBe(`formats-${stem}`);
    const requestId: string = res.json.request_id;
    const logged = await eventually(async () => {
      const entries = await env.PREDICTION_LOG.getByName(logShardName(manifest.name, requestId, 4)).entries(requestId);
      expect(entries).toHaveLength(expected.rows.length);
      return entries;
    });
    expect(logged.map((e) => [e.score, e.label])).toEqual(res.json.predictions.map((p: any) => ("value" in p ? [p.value, null] : [p.score, String(p.label)])));
    expect(res.json.predictions).toHaveLength(expected.rows.length);
    res.json.predictions.forEach((p: any, i: number) => {
      const want = expected.rows[i].expected;
      if (manifest.featureSchema.output.kind === "regressor") {
        expect(Math.abs(p.value - want.value)).toBeLessThan(1e-5 * Math.max(1, Math.abs(want.value)));
        return;
      }
      expect(Math.abs(p.score - want.score)).toBeLessThan(1e-5);
      expect(p.label).toEqual(want.label);
      const classes = manifest.featureSchema.output.classes;
      classes.forEach((cls: string | number, k: number) => expect(Math.abs(p.probabilities[String(cls)] - want.probabilities[k])).toBeLessThan(1e-5));
    });
  });

  it("answers the Open Inference Protocol with feature-named inputs", async () => {
    const expected = await repoJson(`test/fixtures/onnx/${stem}.expected.json`);
    const manifest = manifests[stem];
    const features = manifest.featureSchema.features as { name: string; type: string }[];
    const rows = expected.rows.map((r: any) => r.features);
    const inputs = features.map((f) => ({
      name: f.name,
      shape: [rows.length, 1],
      datatype: f.type === "categorical" ? "BYTES" : f.type === "boolean" ? "BOOL" : f.type === "integer" ? "INT64" : "FP32",
      data: rows.map((r: any) => r[f.name] ?? null),
    }));
    const res = await call("POST", `/v2/models/${manifest.name}/infer`, { id: "req-1", inputs });
    expect(res.status, res.text).toBe(200);
    expect(res.json.model_name).toBe(manifest.name);
    expect(res.json.id).toBe("req-1");
    const out = manifest.featureSchema.output;
    const main = res.json.outputs.find((o: any) => o.name === (out.kind === "regressor" ? out.value : out.probabilities));
    expect(main.datatype).toBe("FP32");
    expect(main.shape[0]).toBe(rows.length);
    if (out.kind === "classifier") {
      const width = out.classes.length;
      expected.rows.forEach((r: any, i: number) => {
        r.expected.probabilities.forEach((p: number, k: number) => expect(Math.abs(main.data[i * width + k] - p)).toBeLessThan(1e-5));
      });
      if (out.label) {
        const labels = res.json.outputs.find((o: any) => o.name === out.label);
        expect(labels.data).toEqual(expected.rows.map((r: any) => r.expected.label));
        expect(labels.datatype).toBe(typeof out.classes[0] === "string" ? "BYTES" : "INT64");
      }
    }
  });
});

describe("ZipMap models", () => {
  it("expose the ZipMap's classes and a tensor output in v2 metadata", async () => {
    const res = await call("GET", "/v2/models/fixture-tree-classifier-zipmap-str");
    expect(res.status).toBe(200);
    const prob = res.json.outputs.find((o: any) => o.name === "output_probability");
    expect(prob).toMatchObject({ datatype: "FP32", shape: [-1, 2] });
    const pred = await call("POST", "/v1/models/fixture-tree-classifier-zipmap-str/predict", {
      features: (await repoJson("test/fixtures/onnx/tree-classifier-zipmap-str.expected.json")).rows[0].features,
    });
    expect(Object.keys(pred.json.prediction.probabilities).sort()).toEqual(["bad", "good"]);
    expect(["bad", "good"]).toContain(pred.json.prediction.label);
  });
});

describe("decodeOutputs columns", () => {
  it("keep the output tensor's precision: float32 scores for float outputs, float64 for double outputs", async () => {
    const { decodeOutputs } = await import("../src/inference/outputs");
    const spec = { kind: "classifier", probabilities: "p", classes: [0, 1] } as any;
    const f32 = decodeOutputs(spec, { p: { data: new Float32Array([0.9, 0.1, 0.3, 0.7]) } } as any, 2);
    expect(f32.columns.scores).toBeInstanceOf(Float32Array);
    expect(Array.from(f32.columns.scores)).toEqual([Math.fround(0.1), Math.fround(0.7)]);
    const exact = 0.1 + 0.2; // not a float32
    const f64 = decodeOutputs(spec, { p: { data: new Float64Array([1 - exact, exact]) } } as any, 1);
    expect(f64.columns.scores).toBeInstanceOf(Float64Array);
    expect(f64.columns.scores[0]).toBe(exact);
    expect((f64.predictions[0] as { score: number }).score).toBe(exact);
    const regressor = decodeOutputs({ kind: "regressor", value: "v" } as any, { v: { data: new Float64Array([exact]) } } as any, 1);
    expect(regressor.columns.scores[0]).toBe(exact);
  });
});
