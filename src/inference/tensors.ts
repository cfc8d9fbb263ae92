/**
 * Builds a model's input tensors from validated columns (`Resolved`, see features.ts), following
 * the schema's `input` declaration. All rows of a request go into one batch: one session run.
 *
 * - dense: one float32 [N, C] tensor; numeric/integer columns carry the value (NaN where the
 *   missing policy is "nan"), booleans 1/0, categorical one-hot columns 1 when the row's category
 *   is the column's.
 * - per_feature: one [N, 1] tensor per declared input, in the declared dtype.
 */
import type * as Ort from "onnxruntime-web";
import type { FeatureSchema } from "../registry/manifest";
import { isLevelColumn, levelsOf, type Resolved } from "./features";

type OrtModule = typeof Ort;
type Feeds = Record<string, Ort.Tensor>;

interface DensePlan {
  kind: "dense";
  name: string;
  /** Per column: the feature index, and for one-hot columns the level index that sets it to 1 (-1 otherwise); whether the feature's column holds level indexes. */
  columns: { index: number; oneHot: number; level: boolean }[];
}
interface PerFeaturePlan {
  kind: "per_feature";
  tensors: { index: number; name: string; dtype: "float32" | "int64" | "string" | "bool"; level: boolean; levels: string[] }[];
}
type Plan = DensePlan | PerFeaturePlan;

const plans = new WeakMap<FeatureSchema, Plan>();

function planFor(schema: FeatureSchema): Plan {
  let plan = plans.get(schema);
  if (plan) return plan;
  const indexOf = new Map(schema.features.map((f, i) => [f.name, i]));
  const input = schema.input;
  plan =
    input.kind === "dense"
      ? {
          kind: "dense",
          name: input.name,
          columns: input.columns.map((c) => {
            const index = indexOf.get(c.feature)!;
            const f = schema.features[index];
            return { index, oneHot: c.oneHot === undefined ? -1 : levelsOf(f).indexOf(c.oneHot), level: isLevelColumn(f) };
          }),
        }
      : {
          kind: "per_feature",
          tensors: input.tensors.map((t) => {
            const index = indexOf.get(t.feature)!;
            const f = schema.features[index];
            return { index, name: t.name, dtype: t.dtype, level: isLevelColumn(f), levels: levelsOf(f) };
          }),
        };
  plans.set(schema, plan);
  return plan;
}

/** A column's numbers as the model reads them: values as they are; boolean levels 1/0, and NaN where "nan" filled a missing one. */
function numberAt(column: Float64Array | Int32Array, level: boolean, r: number): number {
  const x = column[r];
  return level && x < 0 ? Number.NaN : x;
}

export function buildFeeds(ort: OrtModule, schema: FeatureSchema, resolved: Resolved): Feeds {
  const plan = planFor(schema);
  const n = resolved.n;
  if (plan.kind === "dense") {
    const width = plan.columns.length;
    const data = new Float32Array(n * width);
    for (let c = 0; c < width; c++) {
      const { index, oneHot, level } = plan.columns[c];
      const column = resolved.columns[index];
      if (oneHot >= 0) for (let r = 0; r < n; r++) data[r * width + c] = column[r] === oneHot ? 1 : 0;
      else if (level) for (let r = 0; r < n; r++) data[r * width + c] = numberAt(column, true, r);
      else for (let r = 0; r < n; r++) data[r * width + c] = column[r];
    }
    return { [plan.name]: new ort.Tensor("float32", data, [n, width]) };
  }
  const feeds: Feeds = {};
  for (const t of plan.tensors) {
    const column = resolved.columns[t.index];
    switch (t.dtype) {
      case "float32":
        feeds[t.name] = new ort.Tensor("float32", Float32Array.from({ length: n }, (_, r) => numberAt(column, t.level, r)), [n, 1]);
        break;
      case "int64":
        feeds[t.name] = new ort.Tensor("int64", BigInt64Array.from({ length: n }, (_, r) => BigInt(numberAt(column, t.level, r))), [n, 1]);
        break;
      case "bool":
        feeds[t.name] = new ort.Tensor("bool", Uint8Array.from({ length: n }, (_, r) => (column[r] > 0 ? 1 : 0)), [n, 1]);
        break;
      case "string":
        feeds[t.name] = new ort.Tensor("string", Array.from({ length: n }, (_, r) => (t.level ? (t.levels[column[r]] ?? "NaN") : String(column[r]))), [n, 1]);
        break;
    }
  }
  return feeds;
}
