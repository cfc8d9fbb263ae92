/**
 * A deliberately slow copy of an ONNX classifier: the same inputs and outputs, plus a CPU ballast
 * (`layers` width x width MatMul+Tanh layers on the input whose result is added times zero), so its
 * answers equal the original's while each row costs `layers * width^2` multiply-adds. Used by
 * `npm run bench:shadow` (a ~30 ms-per-row shadow) and by `npm run fixtures:slow`, which writes
 * test/fixtures/slow/credit-risk-lr-slow.onnx for the shadow CPU-budget tests.
 */
import { DT, floatTensor, node, onnx } from "../onnx/builder.ts";
import { mulberry32 } from "./prng.ts";

export function slowCopy(original: Uint8Array, layers: number, width: number, seed = 7): Uint8Array {
  const model = onnx.ModelProto.decode(original);
  const g = model.graph!;
  const input = g.input![0];
  const cols = Number(input.type!.tensorType!.shape!.dim!.at(-1)!.dimValue);
  const probs = g.output!.find((o) => o.type?.tensorType?.elemType === DT.FLOAT)!.name!;
  for (const n of g.node!) {
    n.output = n.output!.map((o) => (o === probs ? `${probs}_raw` : o));
    n.input = n.input!.map((i) => (i === probs ? `${probs}_raw` : i));
  }
  const rand = mulberry32(seed);
  const matrix = (r: number, c: number) => Array.from({ length: r * c }, () => (rand() * 2 - 1) / Math.sqrt(r));
  g.initializer!.push(floatTensor("ballast_w0", [cols, width], matrix(cols, width)), floatTensor("ballast_w", [width, width], matrix(width, width)), floatTensor("ballast_zero", [], [0]));
  let z = "ballast_z0";
  g.node!.push(node("MatMul", [input.name!, "ballast_w0"], ["ballast_m0"]), node("Tanh", ["ballast_m0"], [z]));
  for (let i = 1; i <= layers; i++) {
    g.node!.push(node("MatMul", [z, "ballast_w"], [`ballast_m${i}`]), node("Tanh", [`ballast_m${i}`], [`ballast_z${i}`]));
    z = `ballast_z${i}`;
  }
  g.node!.push(node("ReduceMean", [z], ["ballast_mean"]), node("Mul", ["ballast_mean", "ballast_zero"], ["ballast_nothing"]), node("Add", [`${probs}_raw`, "ballast_nothing"], [probs]));
  return onnx.ModelProto.encode(model).finish();
}
