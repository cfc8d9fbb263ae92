/**
 * Turns a model's output tensors into predictions, per the schema's `output` declaration.
 *
 * Classifier: probabilities come from a float [N, C] tensor (a ZipMap was turned into one when the
 * session was created); class labels come from the ZipMap if there was one, else from the schema.
 * The label is the model's own label output when declared (int64 or string tensor), else the
 * most probable class. `score` is the probability of the positive class (declared, or the second
 * of two classes), or of the predicted class for multiclass models without a positive class. Regressor: `value` from the declared output.
 */
import type * as Ort from "onnxruntime-web";
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
): Prediction[] {
  if (spec.kind === "regressor") {
    const values = results[spec.value].data as Float32Array;
    const width = values.length / rows;
    return Array.from({ length: rows }, (_, r) => ({ value: values[r * width] }));
  }
  const classes = zipMapClasses ?? spec.classes;
  const probs = results[spec.probabilities].data as Float32Array;
  const width = classes.length;
  const labels = spec.label ? labelsOf(results[spec.label] as Ort.Tensor) : undefined;
  // Declared positive class, else the second of two classes; multiclass without one: the top class.
  const positiveLabel = spec.positiveClass ?? (classes.length === 2 ? classes[1] : undefined);
  const positive = positiveLabel === undefined ? -1 : classes.findIndex((c) => String(c) === String(positiveLabel));
  const out: ClassifierPrediction[] = new Array(rows);
  for (let r = 0; r < rows; r++) {
    const probabilities: Record<string, number> = {};
    let best = 0;
    for (let c = 0; c < width; c++) {
      const p = probs[r * width + c];
      probabilities[String(classes[c])] = p;
      if (p > probs[r * width + best]) best = c;
    }
    out[r] = {
      label: labels ? labels[r] : classes[best],
      score: probs[r * width + (positive >= 0 ? positive : best)],
      probabilities,
    };
  }
  return out;
}
