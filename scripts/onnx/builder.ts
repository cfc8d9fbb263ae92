/**
 * Minimal ONNX model writer used by the offline tooling (scripts/train-demo.ts,
 * scripts/make-fixtures.ts). It is NOT part of the Worker bundle.
 *
 * Rather than depending on Python / skl2onnx, models are assembled node by node on top of the
 * protobufjs static code shipped in the `onnx-proto` package (ONNX v1.10 schema) and serialised
 * with `onnx.ModelProto.encode(model).finish()`.
 *
 * Two layers:
 *   - low-level helpers: tensor value infos, initializers, typed attributes, nodes, `encodeModel`;
 *   - high-level builders for the model families the runtime serves:
 *       (a) logistic regression as Gemm + Sigmoid (+ Sub/Concat -> [N,2], ArgMax -> int64 label),
 *           or MatMul + Add + Softmax (binary or multiclass);
 *       (b) ai.onnx.ml LinearClassifier (post_transform LOGISTIC or SOFTMAX);
 *       (c) ai.onnx.ml TreeEnsembleClassifier (nodes_* attributes, base_values,
 *           nodes_missing_value_tracks_true, post_transform LOGISTIC);
 *       (d) ai.onnx.ml TreeEnsembleRegressor;
 *       (e) optional sklearn-onnx style ZipMap after a classifier (int64 or string labels);
 *       (f) a column-wise pipeline with one named [N,1] input per feature
 *           (float32 / int64 via Cast / string via OneHotEncoder) -> Concat -> LinearClassifier.
 *
 * Opsets: IR version 8, default domain opset 17, ai.onnx.ml opset 3 (all supported by
 * onnxruntime-web 1.30; checked by scripts/verify-models.ts).
 *
 * Tree conventions (shared with scripts/lib/predict-reference.ts): every branch node is
 * BRANCH_LEQ, i.e. `x <= threshold` follows the TRUE ("left") child; a NaN input follows the
 * TRUE child iff `missingGoesLeft` (nodes_missing_value_tracks_true = 1), otherwise the FALSE child
 * (the comparison with NaN is false). Thresholds and leaf values are stored as float32.
 */
import onnxProto from "onnx-proto";
import type { onnx as OnnxTypes } from "onnx-proto";
import type { TreeNode } from "../lib/predict-reference.ts";

// onnx-proto is CommonJS; Node's ESM loader cannot see its named export, so use the default.
export const onnx = onnxProto.onnx;

type IValueInfo = OnnxTypes.IValueInfoProto;
type INode = OnnxTypes.INodeProto;
type ITensor = OnnxTypes.ITensorProto;
type IAttribute = OnnxTypes.IAttributeProto;
type ITypeProto = OnnxTypes.ITypeProto;

export const DT = {
  FLOAT: 1,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  DOUBLE: 11,
} as const;

export const IR_VERSION = 8;
export const OPSET_DEFAULT = 17;
export const OPSET_ML = 3;
export const ML = "ai.onnx.ml";

const utf8 = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Low-level helpers
// ---------------------------------------------------------------------------------------------

/** A dimension: number = fixed, string = symbolic (e.g. "N"). */
export type Dim = number | string;

