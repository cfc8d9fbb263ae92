/**
 * Computed (online) features written in TypeScript, for what the expression language cannot say.
 * Workers forbid eval, so these live in code: add an entry here, deploy, then define a feature
 * that names it (`{"kind": "online", "function": "<name>", ...}`). `reads` are the features of the
 * definition's group the function takes; they join the dependency DAG like an expression's
 * references (an unknown read or a cycle is refused when the feature is defined, as is an unknown
 * function name). `compute` gets each read's value (null when missing) and returns the feature's
 * value, or null for "no value" (the feature's fallback then applies; never invent a zero).
 */
import type { Value } from "./expression";

export interface FeatureFunction {
  reads: string[];
  compute(inputs: Record<string, Value | null>): Value | null;
}

export const featureFunctions: Record<string, FeatureFunction> = {
  /** Debt over income, capped at 10; no value when either is missing or income is not positive. */
  capped_debt_ratio: {
    reads: ["debt", "income"],
    compute: ({ debt, income }) => (typeof debt === "number" && typeof income === "number" && income > 0 ? Math.min(10, debt / income) : null),
  },
};

export function featureFunction(name: string): FeatureFunction | undefined {
  return Object.hasOwn(featureFunctions, name) ? featureFunctions[name] : undefined;
}
