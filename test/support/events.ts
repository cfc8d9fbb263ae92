/**
 * A hand-built one-row prediction event of the demo LR's schema and reference (credit-risk 1.0.0
 * under another model name): what collector tests feed `recordPrediction` without serving a request.
 */
import type { ModelVersion } from "../../src/registry/store";
import type { PredictionEvent } from "../../src/serving/events";
import { columnsOf } from "./columns";
import { repoJson } from "./files";

export async function oneRowEvent(model: string, requestId: string): Promise<PredictionEvent> {
  const manifest = await repoJson("models/credit-risk-lr.manifest.json");
  const version = { modelName: model, version: "1.0.0", sha256: "s", featureSchema: manifest.featureSchema, reference: manifest.reference } as unknown as ModelVersion;
  const predictions = [{ label: 1, score: 0.75, probabilities: {} }];
  return { requestId, at: Date.now(), route: "v1", dispatch: { version }, predictions, columns: columnsOf(predictions), latencyMs: 2, inferenceMs: 0.1 };
}
