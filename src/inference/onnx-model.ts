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
  const info: ModelInfo = { irVersion: Number(model.irVersion ?? 0), opsets };

  const graph = model.graph!;
  const zipIndex = graph.node!.findIndex((n) => n.opType === "ZipMap" && n.domain === "ai.onnx.ml");
  if (zipIndex < 0) return { info, bytes };

  const zip = graph.node![zipIndex];
  const ints = zip.attribute?.find((a) => a.name === "classlabels_int64s")?.ints;
  const strings = zip.attribute?.find((a) => a.name === "classlabels_strings")?.strings;
  info.zipMapClasses = ints?.length ? ints.map((v) => Number(v)) : (strings ?? []).map((s) => new TextDecoder().decode(s));

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
