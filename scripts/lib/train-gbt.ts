/**
 * Gradient-boosted decision trees for binary log-loss (Newton boosting, XGBoost-style):
 * exact greedy splits on float32 inputs, learned default direction for missing values (NaN),
 * leaf value = -lr * G / (H + lambda). Deterministic (no subsampling, first best split wins).
 * Trees use the conventions of scripts/lib/predict-reference.ts (x <= threshold -> left).
 */
import { sigmoid, treeLeaf } from "./predict-reference.ts";
import type { TreeNode } from "./predict-reference.ts";

export interface GbtOptions {
  nTrees: number;
  maxDepth: number;
  learningRate: number;
  lambda: number;
  minChildWeight: number;
  minSamplesLeaf: number;
}

export interface GbtFit {
  baseScore: number;
  trees: { nodes: TreeNode[] }[];
}

interface Split {
  gain: number;
  feature: number;
  threshold: number;
  missingGoesLeft: boolean;
}

/** @param X rows of float32 values (NaN = missing) */
export function fitGbt(X: number[][], y: number[], opts: GbtOptions): GbtFit {
  const n = X.length;
  const F = X[0].length;
  const Xf = X.map((r) => r.map((v) => Math.fround(v)));
  const order: Int32Array[] = [];
  const missingIdx: Int32Array[] = [];
  for (let f = 0; f < F; f++) {
    const present: number[] = [];
    const miss: number[] = [];
    for (let i = 0; i < n; i++) (Number.isNaN(Xf[i][f]) ? miss : present).push(i);
    present.sort((a, b) => Xf[a][f] - Xf[b][f] || a - b);
    order.push(Int32Array.from(present));
    missingIdx.push(Int32Array.from(miss));
  }
  const prior = y.reduce((a, b) => a + b, 0) / n;
  const baseScore = Math.fround(Math.log(prior / (1 - prior)));
  const score = new Float64Array(n).fill(baseScore);
  const g = new Float64Array(n);
  const h = new Float64Array(n);
  const inNode = new Uint8Array(n);
  const { lambda, minChildWeight, minSamplesLeaf } = opts;
  const obj = (G: number, H: number) => (G * G) / (H + lambda);

  function findSplit(rows: number[]): Split | null {
    for (const i of rows) inNode[i] = 1;
    let G = 0;
    let H = 0;
    for (const i of rows) {
      G += g[i];
      H += h[i];
    }
    const parent = obj(G, H);
    let best: Split | null = null;
    for (let f = 0; f < F; f++) {
      let Gm = 0;
      let Hm = 0;
      let nm = 0;
      for (const i of missingIdx[f]) if (inNode[i]) {
        Gm += g[i];
        Hm += h[i];
        nm++;
      }
      const nPresent = rows.length - nm;
      let GL = 0;
      let HL = 0;
      let nL = 0;
      let prev = Number.NaN;
      const ord = order[f];
      for (let k = 0; k < ord.length; k++) {
        const i = ord[k];
        if (!inNode[i]) continue;
        const v = Xf[i][f];
        if (nL > 0 && v > prev) {
          // candidate: present values <= prev go left
          const nR = nPresent - nL;
          const options: boolean[] = nm > 0 ? [true, false] : [nL >= nR];
          for (const mLeft of options) {
            const gl = mLeft ? GL + Gm : GL;
            const hl = mLeft ? HL + Hm : HL;
            const cl = mLeft ? nL + nm : nL;
            const gr = G - gl;
            const hr = H - hl;
            const cr = rows.length - cl;
            if (hl < minChildWeight || hr < minChildWeight || cl < minSamplesLeaf || cr < minSamplesLeaf) continue;
            const gain = obj(gl, hl) + obj(gr, hr) - parent;
            if (gain > 1e-12 && (best === null || gain > best.gain)) {
              let t = Math.fround((prev + v) / 2);
              if (!(t >= prev && t < v)) t = prev;
              best = { gain, feature: f, threshold: t, missingGoesLeft: mLeft };
            }
          }
        }
        GL += g[i];
        HL += h[i];
        nL++;
        prev = v;
      }
    }
    for (const i of rows) inNode[i] = 0;
    return best;
  }

  const trees: { nodes: TreeNode[] }[] = [];
  for (let t = 0; t < opts.nTrees; t++) {
    for (let i = 0; i < n; i++) {
      const p = sigmoid(score[i]);
      g[i] = p - y[i];
      h[i] = p * (1 - p);
    }
    const nodes: TreeNode[] = [];
    const build = (rows: number[], depth: number): number => {
      const id = nodes.length;
      nodes.push({});
      const split = depth < opts.maxDepth ? findSplit(rows) : null;
      if (split === null) {
        let G = 0;
        let H = 0;
        for (const i of rows) {
          G += g[i];
          H += h[i];
        }
        nodes[id] = { leaf: Math.fround((-opts.learningRate * G) / (H + lambda)) };
        return id;
      }
      const left: number[] = [];
      const right: number[] = [];
      for (const i of rows) {
        const v = Xf[i][split.feature];
        (Number.isNaN(v) ? split.missingGoesLeft : v <= split.threshold) ? left.push(i) : right.push(i);
      }
      const l = build(left, depth + 1);
      const r = build(right, depth + 1);
      nodes[id] = { feature: split.feature, threshold: split.threshold, left: l, right: r, missingGoesLeft: split.missingGoesLeft };
      return id;
    };
    build(Array.from({ length: n }, (_, i) => i), 0);
    trees.push({ nodes });
    for (let i = 0; i < n; i++) score[i] += treeLeaf(nodes, Xf[i]);
  }
  return { baseScore, trees };
}
