/**
 * Scores rows with a registered model version: validate rows against the feature schema, build
 * tensors, one session run for the whole batch, decode outputs. The session comes from the
 * isolate's SessionCache, loading the artifact from R2 on first use.
 */
import type * as Ort from "onnxruntime-web";
import { ApiError } from "../http/errors";
import { intVar } from "../http/limits";
import type { ModelVersion } from "../registry/store";
import { rowValidator, type Resolved } from "./features";
import { assertFinite, decodeOutputs, requestedOutputs, type Prediction, type PredictionColumns } from "./outputs";
import { getOrt } from "./ort";
import { SessionCache, type LoadedModel } from "./sessions";
import { buildFeeds } from "./tensors";

let sessions: SessionCache | undefined;

/** The isolate's session cache (sized from SESSION_CACHE_BYTES on first use). */
export function sessionCache(env: Env): SessionCache {
  sessions ??= new SessionCache(intVar(env.SESSION_CACHE_BYTES, 64 * 1024 * 1024));
  return sessions;
}

export function loadModel(env: Env, version: ModelVersion): Promise<LoadedModel> {
  return sessionCache(env).get(version.sha256, version.sizeBytes, async () => {
    const object = await env.ARTIFACTS.get(version.artifactKey);
    if (!object) throw new ApiError("unavailable", `artifact of ${version.modelName}@${version.version} is missing from storage`);
    return new Uint8Array(await object.arrayBuffer());
  });
}

export interface RunResult {
  results: Ort.InferenceSession.OnnxValueMapType;
  /** The validated rows as columns in schema feature order (absent for raw tensor requests). */
  resolved?: Resolved;
  model: LoadedModel;
  rows: number;
  /** Milliseconds spent in tensor building + session run (0 in deployed Workers, whose clocks stop during CPU work). */
  inferenceMs: number;
}

/** Validates `rows` (objects of feature values) and runs them through the model in one batch. */
export async function runRows(env: Env, version: ModelVersion, rows: unknown[], pathOf: (i: number) => string): Promise<RunResult> {
  return runResolved(env, version, rowValidator(version.featureSchema).resolve(rows, pathOf));
}

/** Runs rows the caller already validated (batch scoring validates row by row to set bad rows aside). */
export async function runResolved(env: Env, version: ModelVersion, resolved: Resolved): Promise<RunResult> {
  const schema = version.featureSchema;
  const [ort, model] = await Promise.all([getOrt(), loadModel(env, version)]);
  const started = performance.now();
  const results = await model.run(buildFeeds(ort, schema, resolved), requestedOutputs(schema.output));
  return { results, resolved, model, rows: resolved.n, inferenceMs: performance.now() - started };
}

/** Runs already-built input tensors (Open Inference Protocol tensor requests). */
export async function runTensors(env: Env, version: ModelVersion, feeds: Record<string, Ort.Tensor>, rows: number, outputs: string[]): Promise<RunResult> {
  const model = await loadModel(env, version);
  const started = performance.now();
  const results = await model.run(feeds, outputs);
  return { results, model, rows, inferenceMs: performance.now() - started };
}

export interface ScoreResult {
  predictions: Prediction[];
  columns: PredictionColumns;
  resolved: Resolved;
  inferenceMs: number;
}

/** Validates and scores rows, decoding outputs into predictions. */
export async function score(env: Env, version: ModelVersion, rows: unknown[], pathOf: (i: number) => string): Promise<ScoreResult> {
  return decodeRun(version, await runRows(env, version, rows, pathOf));
}

/** Scores already-validated rows (see runResolved). */
export async function scoreResolved(env: Env, version: ModelVersion, resolved: Resolved): Promise<ScoreResult> {
  return decodeRun(version, await runResolved(env, version, resolved));
}

function decodeRun(version: ModelVersion, run: RunResult): ScoreResult {
  const decodeStarted = performance.now();
  const decoded = decodeOutputs(version.featureSchema.output, run.results, run.rows, run.model.info.zipMapClasses);
  assertFinite(decoded, run.rows);
  const { predictions, columns } = decoded;
  return { predictions, columns, resolved: run.resolved!, inferenceMs: run.inferenceMs + (performance.now() - decodeStarted) };
}
