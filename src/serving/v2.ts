/**
 * Open Inference Protocol (KServe / Triton "v2") REST endpoints, so existing v2 clients work.
 *
 *   GET  /v2                       server metadata
 *   GET  /v2/health/live|ready
 *   GET  /v2/models/:name[/versions/:v]          model metadata (model tensor inputs/outputs)
 *   GET  /v2/models/:name[/versions/:v]/ready
 *   POST /v2/models/:name[/versions/:v]/infer
 *
 * Without a version the champion answers. An infer request may name its inputs either
 *  - after features (or a per-feature model's tensor names): shape [N] or [N, 1] each; rows are
 *    validated against the feature schema exactly like /v1 (null = missing, handled by policy); or
 *  - after a dense model's 2-D input tensor: shape [N, C]; each column is checked against the
 *    schema (bounds, integers, one-hot and boolean columns 0/1).
 */
import { Hono, type Context } from "hono";
import type * as Ort from "onnxruntime-web";
import { z } from "zod";
import { ApiError, type FieldIssue } from "../http/errors";
import { intVar, readJson } from "../http/limits";
import { FLOAT32_MAX } from "../inference/features";
import { getOrt } from "../inference/ort";
import { loadModel, runRows, runTensors } from "../inference/predictor";
import { requestedOutputs } from "../inference/outputs";
import { modelNameSchema, semverSchema, zodIssues, type FeatureSchema } from "../registry/manifest";
import { resolveVersion } from "../registry/resolver";
import { listVersions, registryDb } from "../registry/store";
import { decodeTensor, encodeTensor, HEADER_LENGTH, joinBody, splitBody } from "./binary-tensors";
import { isolateMetrics } from "../observability/isolate-metrics";
import { readiness } from "./health";
import { dispatch, dispatchHeaders, type Dispatch } from "./dispatch";
import { emitFailure, emitPrediction, failureOf } from "./events";
import { assertFinite, decodeOutputs } from "../inference/outputs";

type V2Env = { Bindings: Env; Variables: { requestId: string } };

const DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"] as const;
type Datatype = (typeof DATATYPES)[number];

/** The protocol's `$parameters`: values are strings, numbers or booleans only. */
const parametersSchema = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()], { error: "parameter values must be a string, number or boolean" }));

export const inferRequest = z
  .object({
    id: z.string().max(256).optional(),
    parameters: parametersSchema.optional(),
    inputs: z
      .array(
        z
          .object({
            name: z.string().min(1),
            shape: z.array(z.number().int().nonnegative()).min(1).max(4),
            datatype: z.enum(DATATYPES),
            data: z.array(z.unknown()).optional(),
            parameters: parametersSchema.optional(),
          })
          .refine((i) => (i.data === undefined) !== (i.parameters?.binary_data_size === undefined), {
            error: "give either data or parameters.binary_data_size (binary tensor data extension), not both",
          }),
      )
      .min(1),
    outputs: z.array(z.object({ name: z.string().min(1), parameters: parametersSchema.optional() })).optional(),
  })
  .strict();
type InferInput = z.infer<typeof inferRequest>["inputs"][number] & { data: unknown[] };
type InferRequest = Omit<z.infer<typeof inferRequest>, "inputs"> & { inputs: InferInput[] };

const ORT_TO_V2: Record<string, Datatype> = { float32: "FP32", float64: "FP64", int64: "INT64", int32: "INT32", string: "BYTES", bool: "BOOL", uint8: "UINT8" };

function flatten(data: unknown[]): unknown[] {
  return data.some(Array.isArray) ? (data as unknown[]).flat(Infinity as 1) : data;
}

function target(c: Context<V2Env>): { name: string; version?: string } {
  const name = modelNameSchema.safeParse(c.req.param("name"));
  if (!name.success) throw new ApiError("bad_request", `invalid model name '${c.req.param("name")}'`);
  const versionParam = c.req.param("version");
  if (versionParam !== undefined && !semverSchema.safeParse(versionParam).success) throw new ApiError("bad_request", `invalid version '${versionParam}'`);
  return { name: name.data, version: versionParam };
}

/** Metadata and readiness describe the version an unversioned request would get by default. */
async function selected(c: Context<V2Env>) {
  const t = target(c);
  return resolveVersion(c.env, t.name, { version: t.version });
}

/**
 * A dimension as the protocol writes it: variable-size dimensions are -1. onnxruntime-web reports a
 * named dynamic dimension by its name and an unnamed one as 2^32 - 1 (-1 read as unsigned).
 */
function dimension(d: number | string): number {
  return typeof d === "number" && d >= 0 && d < 0xffffffff ? d : -1;
}

