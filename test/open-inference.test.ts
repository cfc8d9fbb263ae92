/**
 * Registry and protocol conformance found with outside models (issue 11):
 *  - class order is checked against every classifier operator (TreeEnsembleClassifier without a
 *    ZipMap, LinearClassifier, SVMClassifier), not only ZipMap;
 *  - finite doubles that overflow float32 and non-finite numbers are 422s naming the feature;
 *  - Open Inference Protocol, field by field against the published REST spec: -1 for unnamed
 *    dynamic dimensions, `{ "error": "<message>" }`, platform `onnx_onnxv1`, `versions`, scalar
 *    `parameters`, and the binary tensor data extension;
 *  - model names with underscores (MLflow accepts `lc_gbdt`).
 */
import { SELF } from "cloudflare:test";
import onnxProto from "onnx-proto";
import { beforeAll, describe, expect, it } from "vitest";
import { predictLogistic } from "../scripts/lib/predict-reference";
import { decodeModel, encodeModel, type ModelProto } from "../src/inference/onnx-model";
import { call, register } from "./support/api";
import { repoBytes, repoJson } from "./support/files";

const { onnx } = onnxProto;
const ROW = { Seniority: 9, Home: "rent", Time: 60, Age: 30, Marital: "married", Records: "no", Job: "freelance", Expenses: 73, Income: 129, Assets: 0, Debt: 0, Amount: 800, Price: 846 };
let lrParams: any;

beforeAll(async () => {
  const manifest = await repoJson("models/credit-risk-lr.manifest.json");
  expect((await register("credit-risk", manifest, await repoBytes("models/credit-risk-lr.onnx"), ["champion"])).status).toBe(201);
  expect((await register("credit-risk", { ...manifest, version: "1.1.0" }, await repoBytes("models/credit-risk-lr.onnx"))).status).toBe(201);
  // The same model with Income unbounded above, as exported schemas often are.
  const open = structuredClone(manifest);
  delete open.featureSchema.features.find((f: any) => f.name === "Income").max;
  expect((await register("open-income", { ...open, name: "open-income" }, await repoBytes("models/credit-risk-lr.onnx"), ["champion"])).status).toBe(201);
  lrParams = await repoJson("models/credit-risk-lr.params.json");
});

async function fixture(stem: string) {
  return { manifest: await repoJson(`test/fixtures/onnx/${stem}.manifest.json`), bytes: await repoBytes(`test/fixtures/onnx/${stem}.onnx`) };
}

function rewrite(bytes: Uint8Array, edit: (m: ModelProto) => void): Uint8Array {
  const model = decodeModel(bytes);
  edit(model);
  return encodeModel(model);
}

/** A TreeEnsembleClassifier exported without ZipMap (sklearn-onnx `zipmap=False`): the probability tensor is the output. */
function withoutZipMap(bytes: Uint8Array): Uint8Array {
  return rewrite(bytes, (m) => {
    const graph = m.graph!;
    const i = graph.node!.findIndex((n) => n.opType === "ZipMap");
    const zip = graph.node![i];
    graph.node![i] = onnx.NodeProto.create({ opType: "Identity", input: zip.input, output: zip.output, name: "probabilities_out" });
    const out = graph.output!.find((o) => o.name === zip.output![0])!;
    out.type = onnx.TypeProto.create({ tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: "N" }, { dimValue: 2 }] } } });
  });
}

function withClasses(manifest: any, classes: unknown[], extra: Record<string, unknown> = {}) {
  return { ...manifest, ...extra, featureSchema: { ...manifest.featureSchema, output: { ...manifest.featureSchema.output, classes } } };
}

