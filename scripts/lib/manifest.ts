/**
 * Manifest types (the shape the Worker's register API consumes) and the helpers that build the
 * manifest's `reference` block (training-data distributions used for drift monitoring).
 *
 * Reference conventions:
 *   - edges: 11 decile edges of the non-missing TRAINING values, quantiles at 0, 0.1, ..., 1 with
 *     linear interpolation (numpy's default "linear" method); edges may repeat when values tie;
 *   - counts: 10 counts of training rows per bin, where a value x falls in bin
 *     clamp(upperBound(edges, x) - 1, 0, 9) and upperBound = index of the first edge > x
 *     (i.e. bins are [e_i, e_{i+1}) and the last bin is closed; with repeated edges the value goes
 *     to the LAST bin whose lower edge equals it; out-of-range values go to the first/last bin);
 *   - sample: up to 1000 sorted training values, evenly spaced order statistics
 *     sorted[floor(k * n / 1000)] (all values when n <= 1000);
 *   - missing: number of training rows where the raw value was missing (before imputation).
 */
import { binIndex } from "../../src/stats/drift.ts";
import type { FeatureSpec } from "./predict-reference.ts";
import { quantileSorted } from "./quantiles.ts";

export type InputSpec =
  | { kind: "dense"; name: string; dtype: "float32"; columns: { feature: string; oneHot?: string }[] }
  | { kind: "per_feature"; tensors: { feature: string; name: string; dtype: "float32" | "int64" | "string" }[] };

export type OutputSpec =
  | {
      kind: "classifier";
      probabilities: string;
      label: string;
      classes: (number | string)[];
      positiveClass?: number | string;
    }
  | { kind: "regressor"; value: string };

export type NumericReference = { type: "numeric"; edges: number[]; counts: number[]; missing: number; sample: number[] };
export type CategoricalReference = { type: "categorical"; counts: Record<string, number>; missing: number };

export interface Manifest {
  name: string;
  version: string;
  task: "binary_classification" | "multiclass_classification" | "regression";
  description: string;
  environment: "production" | "staging" | "development";
  metrics: Record<string, number>;
  featureSchema: { features: FeatureSpec[]; input: InputSpec; output: OutputSpec };
  reference: {
    features: Record<string, NumericReference | CategoricalReference>;
    score: { edges: number[]; counts: number[]; sample: number[] };
  };
}


function round(v: number, digits = 8): number {
  return Number(v.toPrecision(digits));
}

/** edges / counts / sample for numeric values (NaN entries count as missing). */
export function numericReference(values: number[], opts: { digits?: number } = {}): NumericReference {
  const present = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  const d = opts.digits ?? 8;
  const edges = Array.from({ length: 11 }, (_, k) => round(quantileSorted(present, k / 10), d));
  const counts = new Array<number>(10).fill(0);
  for (const v of present) counts[binIndex(edges, v)]++;
  const n = present.length;
  const sample = n <= 1000 ? present.map((v) => round(v, d)) : Array.from({ length: 1000 }, (_, k) => round(present[Math.floor((k * n) / 1000)], d));
  return { type: "numeric", edges, counts, missing: values.length - n, sample };
}

/** Category counts for categorical values (null = missing). */
export function categoricalReference(values: (string | null)[], categories: string[]): CategoricalReference {
  const counts: Record<string, number> = Object.fromEntries(categories.map((c) => [c, 0]));
  let missing = 0;
  for (const v of values) {
    if (v === null) missing++;
    else counts[v] = (counts[v] ?? 0) + 1;
  }
  return { type: "categorical", counts, missing };
}

export function scoreReference(scores: number[]): { edges: number[]; counts: number[]; sample: number[] } {
  const { edges, counts, sample } = numericReference(scores);
  return { edges, counts, sample };
}
