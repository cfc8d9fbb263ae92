/**
 * Builds a model's input tensors from resolved feature rows (see features.ts), following the
 * schema's `input` declaration. All rows of a request go into one batch: one session run.
 *
 * - dense: one float32 [N, C] tensor; numeric/integer columns carry the value (NaN where the
 *   missing policy is "nan"), booleans 1/0, categorical one-hot columns 1 when the row's category
 *   is the column's.
 * - per_feature: one [N, 1] tensor per declared input, in the declared dtype.
 */
import type * as Ort from "onnxruntime-web";
import type { FeatureSchema } from "../registry/manifest";
import type { ResolvedRow } from "./features";

type OrtModule = typeof Ort;
type Feeds = Record<string, Ort.Tensor>;

interface DensePlan {
  kind: "dense";
  name: string;
  /** Per column: the feature index, and the category for one-hot columns. */
  columns: { index: number; oneHot?: string }[];
}
interface PerFeaturePlan {
  kind: "per_feature";
  tensors: { index: number; name: string; dtype: "float32" | "int64" | "string" | "bool" }[];
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
      ? { kind: "dense", name: input.name, columns: input.columns.map((c) => ({ index: indexOf.get(c.feature)!, oneHot: c.oneHot })) }
      : { kind: "per_feature", tensors: input.tensors.map((t) => ({ index: indexOf.get(t.feature)!, name: t.name, dtype: t.dtype })) };
  plans.set(schema, plan);
  return plan;
}

function toNumber(v: ResolvedRow[number]): number {
  return typeof v === "boolean" ? (v ? 1 : 0) : (v as number);
}

export function buildFeeds(ort: OrtModule, schema: FeatureSchema, rows: ResolvedRow[]): Feeds {
  const plan = planFor(schema);
  const n = rows.length;
  if (plan.kind === "dense") {
    const width = plan.columns.length;
    const data = new Float32Array(n * width);
    for (let r = 0; r < n; r++) {
      const row = rows[r];
      const base = r * width;
      for (let c = 0; c < width; c++) {
        const col = plan.columns[c];
        const v = row[col.index];
        data[base + c] = col.oneHot !== undefined ? (v === col.oneHot ? 1 : 0) : toNumber(v);
      }
    }
    return { [plan.name]: new ort.Tensor("float32", data, [n, width]) };
  }
  const feeds: Feeds = {};
  for (const t of plan.tensors) {
    switch (t.dtype) {
      case "float32":
        feeds[t.name] = new ort.Tensor("float32", Float32Array.from(rows, (row) => toNumber(row[t.index])), [n, 1]);
        break;
      case "int64":
        feeds[t.name] = new ort.Tensor("int64", BigInt64Array.from(rows, (row) => BigInt(toNumber(row[t.index]))), [n, 1]);
        break;
      case "bool":
        feeds[t.name] = new ort.Tensor("bool", Uint8Array.from(rows, (row) => (row[t.index] ? 1 : 0)), [n, 1]);
        break;
      case "string":
        feeds[t.name] = new ort.Tensor("string", rows.map((row) => String(row[t.index])), [n, 1]);
        break;
    }
  }
  return feeds;
}