describe("class order is checked against every classifier operator", () => {
  it("TreeEnsembleClassifier without ZipMap: classes [1, 0] against classlabels_int64s [0, 1] is 422; [0, 1] registers and scores like the reference", async () => {
    const { manifest, bytes } = await fixture("tree-classifier-zipmap-int");
    const tree = withoutZipMap(bytes);
    const bad = await register("tree-nozip", withClasses(manifest, [1, 0], { name: "tree-nozip" }), tree);
    expect(bad.status, JSON.stringify(bad.json)).toBe(422);
    expect(bad.json.error.code).toBe("invalid_artifact");
    expect(bad.json.error.message).toMatch(/TreeEnsembleClassifier node .* orders its classes \[0, 1\] but the schema's classes are \[1, 0\]/);
    expect((await call("GET", "/admin/models/tree-nozip", undefined, { authorization: "Bearer test-admin-token" })).status).toBe(404);

    const good = await register("tree-nozip", { ...manifest, name: "tree-nozip" }, tree, ["champion"]);
    expect(good.status, JSON.stringify(good.json)).toBe(201);
    const expected = await repoJson("test/fixtures/onnx/tree-classifier-zipmap-int.expected.json");
    const res = await call("POST", "/v1/models/tree-nozip/predict", { instances: expected.rows.slice(0, 20).map((r: any) => r.features) });
    expect(res.status, res.text).toBe(200);
    res.json.predictions.forEach((p: any, i: number) => expect(Math.abs(p.score - expected.rows[i].expected.score)).toBeLessThan(1e-5));
  });

  it("LinearClassifier: reversed classes are 422 naming the operator", async () => {
    const { manifest, bytes } = await fixture("linear-classifier");
    const bad = await register("linear-reversed", withClasses(manifest, [1, 0], { name: "linear-reversed" }), bytes);
    expect(bad.status).toBe(422);
    expect(bad.json.error.message).toMatch(/LinearClassifier node .* \[0, 1\] .* \[1, 0\]/);
  });

  it("ZipMap over a tree: reversed classes are 422", async () => {
    const { manifest, bytes } = await fixture("tree-classifier-zipmap-int");
    const bad = await register("zip-reversed", withClasses(manifest, [1, 0], { name: "zip-reversed" }), bytes);
    expect(bad.status).toBe(422);
    expect(bad.json.error.message).toMatch(/(TreeEnsembleClassifier|ZipMap) node .* orders its classes \[0, 1\]/);
  });

  it("SVMClassifier: its classlabels_ints are checked too (string labels against int classes)", async () => {
    const { manifest, bytes } = await fixture("linear-classifier");
    const svm = rewrite(bytes, (m) => {
      const node = m.graph!.node!.find((n) => n.opType === "LinearClassifier")!;
      node.opType = "SVMClassifier";
      node.attribute = [onnx.AttributeProto.create({ name: "classlabels_strings", type: onnx.AttributeProto.AttributeType.STRINGS, strings: [new TextEncoder().encode("good"), new TextEncoder().encode("bad")] })];
    });
    const bad = await register("svm-labels", { ...manifest, name: "svm-labels" }, svm);
    expect(bad.status).toBe(422);
    expect(bad.json.error.message).toMatch(/SVMClassifier node .* orders its classes \[good, bad\] but the schema's classes are \[0, 1\]/);
  });
});

describe("numbers the model's float32 input cannot carry", () => {
  it("1e39 (finite double, +Inf as float32) is 422 naming the feature, /v1 and /v2", async () => {
    const v1 = await call("POST", "/v1/models/open-income/predict", { features: { ...ROW, Income: 1e39 } });
    expect(v1.status, v1.text).toBe(422);
    expect(v1.json.error.details).toEqual([{ path: "features.Income", message: expect.stringMatching(/^1e\+39 overflows float32/) }]);
    const columns = (await repoJson("models/credit-risk-lr.manifest.json")).featureSchema.input.columns as { feature: string; oneHot?: string }[];
    const vector = columns.map((c) => (c.oneHot ? ((ROW as any)[c.feature] === c.oneHot ? 1 : 0) : c.feature === "Income" ? -1e39 : (ROW as any)[c.feature]));
    const v2 = await call("POST", "/v2/models/open-income/infer", { inputs: [{ name: "float_input", shape: [1, 26], datatype: "FP32", data: vector }] });
    expect(v2.status).toBe(422);
    expect(v2.json.error).toMatch(/\(Income\): -1e\+39 overflows float32/);
  });

  it("1e999 says the number must be finite", async () => {
    const raw = JSON.stringify({ features: { ...ROW, Income: 0 } }).replace('"Income":0', '"Income":1e999');
    const res = await call("POST", "/v1/models/open-income/predict", raw);
    expect(res.status).toBe(422);
    expect(res.json.error.details[0]).toEqual({ path: "features.Income", message: "expected a finite number, got Infinity" });
  });
});

describe("Open Inference Protocol REST, field by field", () => {
  it("model metadata: platform onnx_onnxv1, every requestable version, scalar parameters, -1 for unnamed dynamic dimensions", async () => {
    const meta = await call("GET", "/v2/models/credit-risk/versions/1.1.0");
    expect(meta.status).toBe(200);
    expect(meta.json.platform).toBe("onnx_onnxv1");
    expect(meta.json.versions).toEqual(["1.1.0", "1.0.0"]);
    expect(meta.json.parameters.version).toBe("1.1.0");
    for (const v of Object.values(meta.json.parameters)) expect(["string", "number", "boolean"]).toContain(typeof v);
    expect(meta.json.parameters.features.split(",")).toContain("Income");

    // The same logistic model with its batch dimension left unnamed (no dim_param, no dim_value).
    const { manifest, bytes } = await fixture("lr-gemm-sigmoid");
    const unnamed = rewrite(bytes, (m) => {
      for (const v of [...m.graph!.input!, ...m.graph!.output!]) {
        const dims = v.type?.tensorType?.shape?.dim;
        if (dims?.length) dims[0] = onnx.TensorShapeProto.Dimension.create({});
      }
    });
    expect((await register("lr_unnamed", { ...manifest, name: "lr_unnamed" }, unnamed, ["champion"])).status).toBe(201);
    const un = await call("GET", "/v2/models/lr_unnamed");
    expect(un.status).toBe(200);
    for (const t of [...un.json.inputs, ...un.json.outputs]) expect(t.shape[0]).toBe(-1);
    expect(un.json.inputs[0].shape[1]).toBe(manifest.featureSchema.input.columns.length);
  });

  it("model names may contain underscores", async () => {
    const res = await call("POST", "/v1/models/lr_unnamed/predict", { features: (await repoJson("test/fixtures/onnx/lr-gemm-sigmoid.expected.json")).rows[0].features });
    expect(res.status, res.text).toBe(200);
    expect((await call("GET", "/v2/models/lr_unnamed/ready")).json).toMatchObject({ name: "lr_unnamed", ready: true });
  });

  it('errors are { "error": "<message>" } on every /v2 path, with the field in the message', async () => {
    const cases: [string, string, unknown, number, RegExp][] = [
      ["POST", "/v2/models/credit-risk/infer", { inputs: [{ name: "Age", shape: [1], datatype: "FLOAT", data: [30] }] }, 422, /inputs\[0\]\.datatype/],
      ["POST", "/v2/models/credit-risk/infer", { inputs: [{ name: "Age", shape: [1], datatype: "INT64", data: [30] }], parameters: { nested: { a: 1 } } }, 422, /parameters\.nested: parameter values must be a string, number or boolean/],
      ["POST", "/v2/models/credit-risk/infer", "{not json", 400, /not valid JSON/],
      ["GET", "/v2/models/no-such-model", undefined, 404, /model 'no-such-model'.* not found/],
      ["GET", "/v2/models/credit-risk/versions/9.9.9", undefined, 404, /9\.9\.9/],
      ["GET", "/v2/models/BAD!", undefined, 400, /invalid model name/],
      ["GET", "/v2/nowhere", undefined, 404, /no route/],
    ];
    for (const [method, path, body, status, message] of cases) {
      const res = await call(method, path, body);
      expect(res.status, `${method} ${path}: ${res.text}`).toBe(status);
      expect(Object.keys(res.json)).toEqual(["error"]);
      expect(typeof res.json.error).toBe("string");
      expect(res.json.error).toMatch(message);
    }
    // Outside /v2 the API keeps its own shape.
    expect((await call("GET", "/v1/nowhere")).json.error.code).toBe("not_found");
  });

  it("server metadata lists the binary tensor data extension", async () => {
    expect((await call("GET", "/v2")).json.extensions).toContain("binary_tensor_data");
  });
});

/** Builds an extension request: JSON header, then each tensor's bytes. */
function binaryRequest(header: unknown, blocks: Uint8Array[]): { body: Uint8Array; headerLength: number } {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const body = new Uint8Array(json.length + blocks.reduce((s, b) => s + b.length, 0));
  body.set(json);
  let pos = json.length;
  for (const b of blocks) body.set(b, (pos += b.length) - b.length);
  return { body, headerLength: json.length };
}

async function postBinary(path: string, header: unknown, blocks: Uint8Array[], headerLength?: number) {
  const req = binaryRequest(header, blocks);
  const res = await SELF.fetch(`http://worker${path}`, {
    method: "POST",
    headers: { "content-type": "application/octet-stream", "inference-header-content-length": String(headerLength ?? req.headerLength) },
    body: req.body,
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  const n = Number(res.headers.get("inference-header-content-length") ?? bytes.length);
  return { status: res.status, headers: res.headers, json: JSON.parse(new TextDecoder().decode(bytes.subarray(0, n))), rest: bytes.subarray(n) };
}

function bytesOf(strings: string[]): Uint8Array {
  const parts = strings.map((s) => new TextEncoder().encode(s));
  const out = new Uint8Array(parts.reduce((s, p) => s + 4 + p.length, 0));
  const view = new DataView(out.buffer);
  let pos = 0;
  for (const p of parts) {
    view.setUint32(pos, p.length, true);
    out.set(p, pos + 4);
    pos += 4 + p.length;
  }
  return out;
}

describe("binary tensor data extension", () => {
  const columns = async () => (await repoJson("models/credit-risk-lr.manifest.json")).featureSchema.input.columns as { feature: string; oneHot?: string }[];

  it("a binary FP32 input and a binary_data output give the JSON answer's numbers", async () => {
    const vector = (await columns()).map((c) => (c.oneHot ? ((ROW as any)[c.feature] === c.oneHot ? 1 : 0) : (ROW as any)[c.feature]));
    const input = new Float32Array([...vector, ...vector]);
    const res = await postBinary(
      "/v2/models/credit-risk/infer",
      { inputs: [{ name: "float_input", shape: [2, 26], datatype: "FP32", parameters: { binary_data_size: input.byteLength } }], outputs: [{ name: "probabilities", parameters: { binary_data: true } }, { name: "label" }] },
      [new Uint8Array(input.buffer)],
    );
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    const [probs, label] = res.json.outputs;
    expect(probs).toEqual({ name: "probabilities", datatype: "FP32", shape: [2, 2], parameters: { binary_data_size: 16 } });
    expect(label.data).toHaveLength(2); // not asked as binary: JSON data
    expect(res.rest.length).toBe(16);
    const scores = new Float32Array(res.rest.slice().buffer);
    expect(scores[1]).toBeCloseTo(predictLogistic(lrParams, ROW), 5);
    expect(scores[3]).toBe(scores[1]);

    const json = await call("POST", "/v2/models/credit-risk/infer", { inputs: [{ name: "float_input", shape: [2, 26], datatype: "FP32", data: [...vector, ...vector] }] });
    expect(Array.from(scores)).toEqual(json.json.outputs.find((o: any) => o.name === "probabilities").data);
  });

  it("feature-named inputs in binary (INT64, FP32, BYTES) with binary_data_output for every output", async () => {
    const schema = (await repoJson("models/credit-risk-lr.manifest.json")).featureSchema.features as { name: string; type: string }[];
    const inputs: unknown[] = [];
    const blocks: Uint8Array[] = [];
    for (const f of schema) {
      const v = (ROW as any)[f.name];
      const block = f.type === "categorical" ? bytesOf([v]) : f.type === "integer" ? new Uint8Array(new BigInt64Array([BigInt(v)]).buffer) : new Uint8Array(new Float32Array([v]).buffer);
      inputs.push({ name: f.name, shape: [1], datatype: f.type === "categorical" ? "BYTES" : f.type === "integer" ? "INT64" : "FP32", parameters: { binary_data_size: block.length } });
      blocks.push(block);
    }
    const res = await postBinary("/v2/models/credit-risk/infer", { inputs, parameters: { binary_data_output: true } }, blocks);
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json.outputs.map((o: any) => [o.name, o.parameters.binary_data_size, "data" in o])).toEqual([
      ["probabilities", 8, false],
      ["label", 8, false],
    ]);
    const probs = new Float32Array(res.rest.slice(0, 8).buffer);
    const label = new BigInt64Array(res.rest.slice(8, 16).buffer);
    expect(probs[1]).toBeCloseTo(predictLogistic(lrParams, ROW), 5);
    expect(Number(label[0])).toBe(probs[1] > 0.5 ? 1 : 0);
  });

  it("sizes that do not match the shape or the body are 422, a bad header length 400, all as { error }", async () => {
    const f = new Uint8Array(new Float32Array(26).buffer);
    const short = await postBinary("/v2/models/credit-risk/infer", { inputs: [{ name: "float_input", shape: [2, 26], datatype: "FP32", parameters: { binary_data_size: f.length } }] }, [f]);
    expect(short.status).toBe(422);
    expect(short.json.error).toMatch(/binary_data_size is 104 bytes; 52 FP32 values take 208/);
    const extra = await postBinary("/v2/models/credit-risk/infer", { inputs: [{ name: "float_input", shape: [1, 26], datatype: "FP32", parameters: { binary_data_size: f.length } }] }, [f, new Uint8Array(4)]);
    expect(extra.status).toBe(422);
    expect(extra.json.error).toMatch(/4 bytes of tensor data that no input's binary_data_size claims/);
    const both = await postBinary("/v2/models/credit-risk/infer", { inputs: [{ name: "float_input", shape: [1, 26], datatype: "FP32", data: Array(26).fill(0), parameters: { binary_data_size: f.length } }] }, [f]);
    expect(both.status).toBe(422);
    expect(both.json.error).toMatch(/either data or parameters\.binary_data_size/);
    const res = await SELF.fetch("http://worker/v2/models/credit-risk/infer", { method: "POST", headers: { "inference-header-content-length": "99999" }, body: "{}" });
    expect(res.status).toBe(400);
    expect(((await res.json()) as any).error).toMatch(/inference-header-content-length must be a byte count/);
  });
});

describe("binary tensor codec, every datatype", () => {
  it("decodes little-endian values of each width, FP16 included, and BYTES both ways", async () => {
    const { decodeTensor, encodeTensor } = await import("../src/serving/binary-tensors");
    const le = (build: (v: DataView) => void, size: number) => {
      const b = new Uint8Array(size);
      build(new DataView(b.buffer));
      return b;
    };
    expect(decodeTensor(new Uint8Array([1, 0]), "BOOL", 2, "x")).toEqual([true, false]);
    expect(decodeTensor(new Uint8Array([0xff, 0x01]), "INT8", 2, "x")).toEqual([-1, 1]);
    expect(decodeTensor(new Uint8Array([0xff, 0x01]), "UINT8", 2, "x")).toEqual([255, 1]);
    expect(decodeTensor(le((v) => (v.setInt16(0, -300, true), v.setUint16(2, 65000, true)), 4), "INT16", 2, "x")).toEqual([-300, -536]);
    expect(decodeTensor(le((v) => v.setUint16(0, 65000, true), 2), "UINT16", 1, "x")).toEqual([65000]);
    // FP16: 1.0, -2.0, the largest (65504), the smallest subnormal (2^-24), +Infinity.
    expect(decodeTensor(le((v) => [0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00].forEach((h, i) => v.setUint16(2 * i, h, true)), 10), "FP16", 5, "x")).toEqual([1, -2, 65504, 2 ** -24, Infinity]);
    expect(decodeTensor(le((v) => v.setInt32(0, -123456, true), 4), "INT32", 1, "x")).toEqual([-123456]);
    expect(decodeTensor(le((v) => v.setUint32(0, 4000000000, true), 4), "UINT32", 1, "x")).toEqual([4000000000]);
    expect(decodeTensor(le((v) => v.setBigInt64(0, -(2n ** 40n), true), 8), "INT64", 1, "x")).toEqual([-(2 ** 40)]);
    expect(decodeTensor(le((v) => v.setBigUint64(0, 2n ** 50n, true), 8), "UINT64", 1, "x")).toEqual([2 ** 50]);
    expect(decodeTensor(le((v) => v.setFloat32(0, 0.1, true), 4), "FP32", 1, "x")).toEqual([Math.fround(0.1)]);
    expect(decodeTensor(le((v) => v.setFloat64(0, 0.1, true), 8), "FP64", 1, "x")).toEqual([0.1]);
    const strings = ["rent", "", "été"];
    expect(decodeTensor(encodeTensor(strings, "BYTES"), "BYTES", 3, "x")).toEqual(strings);
    expect(() => decodeTensor(encodeTensor(strings, "BYTES").subarray(0, 9), "BYTES", 3, "inputs[0]")).toThrow(/inputs\[0\]: BYTES element 1 claims 0 bytes|truncated|BYTES element/);
    expect(() => decodeTensor(new Uint8Array(6), "FP32", 2, "inputs[1]")).toThrow(/inputs\[1\]: binary_data_size is 6 bytes; 2 FP32 values take 8/);
    expect(Array.from(new Float32Array(encodeTensor(new Float32Array([1.5, -2]), "FP32").buffer))).toEqual([1.5, -2]);
  });
});
