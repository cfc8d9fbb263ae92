/**
 * Queue names as the worker's code knows them. wrangler.toml's top level names each queue
 * (`edge-ml-batch`, `edge-ml-batch-dlq`, ...); a deployed environment's queues carry the
 * environment's suffix (`edge-ml-batch-staging`: queue names are account-wide, so staging and
 * production cannot share them), and `npm run deploy:setup` writes that suffix into the
 * environment's vars as QUEUE_SUFFIX. Consumers dispatch on the base name, so a batch from
 * `edge-ml-batch-dlq-production` reaches the batch dead-letter handler, not the notifications one.
 */

/** `batch.queue` without the environment's suffix (unchanged when QUEUE_SUFFIX is empty or absent). */
export function queueBaseName(name: string, env: { QUEUE_SUFFIX?: string }): string {
  const suffix = env.QUEUE_SUFFIX ?? "";
  return suffix && name.endsWith(suffix) ? name.slice(0, -suffix.length) : name;
}
