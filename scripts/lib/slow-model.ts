/**
 * A deliberately slow copy of an ONNX classifier: the same inputs and outputs, plus a CPU ballast
 * whose result is added times zero, so its answers equal the original's (the ballast ends in Tanh,
 * bounded, so the product is exactly 0, never NaN) while each row costs a known amount of work.
 *
 * The ballast is `layers` width x width MatMul+Tanh layers on the input, run `loops` times: with
 * loops = 1 a plain chain of nodes; with loops > 1 the chain is the body of an ONNX Loop with a
 * constant trip count, so the work grows with `loops` while the file stays one width x width
 * matrix and a few nodes (a long chain of nodes instead makes session creation slow). Per row:
 * `layers * loops * width^2` multiply-adds. Deterministic (seeded weights).
 *
 * Used by `npm run bench:shadow` (a shadow >= 30 ms slower per 1-row request than the original)
 * and by `npm run fixtures:slow`, which writes test/fixtures/slow/credit-risk-lr-slow.onnx (a few
 * ms per row, kept cheap for the test suite) for the shadow CPU-budget tests.
 */
import { DT, floatTensor, int64Tensor, node, onnx, tensorInfo } from "../onnx/builder.ts";
import type { onnx as OnnxTypes } from "onnx-proto";
import { mulberry32 } from "./prng.ts";

export function slowCopy(original: Uint8Array, layers: number, width: number, seed = 7, loops = 1): Uint8Array {
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
  g.node!.push(node("MatMul", [input.name!, "ballast_w0"], ["ballast_m0"]), node("Tanh", ["ballast_m0"], ["ballast_z0"]));
  /** `layers` MatMul+Tanh nodes from `from`, named with `prefix`; returns the nodes and the last output. */
  const chain = (from: string, prefix: string) => {
    const nodes = [];
    let z = from;
    for (let i = 1; i <= layers; i++) {
      nodes.push(node("MatMul", [z, "ballast_w"], [`${prefix}m${i}`]), node("Tanh", [`${prefix}m${i}`], [`${prefix}z${i}`]));
      z = `${prefix}z${i}`;
    }
    return { nodes, out: z };
  };
  let z: string;
  if (loops <= 1) {
    const c = chain("ballast_z0", "ballast_");
    g.node!.push(...c.nodes);
    z = c.out;
  } else {
    // Loop(M, cond = "", z0) -> zN; the body reads ballast_w from the outer scope.
    const c = chain("body_z_in", "body_");
    const body: OnnxTypes.IGraphProto = {
      name: "ballast_body",
      input: [tensorInfo("body_i", DT.INT64, []), tensorInfo("body_cond_in", DT.BOOL, []), tensorInfo("body_z_in", DT.FLOAT, ["N", width])],
      output: [tensorInfo("body_cond_out", DT.BOOL, []), tensorInfo(c.out, DT.FLOAT, ["N", width])],
      node: [node("Identity", ["body_cond_in"], ["body_cond_out"]), ...c.nodes],
    };
    g.initializer!.push(int64Tensor("ballast_trips", [], [loops]));
    g.node!.push({ opType: "Loop", input: ["ballast_trips", "", "ballast_z0"], output: ["ballast_loop_z"], name: "ballast_loop", domain: "", attribute: [{ name: "body", type: onnx.AttributeProto.AttributeType.GRAPH, g: body }] });
    z = "ballast_loop_z";
  }
  g.node!.push(node("ReduceMean", [z], ["ballast_mean"]), node("Mul", ["ballast_mean", "ballast_zero"], ["ballast_nothing"]), node("Add", [`${probs}_raw`, "ballast_nothing"], [probs]));
  return onnx.ModelProto.encode(model).finish();
}
