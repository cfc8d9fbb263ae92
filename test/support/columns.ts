/**
 * Columns for hand-built predictions (tests build prediction events without running a model;
 * served requests get their columns from `decodeOutputs`). Classes are the distinct labels in
 * order of first appearance.
 */
import type { Prediction, PredictionColumns } from "../../src/inference/outputs";

export function columnsOf(predictions: readonly Prediction[]): PredictionColumns {
  const scores = new Float64Array(predictions.length);
  const labels = new Uint32Array(predictions.length);
  const classes: string[] = [];
  predictions.forEach((p, i) => {
    if ("value" in p) {
      scores[i] = p.value;
      return;
    }
    scores[i] = p.score;
    const name = String(p.label);
    const k = classes.indexOf(name);
    labels[i] = k >= 0 ? k : classes.push(name) - 1;
  });
  return { scores, labels, classes };
}