export function tensorType(elemType: number, dims: Dim[] | null): ITypeProto {
  return {
    tensorType: {
      elemType,
      shape: dims === null ? undefined : { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
    },
  };
}

export function tensorInfo(name: string, elemType: number, dims: Dim[] | null): IValueInfo {
  return { name, type: tensorType(elemType, dims) };
}

/** seq(map(keyType, float)) — the sklearn-onnx ZipMap output type. */
export function seqMapInfo(name: string, keyType: number): IValueInfo {
  return {
    name,
    type: { sequenceType: { elemType: { mapType: { keyType, valueType: tensorType(DT.FLOAT, null) } } } },
  };
}

export function floatTensor(name: string, dims: number[], data: ArrayLike<number>): ITensor {
  return { name, dims, dataType: DT.FLOAT, floatData: Array.from(data, (v) => Math.fround(v)) };
}

export function int64Tensor(name: string, dims: number[], data: ArrayLike<number>): ITensor {
  return { name, dims, dataType: DT.INT64, int64Data: Array.from(data) };
}

// Typed attribute constructors (ONNX attribute type is explicit, no guessing from JS values).
const AT = onnx.AttributeProto.AttributeType;
export const attr = {
  f: (name: string, v: number): IAttribute => ({ name, type: AT.FLOAT, f: Math.fround(v) }),
  i: (name: string, v: number): IAttribute => ({ name, type: AT.INT, i: v }),
  s: (name: string, v: string): IAttribute => ({ name, type: AT.STRING, s: utf8.encode(v) }),
  t: (name: string, v: ITensor): IAttribute => ({ name, type: AT.TENSOR, t: v }),
  floats: (name: string, v: ArrayLike<number>): IAttribute => ({
    name,
    type: AT.FLOATS,
    floats: Array.from(v, (x) => Math.fround(x)),
  }),
  ints: (name: string, v: ArrayLike<number>): IAttribute => ({ name, type: AT.INTS, ints: Array.from(v) }),
  strings: (name: string, v: string[]): IAttribute => ({ name, type: AT.STRINGS, strings: v.map((x) => utf8.encode(x)) }),
};

export function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  attributes: IAttribute[] = [],
  domain = "",
  name?: string,
): INode {
  return { opType, input: inputs, output: outputs, attribute: attributes, domain, name: name ?? `${opType}_${outputs[0]}` };
}

export interface GraphSpec {
  name: string;
  nodes: INode[];
  inputs: IValueInfo[];
  outputs: IValueInfo[];
  initializers?: ITensor[];
  /** Types of intermediate tensors (needed where an op has no type inference, e.g. OneHotEncoder). */
  valueInfo?: IValueInfo[];
  docString?: string;
}

export interface ModelMeta {
  producerVersion?: string;
  docString?: string;
  /** Free-form metadata_props (e.g. { "model_name": "credit-risk" }). */
  metadata?: Record<string, string>;
}

/** Serialise a graph to ONNX bytes (IR 8, opsets "" = 17 and ai.onnx.ml = 3). */
export function encodeModel(graph: GraphSpec, meta: ModelMeta = {}): Uint8Array {
  const model: OnnxTypes.IModelProto = {
    irVersion: IR_VERSION,
    producerName: "edge-ml-runtime/scripts/onnx/builder.ts",
    producerVersion: meta.producerVersion ?? "0.1.0",
    docString: meta.docString ?? "",
    opsetImport: [
      { domain: "", version: OPSET_DEFAULT },
      { domain: ML, version: OPSET_ML },
    ],
    metadataProps: Object.entries(meta.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: graph.name,
      node: graph.nodes,
      input: graph.inputs,
      output: graph.outputs,
      initializer: graph.initializers ?? [],
      valueInfo: graph.valueInfo ?? [],
      docString: graph.docString ?? "",
    },
  };
  const err = onnx.ModelProto.verify(model);
  if (err) throw new Error(`invalid ModelProto: ${err}`);
  return onnx.ModelProto.encode(model).finish();
}

// ---------------------------------------------------------------------------------------------
// (a) Logistic regression with standard ops
// ---------------------------------------------------------------------------------------------

export interface LogisticGemmSpec {
  /** Weights on the raw input columns (length F). */
  weights: number[];
  intercept: number;
  inputName?: string; // default "float_input"
  probabilitiesName?: string; // default "probabilities"
  labelName?: string; // default "label"
}

/**
 * X[N,F] -> Gemm(B=[F,1], C=[1]) -> Sigmoid -> p[N,1]; probabilities = Concat(1-p, p) [N,2];
 * label = ArgMax(probabilities, axis=1, keepdims=0) as int64 [N] (ties -> class 0).
 */
