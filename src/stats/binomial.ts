/**
 * Exact binomial tail probabilities, for verdicts on counts out of small samples (canary p95,
 * SLA error-rate and latency alerts): is k of n more than a share p would give by chance?
 */
import { logGamma } from "./special";

/**
 * P(X >= k) for X ~ Binomial(n, p). Summed from the pmf at k upwards by the ratio recurrence (one
 * log-gamma evaluation, then O(terms that matter)); at or below the mean it is computed as the
 * complement of the other tail, so no sum starts from an underflowing term.
 */
export function binomialUpperTail(k: number, n: number, p: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  if (k <= n * p) return Math.max(0, 1 - binomialUpperTail(n - k + 1, n, 1 - p));
  let term = Math.exp(logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1) + k * Math.log(p) + (n - k) * Math.log1p(-p));
  let sum = 0;
  for (let i = k; i <= n && term > 0; i++) {
    sum += term;
    if (term < sum * 1e-17) break;
    term *= ((n - i) / (i + 1)) * (p / (1 - p));
  }
  return Math.min(1, sum);
}
