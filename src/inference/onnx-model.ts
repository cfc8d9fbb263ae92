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

const { onnx } = onnxProto;
export type ModelProto = ReturnType<typeof onnx.ModelProto.decode>;

export function encodeModel(model: Parameters<typeof onnx.ModelProto.create>[0]): Uint8Array {
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}
