/**
 * Monitoring's public face: the Durable Object classes, the routes, the listeners serving feeds,
 * the cron tasks and the queue consumer. src/app.ts and src/index.ts wire these and nothing else.
 */
import { onFailure, onPrediction } from "../serving/events";
import { collector } from "./collector";
import { evaluateAll } from "./evaluate";
import { publishAllDailyReports } from "./reports";

export { ModelControl } from "./control";
export { MonitorShard } from "./shard";
export { PredictionLog } from "./prediction-log";
export { consumeNotifications, NOTIFICATIONS_DLQ, NOTIFICATIONS_QUEUE, type NotificationMessage } from "./notify";
export { dashboardRoutes, feedbackRoutes, monitoringAdminRoutes, monitoringReadRoutes } from "./routes";
export { collectFleet, renderCounters, renderFleet } from "./prometheus";
export { collector } from "./collector";

let wired = false;
/** Subscribes the collector to prediction and failure events (once per isolate). */
export function wireMonitoring() {
  if (wired) return;
  wired = true;
  onPrediction((env, event) => collector.recordPrediction(env, event));
  onFailure((env, event) => collector.recordFailure(env, event));
}

/** Cron task: every minute evaluates SLAs and alerts; at 06:00 UTC publishes daily drift reports. */
export async function monitoringCron(controller: ScheduledController, env: Env): Promise<void> {
  if (controller.cron === "0 6 * * *") await publishAllDailyReports(env, controller.scheduledTime);
  else await evaluateAll(env, controller.scheduledTime);
}
