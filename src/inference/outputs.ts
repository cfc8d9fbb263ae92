/**
 * Turns a model's output tensors into predictions, per the schema's `output` declaration.
 *
 * Classifier: probabilities come from a float [N, C] tensor (a ZipMap was turned into one when the
 * session was created); class labels come from the ZipMap if there was one, else from the schema.
 * The label is the model's own label output when declared (int64 or string tensor), else the
 * most probable class. `score` is the probability of the positive class (declared, or the second
 * of two classes), or of the predicted class for multiclass models without a positive class. Regressor: `value` from the declared output.
 *
 * The same predictions also come as columns (`PredictionColumns`), written in the same pass, for
 * consumers that read every row of every request (monitoring and the prediction log).
 */
import type * as Ort from "onnxruntime-web";
import { ApiError } from "../http/errors";
import type { OutputSpec } from "../registry/manifest";

export type ClassLabel = number | string;

export interface ClassifierPrediction {
  label: ClassLabel;
  score: number;
  probabilities: Record<string, number>;
}
export interface RegressorPrediction {
  value: number;
}
export type Prediction = ClassifierPrediction | RegressorPrediction;

/** A request's predictions as columns: row r of each column belongs to `predictions[r]`. */
export interface PredictionColumns {
  /**
   * Each row's `score` (classifiers) or `value` (regressors), at the output tensor's precision:
   * Float32Array for float outputs (nearly every ONNX model), Float64Array for double outputs.
   */
  scores: Float32Array | Float64Array;
  /** Each row's predicted label as an index into `classes` (all 0 for regressors). */
  labels: Uint32Array;
  /** Class labels as strings (empty for regressors). */
  classes: string[];
}

export interface DecodedOutputs {
  predictions: Prediction[];
  columns: PredictionColumns;
  /** Rows whose score, value or any probability is NaN or infinite (see `assertFinite`). */
  nonFinite: number;
}

/**
 * A model that outputs NaN or infinity for some input has not made a prediction: the request is a
 * model error (500 `model_error`, counted against the version like any server error), never a 200
 * carrying `null` scores.
 */
export function assertFinite(decoded: DecodedOutputs, rows: number): void {
  if (decoded.nonFinite > 0) {
    throw new ApiError("model_error", `the model returned non-finite outputs (NaN or infinity) for ${decoded.nonFinite} of ${rows} row(s); no prediction was made`);
  }
}

/** The output names a session must be asked for. */
export function requestedOutputs(spec: OutputSpec): string[] {
  return spec.kind === "classifier" ? [spec.probabilities, ...(spec.label ? [spec.label] : [])] : [spec.value];
}

function labelsOf(tensor: Ort.Tensor): ClassLabel[] {
  const data = tensor.data as ArrayLike<unknown>;
  return Array.from(data, (v) => (typeof v === "bigint" ? Number(v) : (v as ClassLabel)));
}

export function decodeOutputs(
  spec: OutputSpec,
  results: Ort.InferenceSession.OnnxValueMapType,
  rows: number,
  zipMapClasses?: ClassLabel[],
): DecodedOutputs {
  const labelIndex = new Uint32Array(rows);
  if (spec.kind === "regressor") {
    const values = results[spec.value].data as Float32Array | Float64Array;
    const scores = values instanceof Float64Array ? new Float64Array(rows) : new Float32Array(rows);
    const width = values.length / rows;
    let nonFinite = 0;
    const predictions = Array.from({ length: rows }, (_, r) => {
      const value = (scores[r] = values[r * width]);
      if (value - value !== 0) nonFinite++;
      return { value };
    });
    return { predictions, columns: { scores, labels: labelIndex, classes: [] }, nonFinite };
  }
  const classes = zipMapClasses ?? spec.classes;
  const names = classes.map(String);
  const probs = results[spec.probabilities].data as Float32Array | Float64Array;
  const scores = probs instanceof Float64Array ? new Float64Array(rows) : new Float32Array(rows);
  const width = classes.length;
  const labels = spec.label ? labelsOf(results[spec.label] as Ort.Tensor) : undefined;
  // Declared positive class, else the second of two classes; multiclass without one: the top class.
  const positiveLabel = spec.positiveClass ?? (classes.length === 2 ? classes[1] : undefined);
  const positive = positiveLabel === undefined ? -1 : names.indexOf(String(positiveLabel));
  const out: ClassifierPrediction[] = new Array(rows);
  let nonFinite = 0;
  for (let r = 0; r < rows; r++) {
    const probabilities: Record<string, number> = {};
    let best = 0;
    let finite = true;
    for (let c = 0; c < width; c++) {
      const p = probs[r * width + c];
      probabilities[names[c]] = p;
      if (p - p !== 0) finite = false;
      if (p > probs[r * width + best]) best = c;
    }
    if (!finite) nonFinite++;
    const label = labels ? labels[r] : classes[best];
    // A declared label output normally names the top class; otherwise find (or add) its name.
    labelIndex[r] = label === classes[best] ? best : indexOrAdd(names, String(label));
    out[r] = { label, score: (scores[r] = probs[r * width + (positive >= 0 ? positive : best)]), probabilities };
  }
  return { predictions: out, columns: { scores, labels: labelIndex, classes: names }, nonFinite };
}

function indexOrAdd(names: string[], name: string): number {
  const i = names.indexOf(name);
  return i >= 0 ? i : names.push(name) - 1;
}