function tensorMetadata(list: readonly Ort.InferenceSession.ValueMetadata[]) {
  return list.map((m) =>
    m.isTensor
      ? { name: m.name, datatype: ORT_TO_V2[m.type] ?? m.type.toUpperCase(), shape: m.shape.map(dimension) }
      : { name: m.name, datatype: "BYTES", shape: [-1] },
  );
}

async function metadata(c: Context<V2Env>) {
  const { version } = await selected(c);
  const [model, all] = await Promise.all([loadModel(c.env, version), listVersions(registryDb(c.env.DB), version.modelName)]);
  const schema = version.featureSchema;
  return c.json({
    name: version.modelName,
    // Every version a client may request explicitly (archived ones answer 409), newest first.
    versions: all.filter((v) => v.status !== "archived").map((v) => v.version),
    platform: "onnx_onnxv1",
    inputs: tensorMetadata(model.inputMetadata),
    outputs: tensorMetadata(model.outputMetadata).filter((o) => requestedOutputs(schema.output).includes(o.name)),
    // The protocol allows string, number and boolean values only: lists travel comma-separated.
    parameters: {
      version: version.version,
      task: version.task,
      features: schema.features.map((f) => f.name).join(","),
      feature_types: schema.features.map((f) => f.type).join(","),
      ...(schema.output.kind === "classifier" ? { classes: schema.output.classes.map(String).join(",") } : {}),
    },
  });
}

async function modelReady(c: Context<V2Env>) {
  const { version } = await selected(c);
  try {
    await loadModel(c.env, version);
    return c.json({ name: version.modelName, version: version.version, ready: true });
  } catch {
    return c.json({ name: version.modelName, version: version.version, ready: false }, 503);
  }
}

/** Feature-named inputs -> row objects for the /v1 validation path. */
function rowsFromFeatureInputs(schema: FeatureSchema, inputs: InferInput[], featureOf: Map<string, string>): unknown[] {
  const n = inputs[0].shape[0];
  const issues: FieldIssue[] = [];
  const rows: Record<string, unknown>[] = Array.from({ length: n }, () => ({}));
  const types = new Map(schema.features.map((f) => [f.name, f.type]));
  inputs.forEach((input, k) => {
    const path = `inputs[${k}]`;
    const feature = featureOf.get(input.name)!;
    const [rowsIn, width = 1, ...rest] = input.shape;
    if (rowsIn !== n || width !== 1 || rest.length) return issues.push({ path: `${path}.shape`, message: `expected [${n}] or [${n}, 1], got [${input.shape.join(", ")}]` });
    const data = flatten(input.data);
    if (data.length !== n) return issues.push({ path: `${path}.data`, message: `has ${data.length} values; shape needs ${n}` });
    const type = types.get(feature);
    const okType =
      (type === "categorical" && input.datatype === "BYTES") ||
      (type === "boolean" && (input.datatype === "BOOL" || input.datatype === "INT64" || input.datatype === "INT32")) ||
      ((type === "numeric" || type === "integer") && input.datatype !== "BYTES" && input.datatype !== "BOOL");
    if (!okType) return issues.push({ path: `${path}.datatype`, message: `${input.datatype} cannot carry ${type} feature '${feature}'` });
    data.forEach((v, r) => {
      rows[r][feature] = type === "boolean" && typeof v === "number" ? (v === 1 ? true : v === 0 ? false : v) : v;
    });
  });
  if (issues.length) throw new ApiError("invalid_input", `invalid inference request: ${issues[0].path}: ${issues[0].message}`, issues);
  return rows;
}

