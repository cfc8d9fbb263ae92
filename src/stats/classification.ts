/**
 * Binary-classification metrics (AUC, KS, Gini, log loss, Brier, accuracy), shared by the training
 * script (holdout metrics) and the worker (live performance, validation).
 * Labels are 0/1 (1 = positive = "bad"); scores are P(label 1).
 * Pure functions, no dependencies.
 */

/** Average ranks (1-based) with ties sharing the mean of their positions. */
export function averageRanks(values: number[]): number[] {
  const idx = values.map((_, i) => i).sort((a, b) => values[a] - values[b]);
  const ranks = new Array<number>(values.length);
  let i = 0;
  while (i < idx.length) {
    let j = i;
    while (j + 1 < idx.length && values[idx[j + 1]] === values[idx[i]]) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[idx[k]] = r;
    i = j + 1;
  }
  return ranks;
}

function counts(labels: number[]): { nPos: number; nNeg: number } {
  let nPos = 0;
  for (const y of labels) {
    if (y !== 0 && y !== 1) throw new Error(`label must be 0 or 1, got ${y}`);
    nPos += y;
  }
  const nNeg = labels.length - nPos;
  if (nPos === 0 || nNeg === 0) throw new Error("need both classes");
  return { nPos, nNeg };
}

/** ROC AUC via the Mann-Whitney U statistic; ties count 1/2 (average ranks). */
export function auc(labels: number[], scores: number[]): number {
  const { nPos, nNeg } = counts(labels);
  const ranks = averageRanks(scores);
  let sumPos = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === 1) sumPos += ranks[i];
  return (sumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/**
 * Kolmogorov-Smirnov statistic: max over score thresholds t of |F_pos(t) - F_neg(t)|, where
 * F is the empirical CDF P(score <= t) within each class. Thresholds are the distinct scores
 * (tied scores move together).
 */
export function ks(labels: number[], scores: number[]): number {
  const { nPos, nNeg } = counts(labels);
  const idx = scores.map((_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let cPos = 0;
  let cNeg = 0;
  let best = 0;
  let i = 0;
  while (i < idx.length) {
    const s = scores[idx[i]];
    while (i < idx.length && scores[idx[i]] === s) {
      if (labels[idx[i]] === 1) cPos++;
      else cNeg++;
      i++;
    }
    best = Math.max(best, Math.abs(cPos / nPos - cNeg / nNeg));
  }
  return best;
}

export function gini(labels: number[], scores: number[]): number {
  return 2 * auc(labels, scores) - 1;
}

/** Mean binary cross-entropy (natural log), probabilities clipped to [1e-15, 1 - 1e-15]. */
export function logLoss(labels: number[], probs: number[]): number {
  const eps = 1e-15;
  let s = 0;
  for (let i = 0; i < labels.length; i++) {
    const p = Math.min(1 - eps, Math.max(eps, probs[i]));
    s -= labels[i] === 1 ? Math.log(p) : Math.log(1 - p);
  }
  return s / labels.length;
}

export function brier(labels: number[], probs: number[]): number {
  let s = 0;
  for (let i = 0; i < labels.length; i++) s += (probs[i] - labels[i]) ** 2;
  return s / labels.length;
}

/** Accuracy of the rule "predict 1 iff p > threshold" (0.5 by default, ties -> 0 like ArgMax). */
export function accuracy(labels: number[], probs: number[], threshold = 0.5): number {
  let ok = 0;
  for (let i = 0; i < labels.length; i++) ok += (probs[i] > threshold ? 1 : 0) === labels[i] ? 1 : 0;
  return ok / labels.length;
}

export interface BinaryMetrics {
  auc: number;
  ks: number;
  gini: number;
  log_loss: number;
  brier: number;
  accuracy: number;
  n_holdout: number;
}

export function binaryMetrics(labels: number[], probs: number[], digits = 6): BinaryMetrics {
  const r = (v: number) => Number(v.toFixed(digits));
  const a = auc(labels, probs);
  return {
    auc: r(a),
    ks: r(ks(labels, probs)),
    gini: r(2 * a - 1),
    log_loss: r(logLoss(labels, probs)),
    brier: r(brier(labels, probs)),
    accuracy: r(accuracy(labels, probs)),
    n_holdout: labels.length,
  };
}

export interface Confusion {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

/** Confusion counts of the rule "predict 1 iff p > threshold". */
export function confusion(labels: number[], probs: number[], threshold = 0.5): Confusion {
  const c = { tp: 0, fp: 0, tn: 0, fn: 0 };
  for (let i = 0; i < labels.length; i++) {
    const predicted = probs[i] > threshold;
    if (predicted) labels[i] === 1 ? c.tp++ : c.fp++;
    else labels[i] === 1 ? c.fn++ : c.tn++;
  }
  return c;
}

/** Precision, recall and F1 of the positive class (0 when undefined, as scikit-learn's zero_division=0). */
export function precisionRecallF1(c: Confusion): { precision: number; recall: number; f1: number } {
  const precision = c.tp + c.fp ? c.tp / (c.tp + c.fp) : 0;
  const recall = c.tp + c.fn ? c.tp / (c.tp + c.fn) : 0;
  const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, f1 };
}

/** Multiclass accuracy and macro-averaged precision / recall / F1 over the classes seen in either list. */
export function multiclassMetrics(actual: readonly (number | string)[], predicted: readonly (number | string)[]) {
  const classes = [...new Set([...actual, ...predicted].map(String))];
  let correct = 0;
  const per = new Map(classes.map((k) => [k, { tp: 0, fp: 0, fn: 0, tn: 0 }]));
  for (let i = 0; i < actual.length; i++) {
    const a = String(actual[i]);
    const p = String(predicted[i]);
    if (a === p) {
      correct++;
      per.get(a)!.tp++;
    } else {
      per.get(p)!.fp++;
      per.get(a)!.fn++;
    }
  }
  let precision = 0;
  let recall = 0;
  let f1 = 0;
  for (const c of per.values()) {
    const m = precisionRecallF1(c);
    precision += m.precision;
    recall += m.recall;
    f1 += m.f1;
  }
  const k = classes.length || 1;
  return { accuracy: actual.length ? correct / actual.length : Number.NaN, precision_macro: precision / k, recall_macro: recall / k, f1_macro: f1 / k };
}
