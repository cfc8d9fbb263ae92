/**
 * Worker entry: wiring only. The HTTP app (src/app.ts), the cron tasks each capability registers,
 * and (as they land) queue consumers and Durable Object classes.
 */
import { createApp } from "./app";
import { BATCH_DLQ, BATCH_QUEUE, consumeBatch, type BatchMessage } from "./batch";
import { runDeploymentCron } from "./deployments/cron";
import { consumeShadow, SHADOW_QUEUE, type ShadowMessage } from "./deployments/shadow";
import { sweepArtifacts } from "./registry/sweep";
import { consumeFeatureLoads, FEATURE_LOADS_QUEUE, sweepFeatureLoads, type LoadMessage } from "./features";
import { consumeNotifications, monitoringCron, NOTIFICATIONS_DLQ, NOTIFICATIONS_QUEUE, type NotificationMessage } from "./monitoring";
import { queueBaseName } from "./http/queues";
import { consumeDispatch, DISPATCH_DLQ, DISPATCH_QUEUE, runRetrainingCron, type DispatchMessage } from "./retraining";

export { DeploymentStats } from "./deployments/live-stats";
export { ModelControl, MonitorShard, PredictionLog } from "./monitoring";
export { FeatureAggregates } from "./features";
export { RetrainingWorkflow } from "./retraining";

const app = createApp();

/** Work the cron triggers in wrangler.toml run; each capability adds its task here. */
const cronTasks: ((controller: ScheduledController, env: Env, ctx: ExecutionContext) => Promise<void>)[] = [];
cronTasks.push(async (controller, env) => {
  await runDeploymentCron(env, controller.scheduledTime);
});
cronTasks.push((controller, env) => monitoringCron(controller, env));
// Daily: R2 artifacts no version references (left by a registration killed mid-way), past a grace period.
cronTasks.push(async (controller, env) => {
  if (controller.cron === "0 6 * * *") await sweepArtifacts(env, controller.scheduledTime);
});
cronTasks.push(async (controller, env) => {
  if (controller.cron === "* * * * *") await runRetrainingCron(env, controller.scheduledTime);
});
cronTasks.push(async (controller, env) => void (await sweepFeatureLoads(env, controller.scheduledTime)));

export default {
  fetch: app.fetch,
  // ctx is always passed by the runtime (optional here only so tests may call queue(batch, env)).
  async queue(batch, env, ctx?: ExecutionContext) {
    // Deployed environments suffix queue names (-staging, -production): dispatch on the base name.
    const queue = queueBaseName(batch.queue, env);
    if (queue === SHADOW_QUEUE) return consumeShadow(batch as MessageBatch<ShadowMessage>, env);
    if (queue === FEATURE_LOADS_QUEUE) return consumeFeatureLoads(batch as MessageBatch<LoadMessage>, env);
    if (queue === BATCH_QUEUE || queue === BATCH_DLQ) return consumeBatch(batch as MessageBatch<BatchMessage>, env, ctx!);
    if (queue === DISPATCH_QUEUE || queue === DISPATCH_DLQ) return consumeDispatch(batch as MessageBatch<DispatchMessage>, env);
    if (queue === NOTIFICATIONS_QUEUE || queue === NOTIFICATIONS_DLQ) return consumeNotifications(batch as MessageBatch<NotificationMessage>, env);
    // A queue this worker does not know: fail the batch (retried, then its dead-letter queue) rather
    // than handing its messages to a consumer that would misread them.
    throw new Error(`no consumer for queue '${batch.queue}' (QUEUE_SUFFIX '${env.QUEUE_SUFFIX ?? ""}')`);
  },
  async scheduled(controller, env, ctx) {
    const results = await Promise.allSettled(cronTasks.map((task) => task(controller, env, ctx)));
    const failed = results.filter((r) => r.status === "rejected");
    if (failed.length) throw new AggregateError(failed.map((f) => (f as PromiseRejectedResult).reason), `${failed.length} cron task(s) failed`);
  },
} satisfies ExportedHandler<Env>;