/** A dense model's raw [N, C] input: every column checked against the feature it encodes. */
function denseFeeds(ort: typeof Ort, schema: FeatureSchema, input: InferInput): { feeds: Record<string, Ort.Tensor>; rows: number } {
  if (schema.input.kind !== "dense") throw new Error("unreachable");
  const columns = schema.input.columns;
  const [n, width, ...rest] = input.shape;
  if (width !== columns.length || rest.length) throw new ApiError("invalid_input", `input '${input.name}' must have shape [N, ${columns.length}]`, [{ path: "inputs[0].shape", message: `got [${input.shape.join(", ")}]` }]);
  if (input.datatype === "BYTES" || input.datatype === "BOOL") throw new ApiError("invalid_input", `input '${input.name}' must be numeric (FP32)`, [{ path: "inputs[0].datatype", message: `got ${input.datatype}` }]);
  const data = flatten(input.data);
  if (data.length !== n * width) throw new ApiError("invalid_input", `input '${input.name}' has ${data.length} values; shape [${n}, ${width}] needs ${n * width}`, [{ path: "inputs[0].data", message: "length does not match shape" }]);
  const byName = new Map(schema.features.map((f) => [f.name, f]));
  const issues: FieldIssue[] = [];
  const values = new Float32Array(n * width);
  for (let i = 0; i < data.length && issues.length < 50; i++) {
    const v = data[i];
    const col = columns[i % width];
    const f = byName.get(col.feature)!;
    const path = `inputs[0].data[${Math.floor(i / width)}][${i % width}] (${col.feature}${col.oneHot ? `=${col.oneHot}` : ""})`;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      issues.push({ path, message: `expected a finite number, got ${v === null ? "null" : typeof v === "number" ? String(v) : typeof v}` });
      continue;
    }
    if (Math.abs(v) > FLOAT32_MAX) {
      issues.push({ path, message: `${v} overflows float32, the model's input type (largest magnitude ${FLOAT32_MAX})` });
      continue;
    }
    if (col.oneHot !== undefined || f.type === "boolean") {
      if (v !== 0 && v !== 1) issues.push({ path, message: "one-hot and boolean columns must be 0 or 1" });
    } else if (f.type === "numeric" || f.type === "integer") {
      if (f.type === "integer" && !Number.isInteger(v)) issues.push({ path, message: "expected an integer" });
      if (f.min !== undefined && v < f.min) issues.push({ path, message: `must be >= ${f.min}` });
      if (f.max !== undefined && v > f.max) issues.push({ path, message: `must be <= ${f.max}` });
    }
    values[i] = v;
  }
  if (issues.length) throw new ApiError("invalid_input", `invalid inference request: ${issues[0].path}: ${issues[0].message}`, issues);
  return { feeds: { [schema.input.name]: new ort.Tensor("float32", values, [n, width]) }, rows: n };
}

/**
 * The request body: plain JSON, or (binary tensor data extension) a JSON header of
 * Inference-Header-Content-Length bytes followed by the tensors that carry binary_data_size.
 */
async function readInferRequest(c: Context<V2Env>): Promise<InferRequest> {
  const headerLength = c.req.header(HEADER_LENGTH);
  let raw: unknown;
  let rest: Uint8Array | undefined;
  if (headerLength !== undefined) ({ header: raw, rest } = splitBody(new Uint8Array(await c.req.arrayBuffer()), headerLength));
  else raw = await readJson(c);
  const parsed = inferRequest.safeParse(raw);
  if (!parsed.success) throw new ApiError("invalid_input", "invalid inference request", zodIssues(parsed.error));
  const req = parsed.data;
  let pos = 0;
  const inputs = req.inputs.map((input, k) => {
    const size = input.parameters?.binary_data_size;
    if (size === undefined) return input as InferInput;
    const path = `inputs[${k}].parameters.binary_data_size`;
    if (!rest) throw new ApiError("invalid_input", `${path}: binary tensor data needs the ${HEADER_LENGTH} header`, [{ path, message: `no ${HEADER_LENGTH} header` }]);
    if (typeof size !== "number" || !Number.isInteger(size) || size < 0 || pos + size > rest.length) {
      throw new ApiError("invalid_input", `${path}: ${JSON.stringify(size)} bytes requested at offset ${pos}; the body has ${rest.length} bytes of tensor data`, [{ path, message: "does not fit the body" }]);
    }
    const count = input.shape.reduce((a, b) => a * b, 1);
    const data = decodeTensor(rest.subarray(pos, pos + size), input.datatype, count, `inputs[${k}]`);
    pos += size;
    return { ...input, data };
  });
  if (rest && pos !== rest.length) throw new ApiError("invalid_input", `the body has ${rest.length - pos} bytes of tensor data that no input's binary_data_size claims`, [{ path: "inputs", message: "binary_data_size values do not add up to the body" }]);
  return { ...req, inputs };
}

async function infer(c: Context<V2Env>) {
  const started = performance.now();
  const t = target(c);
  const req = await readInferRequest(c);
  const routed = await dispatch(c, t.name, { version: t.version });
  try {
    return await inferWith(c, routed, req, started);
  } catch (error) {
    emitFailure(c, failureOf("v2", c.get("requestId"), routed, error, started));
    throw error;
  }
}

