/**
 * What deployments learn from served traffic, wired as prediction/failure/feedback listeners
 * (src/serving/events.ts). All of it runs inside ctx.waitUntil, after the caller's response is
 * decided, so none of it can change a response, its status or its latency.
 *
 * - Every routed prediction or failure is recorded per variant in the deployment's DeploymentStats,
 *   batched per isolate (recorder.ts).
 * - Shadow: a copy of the rows and the primary's predictions goes to the shadow queue; the shadow
 *   version scores them in the queue consumer, out of the caller's isolate (shadow.ts), bounded by
 *   SHADOW_TIMEOUT_MS; agreement of predicted labels and absolute score differences are recorded,
 *   and so are its errors and timeouts (a shadow that throws or hangs only shows up there).
 * - Feedback (labels joined to predictions by the monitoring capability): per-variant reward and
 *   conversion counts for the bandit and the A/B results, and (score, label) pairs for AUC.
 */
import type { ClassifierPrediction, Prediction } from "../inference/outputs";
import { onFailure, onFeedback, onPrediction, type FailureEvent, type FeedbackEvent, type PredictionEvent } from "../serving/events";
import { statsFor } from "./live-stats";
import { recorder } from "./recorder";
import { enqueueShadow, shadowMessage } from "./shadow";

const isClassifier = (p: Prediction): p is ClassifierPrediction => "score" in p;

export async function recordPrediction(env: Env, event: PredictionEvent): Promise<void> {
  const d = event.dispatch;
  if (!d.deployment || !d.variant) return;
  const tasks: Promise<unknown>[] = [
    recorder.add(env, d.deployment, {
      at: event.at,
      variant: d.variant,
      version: d.version.version,
      latencyMs: event.latencyMs,
      scores: event.predictions.filter(isClassifier).map((p) => p.score),
    }),
  ];
  if (d.shadow && event.rows) {
    const message = shadowMessage(d.deployment, d.version.modelName, d.shadow.version.version, event.at, event.rows, event.predictions);
    tasks.push(enqueueShadow(env, message, d.deployment, event.at));
  }
  await Promise.all(tasks);
}

export async function recordFailure(env: Env, event: FailureEvent): Promise<void> {
  if (!event.deployment || !event.variant) return;
  await recorder.add(env, event.deployment, { at: event.at, variant: event.variant, version: event.version ?? "", error: true });
}

const POSITIVE = new Set(["1", "true", "yes", "bad"]);

/** Turns an observed outcome into 0/1: numbers > 0 and the usual positive spellings are positive. */
export function isPositive(actual: number | string | boolean): 0 | 1 {
  if (typeof actual === "number") return actual > 0 ? 1 : 0;
  if (typeof actual === "boolean") return actual ? 1 : 0;
  return POSITIVE.has(actual.trim().toLowerCase()) ? 1 : 0;
}

export async function recordFeedback(env: Env, event: FeedbackEvent): Promise<void> {
  if (!event.deployment || !event.variant) return;
  const positive = isPositive(event.actual);
  const predicted = event.score >= 0.5 ? 1 : 0;
  await statsFor(env, event.deployment).recordFeedback({ at: event.at, variant: event.variant, score: event.score, positive, correct: predicted === positive ? 1 : 0 });
}

let wired = false;
/** Registers the listeners once per isolate (createApp may run more than once in tests). */
export function wireDeploymentListeners() {
  if (wired) return;
  wired = true;
  onPrediction(recordPrediction);
  onFailure(recordFailure);
  onFeedback(recordFeedback);
}
