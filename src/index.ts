/**
 * Worker entry: wiring only. The HTTP app (src/app.ts), the cron tasks each capability registers,
 * and (as they land) queue consumers and Durable Object classes.
 */
import { createApp } from "./app";
import { runDeploymentCron } from "./deployments/cron";
import { consumeFeatureLoads, FEATURE_LOADS_QUEUE, sweepFeatureLoads, type LoadMessage } from "./features";
import { consumeNotifications, monitoringCron, type NotificationMessage } from "./monitoring";

export { DeploymentStats } from "./deployments/live-stats";
export { ModelControl, MonitorShard, PredictionLog } from "./monitoring";
export { FeatureAggregates } from "./features";

const app = createApp();

/** Work the cron triggers in wrangler.toml run; each capability adds its task here. */
const cronTasks: ((controller: ScheduledController, env: Env, ctx: ExecutionContext) => Promise<void>)[] = [];
cronTasks.push(async (controller, env) => {
  await runDeploymentCron(env, controller.scheduledTime);
});
cronTasks.push((controller, env) => monitoringCron(controller, env));
cronTasks.push(async (controller, env) => void (await sweepFeatureLoads(env, controller.scheduledTime)));

export default {
  fetch: app.fetch,
  async queue(batch, env) {
    if (batch.queue === FEATURE_LOADS_QUEUE) return consumeFeatureLoads(batch as MessageBatch<LoadMessage>, env);
    // Only the monitoring notification queues (and their dead-letter queue) exist so far.
    await consumeNotifications(batch as MessageBatch<NotificationMessage>, env);
  },
  async scheduled(controller, env, ctx) {
    const results = await Promise.allSettled(cronTasks.map((task) => task(controller, env, ctx)));
    const failed = results.filter((r) => r.status === "rejected");
    if (failed.length) throw new AggregateError(failed.map((f) => (f as PromiseRejectedResult).reason), `${failed.length} cron task(s) failed`);
  },
} satisfies ExportedHandler<Env>;