async function inferWith(c: Context<V2Env>, routed: Dispatch, req: InferRequest, started: number) {
  const { version } = routed;
  const schema = version.featureSchema;
  const maxRows = intVar(c.env.MAX_BATCH_ROWS, 1000);
  const n = req.inputs[0].shape[0];
  if (n > maxRows) throw new ApiError("too_many_rows", `request has ${n} rows; the limit is ${maxRows}`);
  if (n === 0) throw new ApiError("invalid_input", "request has 0 rows", [{ path: "inputs[0].shape", message: "first dimension must be at least 1" }]);

  const available = requestedOutputs(schema.output);
  const wanted = req.outputs?.map((o) => o.name) ?? available;
  const unknown = wanted.filter((w) => !available.includes(w));
  if (unknown.length) throw new ApiError("invalid_input", `unknown output(s): ${unknown.join(", ")}; available: ${available.join(", ")}`, unknown.map((u) => ({ path: "outputs", message: `unknown output '${u}'` })));

  const featureOf = new Map(schema.features.map((f) => [f.name, f.name]));
  if (schema.input.kind === "per_feature") for (const t of schema.input.tensors) featureOf.set(t.name, t.feature);
  const names = req.inputs.map((i) => i.name);
  if (new Set(names).size !== names.length) throw new ApiError("invalid_input", "duplicate input names", [{ path: "inputs", message: "each input name may appear once" }]);

  let run;
  let rows: unknown[] | undefined;
  if (schema.input.kind === "dense" && names.length === 1 && names[0] === schema.input.name) {
    const { feeds, rows } = denseFeeds(await getOrt(), schema, req.inputs[0]);
    run = await runTensors(c.env, version, feeds, rows, available);
  } else {
    const strange = names.filter((nm) => !featureOf.has(nm));
    if (strange.length) {
      const expected = schema.input.kind === "dense" ? `'${schema.input.name}' [N, ${schema.input.columns.length}] or the features` : "the features";
      throw new ApiError("invalid_input", `unknown input(s): ${strange.join(", ")}; send ${expected}`, strange.map((s) => ({ path: "inputs", message: `unknown input '${s}'` })));
    }
    rows = rowsFromFeatureInputs(schema, req.inputs, featureOf);
    run = await runRows(c.env, version, rows, (i) => `row[${i}]`);
  }
  isolateMetrics.recordInference(version.modelName, version.version, run.rows, run.inferenceMs / 1000);
  const decoded = decodeOutputs(schema.output, run.results, run.rows, run.model.info.zipMapClasses);
  assertFinite(decoded, run.rows);
  const { predictions, columns } = decoded;
  emitPrediction(c, { requestId: c.get("requestId"), at: Date.now(), route: "v2", dispatch: routed, resolved: run.resolved, rows, predictions, columns, latencyMs: performance.now() - started, inferenceMs: run.inferenceMs });

  // Binary outputs: those asking parameters.binary_data, or all when the request sets binary_data_output.
  const binaryOutput = (name: string) => {
    const own = req.outputs?.find((o) => o.name === name)?.parameters?.binary_data;
    return own !== undefined ? own === true : req.parameters?.binary_data_output === true;
  };
  const blocks: Uint8Array[] = [];
  const outputs = wanted.map((name) => {
    const t = run.results[name];
    const datatype = ORT_TO_V2[t.type] ?? t.type.toUpperCase();
    const head = { name, datatype, shape: t.dims };
    if (binaryOutput(name)) {
      const bytes = encodeTensor(t.data as ArrayLike<unknown>, datatype);
      blocks.push(bytes);
      return { ...head, parameters: { binary_data_size: bytes.length } };
    }
    const data = Array.from(t.data as ArrayLike<unknown>, (v) => (typeof v === "bigint" ? Number(v) : datatype === "BOOL" ? v === 1 : v));
    return { ...head, data };
  });
  for (const [k, v] of Object.entries(dispatchHeaders(routed))) c.header(k, v);
  c.header("server-timing", `inference;dur=${run.inferenceMs.toFixed(3)}`);
  // `id` echoes the caller's (OIP); parameters.request_id is the server's id, the one /v1/feedback takes.
  const response = { model_name: version.modelName, model_version: version.version, id: req.id ?? c.get("requestId"), parameters: { request_id: c.get("requestId") }, outputs };
  if (!blocks.length) return c.json(response);
  const { body, headerLength } = joinBody(response, blocks);
  c.header(HEADER_LENGTH, String(headerLength));
  return c.body(body, 200, { "content-type": "application/octet-stream" });
}

export const v2Routes = new Hono<V2Env>()
  .get("/", (c) => c.json({ name: "edge-ml-runtime", version: "0.1.0", extensions: ["binary_tensor_data"] }))
  .get("/health/live", (c) => c.json({ live: true }))
  .get("/health/ready", async (c) => {
    const report = await readiness(c.env);
    return c.json({ ready: report.ready }, report.ready ? 200 : 503);
  })
  .get("/models/:name", metadata)
  .get("/models/:name/versions/:version", metadata)
  .get("/models/:name/ready", modelReady)
  .get("/models/:name/versions/:version/ready", modelReady)
  .post("/models/:name/infer", infer)
  .post("/models/:name/versions/:version/infer", infer);
