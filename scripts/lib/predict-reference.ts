/**
 * Plain-TypeScript reference scorer for the demo models (models/credit-risk-*.params.json) and
 * the ONNX fixtures. It recomputes P(positive class) from a RAW feature object without ONNX, so
 * tests can check the runtime's predictions independently.
 *
 * It follows the manifest's feature encoding exactly:
 *   - missing value (key absent, null, undefined, or NaN for numbers): apply the feature's policy
 *     "reject" -> throw, "impute" -> use the stored value, "nan" -> pass NaN (numeric only);
 *   - dense column { feature } -> the numeric value (boolean -> 1/0);
 *     dense column { feature, oneHot: c } -> 1 if value === c else 0;
 *   - every model input is float32, so each encoded value goes through Math.fround, as do the
 *     weights / thresholds / leaf values (stored as float32 in the ONNX file).
 * Trees: BRANCH_LEQ nodes, `x <= threshold` -> left; NaN -> left iff missingGoesLeft.
 *
 * Imported by tests running inside workerd: no node: modules, no fs, no dependencies.
 */

export type MissingPolicy =
  | { policy: "reject" }
  | { policy: "impute"; value: number | string | boolean }
  | { policy: "nan" };

export interface FeatureSpec {
  name: string;
  type: "numeric" | "integer" | "categorical" | "boolean";
  min?: number;
  max?: number;
  categories?: string[];
  missing: MissingPolicy;
}

export interface DenseColumn {
  feature: string;
  oneHot?: string;
}

export type RawValue = number | string | boolean | null | undefined;
export type RawRow = Record<string, RawValue>;

export interface TreeNode {
  /** Present iff this is a leaf: the raw-score contribution. */
  leaf?: number;
  /** Dense column index (into `columns`). */
  feature?: number;
  threshold?: number;
  /** Child index when x <= threshold. */
  left?: number;
  /** Child index when x > threshold. */
  right?: number;
  /** Where NaN goes: left (true) or right (false). */
  missingGoesLeft?: boolean;
}

export interface LogisticParams {
  model: "logistic_regression";
  features: FeatureSpec[];
  /** Dense input columns, in tensor order. */
  columns: DenseColumn[];
  /** Weights on the RAW (unstandardised) column values, same order as `columns`. */
  weights: number[];
  intercept: number;
}

export interface TreeParams {
  model: "gradient_boosted_trees";
  features: FeatureSpec[];
  columns: DenseColumn[];
  /** Initial raw score (log-odds), added once. */
  baseScore: number;
  trees: { nodes: TreeNode[] }[];
}

export class MissingFeatureError extends Error {}

function isMissing(v: RawValue): boolean {
  return v === undefined || v === null || (typeof v === "number" && Number.isNaN(v));
}

/** Resolve a feature's value after the missing-value policy (NaN means "pass NaN"). */
export function resolveValue(spec: FeatureSpec, row: RawRow): number | string | boolean {
  const v = row[spec.name];
  if (!isMissing(v)) return v as number | string | boolean;
  const m = spec.missing;
  if (m.policy === "impute") return m.value;
  if (m.policy === "nan") {
    if (spec.type !== "numeric" && spec.type !== "integer") throw new Error(`policy nan on non-numeric ${spec.name}`);
    return Number.NaN;
  }
  throw new MissingFeatureError(`missing required feature ${spec.name}`);
}

/** Encode a raw row into the dense float32 vector (as float64 holding float32 values). */
export function encodeDense(features: FeatureSpec[], columns: DenseColumn[], row: RawRow): number[] {
  const byName = new Map(features.map((f) => [f.name, f]));
  const resolved = new Map<string, number | string | boolean>();
  for (const f of features) resolved.set(f.name, resolveValue(f, row));
  return columns.map((c) => {
    const spec = byName.get(c.feature);
    if (!spec) throw new Error(`column references unknown feature ${c.feature}`);
    const v = resolved.get(c.feature)!;
    if (c.oneHot !== undefined) return v === c.oneHot ? 1 : 0;
    if (typeof v === "boolean") return v ? 1 : 0;
    if (typeof v !== "number") throw new Error(`feature ${c.feature}: expected a number, got ${JSON.stringify(v)}`);
    return Math.fround(v);
  });
}

export function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

export function softmax(z: number[]): number[] {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** Linear score b + w.x with float32 weights (x already float32). */
export function linearScore(weights: number[], intercept: number, x: number[]): number {
  let z = Math.fround(intercept);
  for (let j = 0; j < x.length; j++) z += Math.fround(weights[j]) * x[j];
  return z;
}

/** Leaf value reached by `x` in one tree. */
export function treeLeaf(nodes: TreeNode[], x: number[]): number {
  let i = 0;
  for (let guard = 0; guard <= nodes.length; guard++) {
    const n = nodes[i];
    if (n.leaf !== undefined) return Math.fround(n.leaf);
    const v = x[n.feature!];
    const goLeft = Number.isNaN(v) ? n.missingGoesLeft === true : v <= Math.fround(n.threshold!);
    i = goLeft ? n.left! : n.right!;
  }
  throw new Error("tree has a cycle");
}

/** Sum of leaf values over all trees plus the base score. */
export function treeRawScore(trees: { nodes: TreeNode[] }[], baseScore: number, x: number[]): number {
  let s = Math.fround(baseScore);
  for (const t of trees) s += treeLeaf(t.nodes, x);
  return s;
}

/** P(bad) = P(label 1) of the logistic regression for a raw feature object. */
export function predictLogistic(params: LogisticParams, row: RawRow): number {
  const x = encodeDense(params.features, params.columns, row);
  return sigmoid(linearScore(params.weights, params.intercept, x));
}

/** P(bad) = P(label 1) of the boosted trees (logistic link) for a raw feature object. */
export function predictTrees(params: TreeParams, row: RawRow): number {
  const x = encodeDense(params.features, params.columns, row);
  return sigmoid(treeRawScore(params.trees, params.baseScore, x));
}
