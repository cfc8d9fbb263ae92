/**
 * Reading and rewriting ONNX ModelProto bytes (onnx-proto, protobufjs static code).
 *
 * onnxruntime-web returns tensors only, so a classifier exported the sklearn-onnx way (probabilities
 * through a ZipMap into a sequence of maps) cannot be run as is. `prepareForWeb` removes the ZipMap
 * node and exposes its input, the [N, C] probability tensor, under the ZipMap's output name; the
 * class labels it carried are returned so responses can name them. The original bytes stay what the
 * registry stores and hashes; the rewrite happens when a session is created.
 */
import onnxProto from "onnx-proto";
import protobuf from "protobufjs/minimal.js";

const { onnx } = onnxProto;

/**
 * Encode with protobufjs' plain Uint8Array writer. Its default picks a Node Buffer writer whenever
 * a global Buffer exists, and workerd's Buffer (nodejs_compat) rejects the utf8Write call it makes.
 */
function writer() {
  return new protobuf.Writer();
}
export type ModelProto = ReturnType<typeof onnx.ModelProto.decode>;

export function encodeModel(model: Parameters<typeof onnx.ModelProto.create>[0]): Uint8Array {
  return onnx.ModelProto.encode(onnx.ModelProto.create(model), writer()).finish();
}

export interface ModelInfo {
  irVersion: number;
  /** Opset version per domain ("ai.onnx" for the default domain). */
  opsets: Record<string, number>;
  /** Class labels carried by a ZipMap node, if the model ends in one. */
  zipMapClasses?: (number | string)[];
  /** Class labels of every ai.onnx.ml classifier node, in the column order of its scores. */
  classifierLabels: OperatorClasses[];
}

/** The class labels one classifier node declares (its score columns follow this order). */
export interface OperatorClasses {
  op: string;
  node: string;
  classes: (number | string)[];
}

/** ai.onnx.ml operators whose probability/score columns are ordered by a class-label attribute. */
const LABEL_ATTRIBUTES: Record<string, [ints: string, strings: string]> = {
  TreeEnsembleClassifier: ["classlabels_int64s", "classlabels_strings"],
  LinearClassifier: ["classlabels_ints", "classlabels_strings"],
  SVMClassifier: ["classlabels_ints", "classlabels_strings"],
  ZipMap: ["classlabels_int64s", "classlabels_strings"],
};

type NodeProto = NonNullable<NonNullable<ModelProto["graph"]>["node"]>[number];

function labelsOf(node: NodeProto, [intsName, stringsName]: [string, string]): (number | string)[] {
  const ints = node.attribute?.find((a) => a.name === intsName)?.ints;
  const strings = node.attribute?.find((a) => a.name === stringsName)?.strings;
  return ints?.length ? ints.map((v) => Number(v)) : (strings ?? []).map((s) => new TextDecoder().decode(s));
}

/** Class labels of every classifier node of the main graph (TreeEnsemble, Linear, SVM, ZipMap). */
export function classifierLabels(model: ModelProto): OperatorClasses[] {
  const out: OperatorClasses[] = [];
  for (const node of model.graph?.node ?? []) {
    const attrs = node.domain === "ai.onnx.ml" ? LABEL_ATTRIBUTES[node.opType ?? ""] : undefined;
    if (attrs) out.push({ op: node.opType!, node: node.name || node.output?.[0] || node.opType!, classes: labelsOf(node, attrs) });
  }
  return out;
}

export interface PreparedModel {
  info: ModelInfo;
  /** Bytes to give onnxruntime-web: the original, or the rewrite without ZipMap. */
  bytes: Uint8Array;
}

/** Decodes an ONNX model; throws a plain Error with a reason when the bytes are not one. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  let model: ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw new Error(`not an ONNX model (protobuf decode failed: ${(error as Error).message})`);
  }
  if (!model.graph || !model.graph.node?.length) throw new Error("not an ONNX model (no graph or no nodes)");
  return model;
}

export function prepareForWeb(bytes: Uint8Array): PreparedModel {
  const model = decodeModel(bytes);
  const opsets: Record<string, number> = {};
  for (const o of model.opsetImport ?? []) opsets[o.domain || "ai.onnx"] = Number(o.version);
  const info: ModelInfo = { irVersion: Number(model.irVersion ?? 0), opsets, classifierLabels: classifierLabels(model) };

  const graph = model.graph!;
  const zipIndex = graph.node!.findIndex((n) => n.opType === "ZipMap" && n.domain === "ai.onnx.ml");
  if (zipIndex < 0) return { info, bytes };

  const zip = graph.node![zipIndex];
  info.zipMapClasses = labelsOf(zip, LABEL_ATTRIBUTES.ZipMap);

  // Identity keeps the ZipMap's output name, now carrying the [N, C] float tensor.
  const [probabilities] = zip.input!;
  const [outputName] = zip.output!;
  graph.node![zipIndex] = onnx.NodeProto.create({ opType: "Identity", input: [probabilities], output: [outputName], name: `${zip.name || "zipmap"}_as_tensor` });
  const out = graph.output!.find((o) => o.name === outputName);
  if (out) {
    out.type = onnx.TypeProto.create({
      tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: "N" }, { dimValue: info.zipMapClasses.length }] } },
    });
  }
  return { info, bytes: onnx.ModelProto.encode(model, writer()).finish() };
}
