/**
 * AUC with its sampling error, and the two one-sided decisions the loop makes from live labels:
 *
 * - degradation trigger: the champion's live AUC is credibly below (registered AUC - max drop):
 *   the upper one-sided (1 - alpha) bound of the live AUC lies below that limit;
 * - watch rollback: the new champion's live AUC is credibly below the old champion's: a z test on
 *   the difference of two independent AUCs rejects "not worse" at alpha.
 *
 * Standard errors follow Hanley & McNeil (1982): Var(A) = [A(1-A) + (P-1)(Q1-A^2) + (N-1)(Q2-A^2)]/(PN),
 * Q1 = A/(2-A), Q2 = 2A^2/(1+A). With at least `min_labels` labels and both classes present, a
 * false alarm (firing when the truth sits exactly at the limit) happens with probability about alpha.
 */
import { normalQuantile } from "../deployments/stats";
import { auc } from "../stats/classification";

export interface AucEstimate {
  n: number;
  positives: number;
  negatives: number;
  auc: number | null;
  se: number | null;
}

export function aucEstimate(labels: number[], scores: number[]): AucEstimate {
  const positives = labels.reduce((a, b) => a + b, 0);
  const negatives = labels.length - positives;
  if (!positives || !negatives) return { n: labels.length, positives, negatives, auc: null, se: null };
  const a = auc(labels, scores);
  const q1 = a / (2 - a);
  const q2 = (2 * a * a) / (1 + a);
  const variance = (a * (1 - a) + (positives - 1) * (q1 - a * a) + (negatives - 1) * (q2 - a * a)) / (positives * negatives);
  return { n: labels.length, positives, negatives, auc: a, se: Math.sqrt(Math.max(variance, 0)) };
}

/** Enough labels, of both classes, for a verdict. */
export function usable(e: AucEstimate, minLabels: number): boolean {
  return e.auc !== null && e.n >= minLabels && e.positives >= 10 && e.negatives >= 10;
}

/** Upper one-sided (1 - alpha) bound of the AUC. */
export function upperBound(e: AucEstimate, alpha: number): number {
  return e.auc! + normalQuantile(1 - alpha) * e.se!;
}

/** z statistic of candidate - baseline, and whether it is credibly negative at alpha. */
export function worseThan(candidate: AucEstimate, baseline: AucEstimate, alpha: number): { z: number; worse: boolean; difference: number } {
  const difference = candidate.auc! - baseline.auc!;
  const se = Math.sqrt(candidate.se! ** 2 + baseline.se! ** 2);
  const z = se > 0 ? difference / se : difference < 0 ? -Infinity : 0;
  return { z, worse: z < -normalQuantile(1 - alpha), difference };
}
