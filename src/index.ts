/**
 * Worker entry: wiring only. The HTTP app (src/app.ts), the cron tasks each capability registers,
 * and (as they land) queue consumers and Durable Object classes.
 */
import { createApp } from "./app";

const app = createApp();

/** Work the cron triggers in wrangler.toml run; each capability adds its task here. */
const cronTasks: ((controller: ScheduledController, env: Env, ctx: ExecutionContext) => Promise<void>)[] = [];

export default {
  fetch: app.fetch,
  async scheduled(controller, env, ctx) {
    const results = await Promise.allSettled(cronTasks.map((task) => task(controller, env, ctx)));
    const failed = results.filter((r) => r.status === "rejected");
    if (failed.length) throw new AggregateError(failed.map((f) => (f as PromiseRejectedResult).reason), `${failed.length} cron task(s) failed`);
  },
} satisfies ExportedHandler<Env>;
