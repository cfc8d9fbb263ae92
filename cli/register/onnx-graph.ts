/**
 * What an ONNX file says about the manifest it needs, read from the graph alone: its inputs (names,
 * element types, widths), its outputs, the classifier/regressor operator and the class labels it
 * carries (ZipMap, TreeEnsemble*, LinearClassifier, SVMClassifier), the categories of every
 * OneHotEncoder / LabelEncoder / CategoryMapper traced back to the graph input it reads, whether a
 * tree ensemble handles NaN, and the doc string. The register command turns this into guesses it
 * explains; nothing here looks at training data.
 */
import { decodeModel, type ModelProto } from "../../src/inference/onnx-model.ts";

type Graph = NonNullable<ModelProto["graph"]>;
type Node = NonNullable<Graph["node"]>[number];
type ValueInfo = NonNullable<Graph["input"]>[number];

/** ONNX TensorProto.DataType codes the runtime feeds. */
const ELEM: Record<number, "float32" | "int64" | "string" | "bool" | "float64" | "int32"> = { 1: "float32", 7: "int64", 8: "string", 9: "bool", 11: "float64", 6: "int32" };

export interface GraphTensor {
  name: string;
  /** "float32" | "int64" | "string" | "bool" | …, or "seq(map)" for a ZipMap output. */
  elem: string;
  /** Dimensions: a number when fixed, null when symbolic (the batch dimension), undefined shape = []. */
  dims: (number | null)[];
}

export interface GraphFacts {
  docString: string;
  inputs: GraphTensor[];
  outputs: GraphTensor[];
  /** Operators present, by type (e.g. "TreeEnsembleClassifier"). */
  ops: Set<string>;
  kind: "classifier" | "regressor" | "unknown";
  /** Class labels carried by the graph, and which node carried them. */
  classes?: { labels: (number | string)[]; from: string };
  /** Categories found per graph input, and which node carried them. */
  categories: Map<string, { values: string[]; from: string }>;
  /** A tree ensemble is present: NaN inputs follow each node's learned missing-value branch. */
  treeEnsemble: boolean;
}

const decoder = new TextDecoder();
const text = (b: Uint8Array | string) => (typeof b === "string" ? b : decoder.decode(b));

function attr(node: Node, name: string) {
  return node.attribute?.find((a) => a.name === name);
}
function attrStrings(node: Node, name: string): string[] | undefined {
  const a = attr(node, name);
  return a?.strings?.length ? a.strings.map(text) : undefined;
}
function attrInts(node: Node, name: string): number[] | undefined {
  const a = attr(node, name);
  return a?.ints?.length ? a.ints.map((v) => Number(v)) : undefined;
}

function tensorOf(v: ValueInfo): GraphTensor {
  const t = v.type;
  if (t?.tensorType) {
    const dims = (t.tensorType.shape?.dim ?? []).map((d) => (d.dimValue !== undefined && d.dimValue !== null && Number(d.dimValue) > 0 ? Number(d.dimValue) : null));
    return { name: v.name!, elem: ELEM[t.tensorType.elemType ?? 0] ?? `type${t.tensorType.elemType}`, dims };
  }
  if (t?.sequenceType) return { name: v.name!, elem: "seq(map)", dims: [] };
  return { name: v.name!, elem: "unknown", dims: [] };
}

const CLASSIFIERS = ["TreeEnsembleClassifier", "LinearClassifier", "SVMClassifier"];
const REGRESSORS = ["TreeEnsembleRegressor", "LinearRegressor", "SVMRegressor", "TreeEnsemble"];
/** Operators that pass one tensor through without changing which column it is. */
const PASS_THROUGH = new Set(["Cast", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Imputer"]);

export function readGraph(bytes: Uint8Array): GraphFacts {
  const model = decodeModel(bytes);
  const g = model.graph!;
  const initializers = new Set((g.initializer ?? []).map((i) => i.name));
  const nodes = g.node ?? [];
  const producer = new Map<string, Node>();
  for (const n of nodes) for (const o of n.output ?? []) producer.set(o, n);
  const inputs = (g.input ?? []).filter((i) => !initializers.has(i.name!)).map(tensorOf);
  const inputNames = new Set(inputs.map((i) => i.name));
  const ops = new Set(nodes.map((n) => n.opType!));

  /** The graph input a tensor comes from through pass-through operators, if any. */
  const sourceInput = (tensor: string): string | undefined => {
    for (let guard = 0; guard < 64; guard++) {
      if (inputNames.has(tensor)) return tensor;
      const p = producer.get(tensor);
      if (!p || !PASS_THROUGH.has(p.opType!) || !p.input?.length) return undefined;
      tensor = p.input[0];
    }
    return undefined;
  };

  const categories = new Map<string, { values: string[]; from: string }>();
  for (const n of nodes) {
    const values =
      n.opType === "OneHotEncoder"
        ? (attrStrings(n, "cats_strings") ?? attrInts(n, "cats_int64s")?.map(String))
        : n.opType === "LabelEncoder"
          ? attrStrings(n, "keys_strings")
          : n.opType === "CategoryMapper"
            ? attrStrings(n, "cats_strings")
            : undefined;
    const source = values && n.input?.length ? sourceInput(n.input[0]) : undefined;
    if (values && source && !categories.has(source)) categories.set(source, { values, from: `${n.opType} node '${n.name || n.output?.[0]}'` });
  }

  let classes: GraphFacts["classes"];
  const zip = nodes.find((n) => n.opType === "ZipMap");
  if (zip) {
    const labels = attrInts(zip, "classlabels_int64s") ?? attrStrings(zip, "classlabels_strings");
    if (labels) classes = { labels, from: `ZipMap node '${zip.name || zip.output?.[0]}'` };
  }
  if (!classes) {
    for (const n of nodes.filter((x) => CLASSIFIERS.includes(x.opType!))) {
      const labels = attrInts(n, "classlabels_int64s") ?? attrInts(n, "classlabels_ints") ?? attrStrings(n, "classlabels_strings");
      // A binary LinearClassifier may carry one coefficient row yet two labels; labels are what count.
      if (labels) {
        classes = { labels, from: `${n.opType} node '${n.name || n.output?.[0]}'` };
        break;
      }
    }
  }
  const outputs = (g.output ?? []).map(tensorOf);
  const hasClassifierOp = nodes.some((n) => CLASSIFIERS.includes(n.opType!)) || !!zip;
  const hasRegressorOp = nodes.some((n) => REGRESSORS.includes(n.opType!));
  let kind: GraphFacts["kind"] = hasClassifierOp ? "classifier" : hasRegressorOp ? "regressor" : "unknown";
  if (kind === "unknown") {
    // No ML operator: a float [N, C>1] output beside an integer/string label output is a classifier
    // (Gemm/MatMul + Sigmoid/Softmax + ArgMax); a single float output is a regressor.
    const floatOut = outputs.filter((o) => o.elem === "float32" || o.elem === "float64");
    const labelOut = outputs.filter((o) => o.elem === "int64" || o.elem === "string");
    if (floatOut.length && labelOut.length) kind = "classifier";
    else if (floatOut.length === 1 && (floatOut[0].dims.at(-1) ?? 1) === 1) kind = "regressor";
    else if (floatOut.length === 1 && (floatOut[0].dims.at(-1) ?? 0) > 1) kind = "classifier";
  }
  return {
    docString: model.docString ?? g.docString ?? "",
    inputs,
    outputs,
    ops,
    kind,
    classes,
    categories,
    treeEnsemble: nodes.some((n) => n.opType!.startsWith("TreeEnsemble")),
  };
}
