/**
 * L2-regularised logistic regression fitted by Newton / IRLS on standardised columns, then
 * folded back to weights on the RAW column values:
 *   z = b + sum_j w_j (x_j - mu_j) / sd_j  =  (b - sum_j w_j mu_j / sd_j) + sum_j (w_j / sd_j) x_j
 * Objective: sum_i logloss_i + (lambda / 2) * ||w||^2 (intercept not penalised).
 */

export interface LogisticFit {
  weights: number[]; // on raw columns
  intercept: number;
  standardized: { weights: number[]; intercept: number; mean: number[]; sd: number[] };
  iterations: number;
  converged: boolean;
}

function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[p][c])) p = r;
    [M[c], M[p]] = [M[p], M[c]];
    if (Math.abs(M[c][c]) < 1e-300) throw new Error("singular Hessian");
    for (let r = c + 1; r < n; r++) {
      const f = M[r][c] / M[c][c];
      if (f !== 0) for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = M[r][n];
    for (let k = r + 1; k < n; k++) s -= M[r][k] * x[k];
    x[r] = s / M[r][r];
  }
  return x;
}

/**
 * @param X rows of dense column values (no missing values; impute first)
 * @param y 0/1 labels
 * @param standardize per column: true = centre/scale (numeric), false = leave as is (one-hot)
 */
export function fitLogistic(
  X: number[][],
  y: number[],
  standardize: boolean[],
  opts: { lambda?: number; maxIter?: number; tol?: number } = {},
): LogisticFit {
  const lambda = opts.lambda ?? 1;
  const maxIter = opts.maxIter ?? 100;
  const tol = opts.tol ?? 1e-10;
  const n = X.length;
  const F = standardize.length;
  const mean = new Array<number>(F).fill(0);
  const sd = new Array<number>(F).fill(1);
  for (let j = 0; j < F; j++) {
    if (!standardize[j]) continue;
    let s = 0;
    for (const r of X) s += r[j];
    mean[j] = s / n;
    let v = 0;
    for (const r of X) v += (r[j] - mean[j]) ** 2;
    sd[j] = Math.sqrt(v / n) || 1;
  }
  const Z = X.map((r) => r.map((v, j) => (v - mean[j]) / sd[j]));
  const P = F + 1; // theta[0] = intercept
  const theta = new Array<number>(P).fill(0);
  let iterations = 0;
  let converged = false;
  for (let it = 0; it < maxIter; it++) {
    iterations = it + 1;
    const g = new Array<number>(P).fill(0);
    const H = Array.from({ length: P }, () => new Array<number>(P).fill(0));
    for (let i = 0; i < n; i++) {
      const zi = Z[i];
      let eta = theta[0];
      for (let j = 0; j < F; j++) eta += theta[j + 1] * zi[j];
      const p = 1 / (1 + Math.exp(-eta));
      const w = p * (1 - p);
      const r = p - y[i];
      const xi = [1, ...zi];
      for (let a = 0; a < P; a++) {
        g[a] += r * xi[a];
        const wa = w * xi[a];
        for (let b = a; b < P; b++) H[a][b] += wa * xi[b];
      }
    }
    for (let a = 0; a < P; a++) for (let b = 0; b < a; b++) H[a][b] = H[b][a];
    for (let j = 1; j < P; j++) {
      g[j] += lambda * theta[j];
      H[j][j] += lambda;
    }
    const step = solve(H, g);
    let maxStep = 0;
    for (let a = 0; a < P; a++) {
      theta[a] -= step[a];
      maxStep = Math.max(maxStep, Math.abs(step[a]));
    }
    if (maxStep < tol) {
      converged = true;
      break;
    }
  }
  const wStd = theta.slice(1);
  const weights = wStd.map((w, j) => w / sd[j]);
  const intercept = theta[0] - wStd.reduce((s, w, j) => s + (w * mean[j]) / sd[j], 0);
  return { weights, intercept, standardized: { weights: wStd, intercept: theta[0], mean, sd }, iterations, converged };
}
