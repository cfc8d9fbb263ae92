/**
 * Scores rows through onnxruntime-web (its Node build: the same WASM the Worker runs) with the
 * tensors the inferred manifest declares, so the score reference and the registered metrics come
 * from the model itself. Rows are encoded by scripts/lib/predict-reference.ts (the missing-value
 * policies and one-hot columns as the Worker applies them); a ZipMap is rewritten to its
 * probability tensor as the Worker does at session creation (src/inference/onnx-model.ts).
 */
import * as ort from "onnxruntime-web";
import { prepareForWeb } from "../../src/inference/onnx-model.ts";
import { encodeDense, resolveValue, type RawRow } from "../../scripts/lib/predict-reference.ts";
import type { FeatureSchema } from "../../src/registry/manifest.ts";

ort.env.wasm.numThreads = 1;
ort.env.logLevel = "error";

export interface Scored {
  /** Per row: class probabilities in manifest class order, or [value] for a regressor. */
  outputs: number[][];
}

function feeds(schema: FeatureSchema, rows: RawRow[]): Record<string, ort.Tensor> {
  const input = schema.input;
  const features = schema.features as Parameters<typeof encodeDense>[0];
  if (input.kind === "dense") {
    const data = new Float32Array(rows.length * input.columns.length);
    rows.forEach((r, i) => data.set(encodeDense(features, input.columns, r), i * input.columns.length));
    return { [input.name]: new ort.Tensor("float32", data, [rows.length, input.columns.length]) };
  }
  const out: Record<string, ort.Tensor> = {};
  for (const t of input.tensors) {
    const spec = features.find((f) => f.name === t.feature)!;
    const values = rows.map((r) => resolveValue(spec, r));
    const dims = [rows.length, 1];
    if (t.dtype === "float32") out[t.name] = new ort.Tensor("float32", Float32Array.from(values, (v) => (typeof v === "boolean" ? Number(v) : Number(v))), dims);
    else if (t.dtype === "int64") out[t.name] = new ort.Tensor("int64", BigInt64Array.from(values, (v) => BigInt(Math.trunc(Number(v)))), dims);
    else if (t.dtype === "bool") out[t.name] = new ort.Tensor("bool", Uint8Array.from(values, (v) => (v === true || v === "true" ? 1 : 0)), dims);
    else out[t.name] = new ort.Tensor("string", values.map(String), dims);
  }
  return out;
}

export async function scoreRows(onnxBytes: Uint8Array, schema: FeatureSchema, rows: RawRow[]): Promise<Scored> {
  const prepared = prepareForWeb(onnxBytes);
  const session = await ort.InferenceSession.create(prepared.bytes);
  const out = schema.output;
  const wanted = out.kind === "classifier" ? out.probabilities : out.value;
  const result = await session.run(feeds(schema, rows), [wanted]);
  const tensor = result[wanted];
  const data = tensor.data as Float32Array | Float64Array;
  const width = rows.length ? data.length / rows.length : 0;
  const outputs: number[][] = [];
  for (let i = 0; i < rows.length; i++) outputs.push(Array.from(data.subarray(i * width, (i + 1) * width)));
  await session.release();
  return { outputs };
}
