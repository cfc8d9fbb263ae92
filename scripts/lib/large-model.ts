/**
 * A ~5 MB ONNX model for cold-start measurements, made deterministically at run time instead of
 * committing a 5 MB binary: the demo GBDT's 100 trees (models/credit-risk-gbt.params.json) repeated
 * k times with each leaf divided by k. The ensemble is k times as large (ONNX bytes, nodes the
 * runtime builds at session creation, trees walked per row) and scores like the demo model (up to
 * float32 rounding), so the demo's manifest (schema, reference statistics) describes it too.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { encodeModel, treeClassifierGraph } from "../onnx/builder.ts";
import { ROOT } from "./dev-server.ts";
import type { TreeNode } from "./predict-reference.ts";

export interface LargeModel {
  manifest: string;
  bytes: Uint8Array;
  trees: number;
}

/** The demo GBDT repeated until the ONNX file reaches `targetBytes`; registered as `name`@1.0.0. */
export function largeGbdt(targetBytes = 5 * 1024 * 1024, name = "credit-risk-large"): LargeModel {
  const params = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-gbt.params.json"), "utf8")) as { baseScore: number; trees: { nodes: TreeNode[] }[]; columns: unknown[] };
  const demo = readFileSync(path.join(ROOT, "models/credit-risk-gbt.onnx")).byteLength;
  const k = Math.max(1, Math.round(targetBytes / demo));
  const trees: { nodes: TreeNode[] }[] = [];
  for (let copy = 0; copy < k; copy++) {
    for (const t of params.trees) trees.push({ nodes: t.nodes.map((n) => (n.leaf === undefined ? n : { ...n, leaf: n.leaf / k })) });
  }
  const manifest = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-gbt.manifest.json"), "utf8"));
  manifest.name = name;
  manifest.version = "1.0.0";
  manifest.description = `Cold-start test model: the demo GBDT's trees repeated ${k} times (${trees.length} trees), leaves divided by ${k}.`;
  const bytes = encodeModel(treeClassifierGraph({ trees: trees as never, classes: { int64: [0, 1] }, baseScore: params.baseScore, postTransform: "LOGISTIC" }, params.columns.length), {
    docString: manifest.description,
    metadata: { name, version: "1.0.0" },
  });
  return { manifest: JSON.stringify(manifest), bytes, trees: trees.length };
}