export function logisticGemmGraph(spec: LogisticGemmSpec): GraphSpec {
  const F = spec.weights.length;
  const X = spec.inputName ?? "float_input";
  const P = spec.probabilitiesName ?? "probabilities";
  const L = spec.labelName ?? "label";
  return {
    name: "logistic_regression_gemm",
    inputs: [tensorInfo(X, DT.FLOAT, ["N", F])],
    outputs: [tensorInfo(P, DT.FLOAT, ["N", 2]), tensorInfo(L, DT.INT64, ["N"])],
    initializers: [
      floatTensor("coef", [F, 1], spec.weights),
      floatTensor("intercept", [1], [spec.intercept]),
      floatTensor("one", [1], [1]),
    ],
    nodes: [
      node("Gemm", [X, "coef", "intercept"], ["logit"], [attr.f("alpha", 1), attr.f("beta", 1)]),
      node("Sigmoid", ["logit"], ["p1"]),
      node("Sub", ["one", "p1"], ["p0"]),
      node("Concat", ["p0", "p1"], [P], [attr.i("axis", 1)]),
      node("ArgMax", [P], [L], [attr.i("axis", 1), attr.i("keepdims", 0)]),
    ],
  };
}

export interface SoftmaxRegressionSpec {
  /** Row-major [F, C] weight matrix on raw inputs. */
  weights: number[][];
  /** Length C. */
  intercepts: number[];
  inputName?: string;
  probabilitiesName?: string;
  labelName?: string;
}

