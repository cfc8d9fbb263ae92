/**
 * Worker entry: wiring only. The HTTP app (src/app.ts), the cron tasks each capability registers,
 * and (as they land) queue consumers and Durable Object classes.
 */
import { createApp } from "./app";
import { runDeploymentCron } from "./deployments/cron";
import { consumeNotifications, monitoringCron, type NotificationMessage } from "./monitoring";
import { consumeDispatch, DISPATCH_DLQ, DISPATCH_QUEUE, runRetrainingCron, type DispatchMessage } from "./retraining";

export { DeploymentStats } from "./deployments/live-stats";
export { ModelControl, MonitorShard, PredictionLog } from "./monitoring";
export { RetrainingWorkflow } from "./retraining";

const app = createApp();

/** Work the cron triggers in wrangler.toml run; each capability adds its task here. */
const cronTasks: ((controller: ScheduledController, env: Env, ctx: ExecutionContext) => Promise<void>)[] = [];
cronTasks.push(async (controller, env) => {
  await runDeploymentCron(env, controller.scheduledTime);
});
cronTasks.push((controller, env) => monitoringCron(controller, env));
cronTasks.push(async (controller, env) => {
  if (controller.cron === "* * * * *") await runRetrainingCron(env, controller.scheduledTime);
});

export default {
  fetch: app.fetch,
  async queue(batch, env) {
    if (batch.queue === DISPATCH_QUEUE || batch.queue === DISPATCH_DLQ) return consumeDispatch(batch as MessageBatch<DispatchMessage>, env);
    // Otherwise the monitoring notification queues (and their dead-letter queue).
    await consumeNotifications(batch as MessageBatch<NotificationMessage>, env);
  },
  async scheduled(controller, env, ctx) {
    const results = await Promise.allSettled(cronTasks.map((task) => task(controller, env, ctx)));
    const failed = results.filter((r) => r.status === "rejected");
    if (failed.length) throw new AggregateError(failed.map((f) => (f as PromiseRejectedResult).reason), `${failed.length} cron task(s) failed`);
  },
} satisfies ExportedHandler<Env>;
