/** Regression metrics for live performance: RMSE, MAE, R^2 (as scikit-learn defines them). */

export function rmse(actual: readonly number[], predicted: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < actual.length; i++) s += (actual[i] - predicted[i]) ** 2;
  return Math.sqrt(s / actual.length);
}

export function mae(actual: readonly number[], predicted: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < actual.length; i++) s += Math.abs(actual[i] - predicted[i]);
  return s / actual.length;
}

/** Coefficient of determination 1 - SS_res / SS_tot (NaN when the actuals are constant). */
export function r2(actual: readonly number[], predicted: readonly number[]): number {
  const mean = actual.reduce((s, v) => s + v, 0) / actual.length;
  let res = 0;
  let tot = 0;
  for (let i = 0; i < actual.length; i++) {
    res += (actual[i] - predicted[i]) ** 2;
    tot += (actual[i] - mean) ** 2;
  }
  return tot === 0 ? Number.NaN : 1 - res / tot;
}