/** X[N,F] -> MatMul(W[F,C]) -> Add(b[C]) -> Softmax(axis=1) -> probabilities[N,C]; ArgMax -> label. */
export function softmaxRegressionGraph(spec: SoftmaxRegressionSpec): GraphSpec {
  const F = spec.weights.length;
  const C = spec.intercepts.length;
  const X = spec.inputName ?? "float_input";
  const P = spec.probabilitiesName ?? "probabilities";
  const L = spec.labelName ?? "label";
  return {
    name: "softmax_regression_matmul",
    inputs: [tensorInfo(X, DT.FLOAT, ["N", F])],
    outputs: [tensorInfo(P, DT.FLOAT, ["N", C]), tensorInfo(L, DT.INT64, ["N"])],
    initializers: [floatTensor("W", [F, C], spec.weights.flat()), floatTensor("b", [C], spec.intercepts)],
    nodes: [
      node("MatMul", [X, "W"], ["xw"]),
      node("Add", ["xw", "b"], ["scores"]),
      node("Softmax", ["scores"], [P], [attr.i("axis", 1)]),
      node("ArgMax", [P], [L], [attr.i("axis", 1), attr.i("keepdims", 0)]),
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// (b) ai.onnx.ml LinearClassifier
// ---------------------------------------------------------------------------------------------

export type ClassLabels = { int64: number[] } | { strings: string[] };

function labelElemType(labels: ClassLabels): number {
  return "int64" in labels ? DT.INT64 : DT.STRING;
}
function labelCount(labels: ClassLabels): number {
  return "int64" in labels ? labels.int64.length : labels.strings.length;
}
function classLabelAttr(labels: ClassLabels): IAttribute {
  return "int64" in labels ? attr.ints("classlabels_ints", labels.int64) : attr.strings("classlabels_strings", labels.strings);
}
function treeClassLabelAttr(labels: ClassLabels): IAttribute {
  return "int64" in labels
    ? attr.ints("classlabels_int64s", labels.int64)
    : attr.strings("classlabels_strings", labels.strings);
}

export interface LinearClassifierSpec {
  /** One row of F coefficients per class (C rows). */
  coefficients: number[][];
  intercepts: number[];
  classes: ClassLabels;
  postTransform: "LOGISTIC" | "SOFTMAX" | "NONE";
}

/** The LinearClassifier node alone (input tensor name -> [label, probabilities]). */
export function linearClassifierNode(spec: LinearClassifierSpec, input: string, label: string, probs: string): INode {
  return node(
    "LinearClassifier",
    [input],
    [label, probs],
    [
      attr.floats("coefficients", spec.coefficients.flat()),
      attr.floats("intercepts", spec.intercepts),
      classLabelAttr(spec.classes),
      attr.i("multi_class", 0),
      attr.s("post_transform", spec.postTransform),
    ],
    ML,
  );
}

/**
 * Binary logistic regression as LinearClassifier, sklearn-onnx style: coefficients [-w, w],
 * intercepts [-b, b], post_transform LOGISTIC -> probabilities [sigmoid(-z), sigmoid(z)].
 */
export function binaryLinearClassifierSpec(weights: number[], intercept: number, classes: ClassLabels): LinearClassifierSpec {
  return {
    coefficients: [weights.map((w) => -w), weights.slice()],
    intercepts: [-intercept, intercept],
    classes,
    postTransform: "LOGISTIC",
  };
}

export function linearClassifierGraph(
  spec: LinearClassifierSpec,
  opts: { inputName?: string; labelName?: string; probabilitiesName?: string } = {},
): GraphSpec {
  const F = spec.coefficients[0].length;
  const C = spec.coefficients.length;
  const X = opts.inputName ?? "float_input";
  const L = opts.labelName ?? "label";
  const P = opts.probabilitiesName ?? "probabilities";
  return {
    name: "linear_classifier",
    inputs: [tensorInfo(X, DT.FLOAT, ["N", F])],
    outputs: [tensorInfo(L, labelElemType(spec.classes), ["N"]), tensorInfo(P, DT.FLOAT, ["N", C])],
    nodes: [linearClassifierNode(spec, X, L, P)],
  };
}

// ---------------------------------------------------------------------------------------------
// (c) / (d) Tree ensembles
// ---------------------------------------------------------------------------------------------

/** One node of a tree (ids are indices into the tree's node array); shared with the reference scorer. */
export type { TreeNode };
export interface Tree {
  nodes: TreeNode[];
}

interface FlatTrees {
  treeIds: number[];
  nodeIds: number[];
  featureIds: number[];
  modes: string[];
  values: number[];
  trueIds: number[];
  falseIds: number[];
  missingTracksTrue: number[];
  leafTree: number[];
  leafNode: number[];
  leafValue: number[];
}

function flattenTrees(trees: Tree[]): FlatTrees {
  const f: FlatTrees = {
    treeIds: [], nodeIds: [], featureIds: [], modes: [], values: [], trueIds: [], falseIds: [],
    missingTracksTrue: [], leafTree: [], leafNode: [], leafValue: [],
  };
  trees.forEach((tree, t) => {
    tree.nodes.forEach((n, id) => {
      f.treeIds.push(t);
      f.nodeIds.push(id);
      if (n.leaf !== undefined) {
        f.featureIds.push(0);
        f.modes.push("LEAF");
        f.values.push(0);
        f.trueIds.push(0);
        f.falseIds.push(0);
        f.missingTracksTrue.push(0);
        f.leafTree.push(t);
        f.leafNode.push(id);
        f.leafValue.push(n.leaf);
      } else {
        if (n.feature === undefined || n.threshold === undefined || n.left === undefined || n.right === undefined) {
          throw new Error(`tree ${t} node ${id}: incomplete branch node`);
        }
        f.featureIds.push(n.feature);
        f.modes.push("BRANCH_LEQ");
        f.values.push(n.threshold);
        f.trueIds.push(n.left);
        f.falseIds.push(n.right);
        f.missingTracksTrue.push(n.missingGoesLeft ? 1 : 0);
      }
    });
  });
  return f;
}

function treeNodeAttrs(f: FlatTrees): IAttribute[] {
  return [
    attr.ints("nodes_treeids", f.treeIds),
    attr.ints("nodes_nodeids", f.nodeIds),
    attr.ints("nodes_featureids", f.featureIds),
    attr.strings("nodes_modes", f.modes),
    attr.floats("nodes_values", f.values),
    attr.ints("nodes_truenodeids", f.trueIds),
    attr.ints("nodes_falsenodeids", f.falseIds),
    attr.ints("nodes_missing_value_tracks_true", f.missingTracksTrue),
  ];
}

export interface TreeClassifierSpec {
  trees: Tree[];
  /** Binary: 2 labels; all leaves contribute to the raw score of the SECOND label (sklearn-onnx convention). */
  classes: ClassLabels;
  /** Raw score added before the transform (e.g. GBT initial log-odds). */
  baseScore: number;
  postTransform?: "LOGISTIC" | "NONE";
}

/** TreeEnsembleClassifier node (binary, one score per leaf, base_values = [baseScore]). */
export function treeClassifierNode(spec: TreeClassifierSpec, input: string, label: string, probs: string): INode {
  if (labelCount(spec.classes) !== 2) throw new Error("treeClassifierNode: only binary ensembles are supported");
  const f = flattenTrees(spec.trees);
  // onnxruntime quirk: in the binary case, if no class weight is negative it treats the summed
  // score as a probability and picks the label with `score > 0.5` instead of `score > 0` (the
  // probabilities are still right, the label is not). Boosted log-odds leaves are never all >= 0
  // in practice; refuse rather than emit a model with wrong labels.
  if (!f.leafValue.some((v) => v < 0)) {
    throw new Error("treeClassifierNode: at least one leaf value must be negative (onnxruntime binary label quirk)");
  }
  return node(
    "TreeEnsembleClassifier",
    [input],
    [label, probs],
    [
      ...treeNodeAttrs(f),
      attr.ints("class_treeids", f.leafTree),
      attr.ints("class_nodeids", f.leafNode),
      attr.ints("class_ids", f.leafTree.map(() => 0)),
      attr.floats("class_weights", f.leafValue),
      treeClassLabelAttr(spec.classes),
      attr.floats("base_values", [spec.baseScore]),
      attr.s("post_transform", spec.postTransform ?? "LOGISTIC"),
    ],
    ML,
  );
}

export function treeClassifierGraph(
  spec: TreeClassifierSpec,
  nFeatures: number,
  opts: { inputName?: string; labelName?: string; probabilitiesName?: string } = {},
): GraphSpec {
  const X = opts.inputName ?? "float_input";
  const L = opts.labelName ?? "label";
  const P = opts.probabilitiesName ?? "probabilities";
  return {
    name: "tree_ensemble_classifier",
    inputs: [tensorInfo(X, DT.FLOAT, ["N", nFeatures])],
    outputs: [tensorInfo(L, labelElemType(spec.classes), ["N"]), tensorInfo(P, DT.FLOAT, ["N", 2])],
    nodes: [treeClassifierNode(spec, X, L, P)],
  };
}

export interface TreeRegressorSpec {
  trees: Tree[];
  baseValue: number;
  aggregate?: "SUM" | "AVERAGE";
}

/** TreeEnsembleRegressor, one target, output "variable" [N,1] (sklearn-onnx naming). */
export function treeRegressorGraph(
  spec: TreeRegressorSpec,
  nFeatures: number,
  opts: { inputName?: string; outputName?: string } = {},
): GraphSpec {
  const X = opts.inputName ?? "float_input";
  const Y = opts.outputName ?? "variable";
  const f = flattenTrees(spec.trees);
  return {
    name: "tree_ensemble_regressor",
    inputs: [tensorInfo(X, DT.FLOAT, ["N", nFeatures])],
    outputs: [tensorInfo(Y, DT.FLOAT, ["N", 1])],
    nodes: [
      node(
        "TreeEnsembleRegressor",
        [X],
        [Y],
        [
          ...treeNodeAttrs(f),
          attr.ints("target_treeids", f.leafTree),
          attr.ints("target_nodeids", f.leafNode),
          attr.ints("target_ids", f.leafTree.map(() => 0)),
          attr.floats("target_weights", f.leafValue),
          attr.i("n_targets", 1),
          attr.floats("base_values", [spec.baseValue]),
          attr.s("aggregate_function", spec.aggregate ?? "SUM"),
          attr.s("post_transform", "NONE"),
        ],
        ML,
      ),
    ],
  };
}

// ---------------------------------------------------------------------------------------------
// (e) ZipMap (sklearn-onnx style outputs)
// ---------------------------------------------------------------------------------------------

/**
 * Rewrites a classifier graph whose outputs are [label, probabilities] into the sklearn-onnx
 * layout: `output_label` [N] and `output_probability` seq(map(label -> float)) via ZipMap.
 * The raw probability tensor stays inside the graph under the name `probabilities`.
 */
export function withZipMap(
  g: GraphSpec,
  classes: ClassLabels,
  names: { label: string; probabilities: string } = { label: "label", probabilities: "probabilities" },
): GraphSpec {
  const keyType = labelElemType(classes);
  const nodes: INode[] = g.nodes.map((n) => ({
    ...n,
    output: (n.output ?? []).map((o) => (o === names.label ? "output_label" : o)),
  }));
  nodes.push(
    node(
      "ZipMap",
      [names.probabilities],
      ["output_probability"],
      ["int64" in classes ? attr.ints("classlabels_int64s", classes.int64) : attr.strings("classlabels_strings", classes.strings)],
      ML,
    ),
  );
  return {
    ...g,
    name: `${g.name}_zipmap`,
    nodes,
    outputs: [tensorInfo("output_label", keyType, ["N"]), seqMapInfo("output_probability", keyType)],
  };
}

// ---------------------------------------------------------------------------------------------
// (f) Column-wise pipeline: one [N,1] input per feature
// ---------------------------------------------------------------------------------------------

export type ColumnInput =
  | { name: string; dtype: "float32" }
  | { name: string; dtype: "int64" }
  /** String column, one-hot encoded over `categories` (unknown strings -> all zeros). */
  | { name: string; dtype: "string"; categories: string[] };

/** Number of dense columns a ColumnInput expands to. */
export function columnWidth(c: ColumnInput): number {
  return c.dtype === "string" ? c.categories.length : 1;
}

/**
 * Per-feature inputs -> (Cast int64->float | OneHotEncoder string -> [N,1,K] -> Flatten [N,K]) ->
 * Concat(axis=1) -> LinearClassifier -> label [N], probabilities [N,C].
 * The dense column order is the order of `columns` (strings expand to their categories in order).
 */
export function columnwiseLinearGraph(
  columns: ColumnInput[],
  classifier: LinearClassifierSpec,
  opts: { labelName?: string; probabilitiesName?: string } = {},
): GraphSpec {
  const L = opts.labelName ?? "label";
  const P = opts.probabilitiesName ?? "probabilities";
  const nodes: INode[] = [];
  const parts: string[] = [];
  const inputs: IValueInfo[] = [];
  const valueInfo: IValueInfo[] = [];
  for (const c of columns) {
    if (c.dtype === "float32") {
      inputs.push(tensorInfo(c.name, DT.FLOAT, ["N", 1]));
      parts.push(c.name);
    } else if (c.dtype === "int64") {
      inputs.push(tensorInfo(c.name, DT.INT64, ["N", 1]));
      nodes.push(node("Cast", [c.name], [`${c.name}_f`], [attr.i("to", DT.FLOAT)]));
      parts.push(`${c.name}_f`);
    } else {
      inputs.push(tensorInfo(c.name, DT.STRING, ["N", 1]));
      nodes.push(
        node("OneHotEncoder", [c.name], [`${c.name}_oh3`], [attr.strings("cats_strings", c.categories), attr.i("zeros", 1)], ML),
      );
      valueInfo.push(tensorInfo(`${c.name}_oh3`, DT.FLOAT, ["N", 1, c.categories.length]));
      nodes.push(node("Flatten", [`${c.name}_oh3`], [`${c.name}_oh`], [attr.i("axis", 1)]));
      parts.push(`${c.name}_oh`);
    }
  }
  const width = columns.reduce((s, c) => s + columnWidth(c), 0);
  if (classifier.coefficients[0].length !== width) {
    throw new Error(`columnwiseLinearGraph: ${width} dense columns but ${classifier.coefficients[0].length} coefficients`);
  }
  nodes.push(node("Concat", parts, ["features"], [attr.i("axis", 1)]));
  nodes.push(linearClassifierNode(classifier, "features", L, P));
  return {
    name: "columnwise_pipeline",
    inputs,
    valueInfo,
    outputs: [
      tensorInfo(L, labelElemType(classifier.classes), ["N"]),
      tensorInfo(P, DT.FLOAT, ["N", classifier.coefficients.length]),
    ],
    nodes,
  };
}
