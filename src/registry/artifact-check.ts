/**
 * Validation of an ONNX artifact against its declared feature schema, before anything is written.
 *
 * The artifact must decode as ONNX, load in onnxruntime-web (the same runtime that will serve it),
 * expose exactly the inputs the schema builds with matching types and widths, expose the declared
 * outputs, and score a probe row built from the schema to sane values (finite; probabilities in
 * [0, 1] summing to 1). Each failure is an `invalid_artifact` error that says which check failed.
 */
import type * as Ort from "onnxruntime-web";
import { ApiError } from "../http/errors";
import { exampleRow, rowValidator } from "../inference/features";
import { classifierLabels, decodeModel, type ModelInfo, type ModelProto, type OperatorClasses } from "../inference/onnx-model";
import { decodeOutputs, requestedOutputs } from "../inference/outputs";
import { createLoadedModel, type LoadedModel } from "../inference/sessions";
import { buildFeeds } from "../inference/tensors";
import { getOrt } from "../inference/ort";
import { checkExamples } from "./examples";
import type { FeatureSchema, ManifestExample } from "./manifest";

function fail(message: string): never {
  throw new ApiError("invalid_artifact", message);
}

/**
 * onnxruntime's own messages carry its internals (C++ source paths, line numbers, node names of the
 * graph): they go to the log for the operator, never on the wire, as the README promises.
 */
function runtimeFailure(stage: "load" | "decode" | "probe", error: unknown) {
  console.warn(JSON.stringify({ level: "warn", msg: `registration: onnxruntime ${stage} failed`, detail: String((error as Error)?.message ?? error).slice(0, 2000) }));
}

export async function checkArtifact(sha256: string, bytes: Uint8Array, schema: FeatureSchema, examples?: ManifestExample[]): Promise<ModelInfo> {
  let proto: ModelProto;
  try {
    proto = decodeModel(bytes);
  } catch (error) {
    runtimeFailure("decode", error);
    fail("artifact does not load: it is not a valid ONNX model (its protobuf does not decode)");
  }
  checkClassLabels(classifierLabels(proto), schema);
  let loaded: Awaited<ReturnType<typeof createLoadedModel>>;
  try {
    loaded = await createLoadedModel(sha256, bytes);
  } catch (error) {
    runtimeFailure("load", error);
    fail("artifact does not load in onnxruntime-web: it is not a valid ONNX model, or uses operators or types this runtime does not support");
  }
  const { model, release } = loaded;
  try {
    checkInputs(model, schema);
    checkOutputs(model, schema);
    await probe(model, schema);
    if (examples?.length) await checkExamples(model, schema, examples);
    return model.info;
  } finally {
    await release();
  }
}

function meta(list: readonly Ort.InferenceSession.ValueMetadata[], name: string) {
  return list.find((m) => m.name === name);
}

function tensorMeta(m: Ort.InferenceSession.ValueMetadata | undefined) {
  return m && m.isTensor ? (m as Ort.InferenceSession.ValueMetadata & { type: string; shape: readonly (number | string)[] }) : undefined;
}

function checkInputs(model: LoadedModel, schema: FeatureSchema) {
  const declared =
    schema.input.kind === "dense"
      ? [{ name: schema.input.name, dtype: "float32", width: schema.input.columns.length }]
      : schema.input.tensors.map((t) => ({ name: t.name, dtype: t.dtype, width: 1 }));
  const names = new Set(declared.map((d) => d.name));
  const extra = model.inputNames.filter((n) => !names.has(n));
  if (extra.length) fail(`model has inputs the schema does not build: ${extra.join(", ")}`);
  for (const d of declared) {
    const m = tensorMeta(meta(model.inputMetadata, d.name));
    if (!m) fail(`schema input '${d.name}' is not a tensor input of the model (model inputs: ${model.inputNames.join(", ")})`);
    if (m.type !== d.dtype) fail(`input '${d.name}' is ${m.type} in the model but ${d.dtype} in the schema`);
    if (m.shape.length !== 2) fail(`input '${d.name}' must be 2-D [N, ${d.width}], model declares shape [${m.shape.join(", ")}]`);
    const width = m.shape[1];
    if (typeof width === "number" && width !== d.width) fail(`input '${d.name}' has ${width} columns in the model but the schema builds ${d.width}`);
  }
}

/**
 * Every classifier operator orders its probability columns by its own class-label attribute; the
 * schema's `classes` name those columns. A different order would silently invert every score, so
 * any classifier node (TreeEnsembleClassifier, LinearClassifier, SVMClassifier, ZipMap) whose labels
 * differ from the schema's classes, in order, is refused. Labels compare as text: the manifest's
 * JSON `1` and the model's int64 1 are the same class.
 */
function checkClassLabels(operators: OperatorClasses[], schema: FeatureSchema) {
  if (schema.output.kind !== "classifier") return;
  const declared = schema.output.classes.map(String);
  for (const op of operators) {
    const labels = op.classes.map(String);
    if (labels.length !== declared.length || labels.some((c, i) => c !== declared[i])) {
      fail(`${op.op} node '${op.node}' orders its classes [${labels.join(", ")}] but the schema's classes are [${declared.join(", ")}]; list output.classes in the model's order`);
    }
  }
}

function checkOutputs(model: LoadedModel, schema: FeatureSchema) {
  const out = schema.output;
  const need = (name: string, types: string[]) => {
    const m = tensorMeta(meta(model.outputMetadata, name));
    if (!m) fail(`declared output '${name}' is not a tensor output of the model (model outputs: ${model.outputNames.join(", ")})`);
    if (!types.includes(m.type)) fail(`output '${name}' is ${m.type}; expected ${types.join(" or ")}`);
    return m;
  };
  if (out.kind === "regressor") {
    need(out.value, ["float32"]);
    return;
  }
  const probs = need(out.probabilities, ["float32"]);
  const width = probs.shape[probs.shape.length - 1];
  if (typeof width === "number" && width !== out.classes.length) fail(`output '${out.probabilities}' has ${width} classes; the schema declares ${out.classes.length}`);
  if (out.label) need(out.label, ["int64", "string", "int32"]);
}

async function probe(model: LoadedModel, schema: FeatureSchema) {
  const ort = await getOrt();
  const row = exampleRow(schema);
  const rows = rowValidator(schema).resolve([row, row], (i) => `probe[${i}]`);
  let results: Ort.InferenceSession.OnnxValueMapType;
  try {
    results = await model.run(buildFeeds(ort, schema, rows), requestedOutputs(schema.output));
  } catch (error) {
    runtimeFailure("probe", error);
    fail("model failed to score a probe row built from the schema (its inputs do not fit the graph, or an operator failed at run time)");
  }
  for (const name of requestedOutputs(schema.output)) {
    const dims = results[name].dims;
    if (dims[0] !== rows.n) fail(`output '${name}' returned ${dims[0]} rows for a batch of ${rows.n}`);
  }
  const { predictions } = decodeOutputs(schema.output, results, rows.n, model.info.zipMapClasses);
  for (const p of predictions) {
    if ("value" in p) {
      if (!Number.isFinite(p.value)) fail("model returned a non-finite regression value for the probe row");
      continue;
    }
    const values = Object.values(p.probabilities);
    const sum = values.reduce((a, b) => a + b, 0);
    if (values.some((v) => !(v >= 0 && v <= 1)) || Math.abs(sum - 1) > 1e-3) {
      fail(`model's probabilities for the probe row are not a distribution (sum ${sum.toFixed(4)}); check post_transform`);
    }
  }
}
