/**
 * Retraining's public face: routes, the workflow class, the cron task, the dispatch queue consumer
 * and the payload archive's listeners. src/app.ts and src/index.ts wire these and nothing else.
 */
import { onFeedback, onPrediction } from "../serving/events";
import { payloadArchive } from "./archive";

export { retrainingAdminRoutes, trainerRoutes } from "./routes";
export { RetrainingWorkflow } from "./workflow";
export { runRetrainingCron } from "./cron";
export { consumeDispatch, DISPATCH_DLQ, DISPATCH_QUEUE } from "./dispatch";
export type { DispatchMessage } from "./model";

let wired = false;
/** Subscribes the payload archive to prediction and feedback events (once per isolate). */
export function wireRetraining() {
  if (wired) return;
  wired = true;
  onPrediction((env, event) => payloadArchive.recordPrediction(env, event));
  onFeedback((env, event) => payloadArchive.recordFeedback(env, event));
}
