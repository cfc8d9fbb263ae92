/**
 * Dispatch: the queue consumer that hands a job to the model's trainer.
 *
 * The workflow puts `{job_id}` on the dispatch queue. The consumer POSTs the job spec to the
 * trainer's URL, signed (signing.ts), with `idempotency-key: <job id>`; the trainer must treat a
 * second request with the same key as the same job (at-least-once delivery means duplicates). A
 * message for a job that is no longer queued is acknowledged without a call, so a redelivery after
 * success never starts a second training. A trainer that does not answer 2xx gets the message
 * again with exponential back-off (base RETRAINING_DISPATCH_BACKOFF_SECONDS, max_retries in
 * wrangler.toml); after the last retry the message lands in the dead-letter queue, whose consumer
 * fails the job with the last reason and tells its workflow to stop waiting.
 */
import { queueBaseName } from "../http/queues";
import { registryDb, getVersion, listVersions, toModelVersion } from "../registry/store";
import { ACTOR, failJob } from "./jobs";
import type { DispatchMessage } from "./model";
import { sign, SIGNATURE_HEADER } from "./signing";
import { changeJob, findJob, getConfig, updateJob, type JobRow } from "./store";

export const DISPATCH_QUEUE = "edge-ml-retraining-dispatch";
export const DISPATCH_DLQ = "edge-ml-retraining-dispatch-dlq";

/** The trainer's fetch: the network, or the test-only TEST_TRAINER service binding when present. */
function trainerFetch(env: Env): (url: string, init: RequestInit) => Promise<Response> {
  const test = (env as unknown as { TEST_TRAINER?: Fetcher }).TEST_TRAINER;
  return test ? (url, init) => test.fetch(url, init) : (url, init) => fetch(url, init);
}

/** The job spec the trainer receives (documented in README "Retraining"). */
export async function jobSpec(env: Env, job: JobRow, workerUrl: string) {
  const db = registryDb(env.DB);
  const champion = job.championVersion ? toModelVersion(await getVersion(db, job.modelName, job.championVersion)) : null;
  const [latest] = await listVersions(db, job.modelName);
  const suggested = latest ? `${latest.major}.${latest.minor + 1}.0` : "1.0.0";
  const base = `${workerUrl.replace(/\/+$/, "")}/retraining/jobs/${job.id}`;
  return {
    job_id: job.id,
    model: job.modelName,
    reason: job.reason,
    trigger: job.triggerType,
    champion: champion ? { version: champion.version, task: champion.task, metrics: champion.metrics, feature_schema: champion.featureSchema } : null,
    candidate_version: suggested,
    export: { ...(job.export as Record<string, unknown>), train_url: `${base}/export/train`, oot_url: `${base}/export/oot`, format: "ndjson+gzip" },
    callbacks: { status_url: `${base}/status`, candidate_url: `${base}/candidate`, complete_url: `${base}/complete` },
    created_at: new Date(job.createdAt).toISOString(),
  };
}

export async function dispatchJob(env: Env, job: JobRow): Promise<{ ok: true } | { ok: false; error: string }> {
  const cfg = await getConfig(registryDb(env.DB), job.modelName);
  const body = JSON.stringify(await jobSpec(env, job, cfg.config.worker_url));
  const url = new URL(cfg.trainerUrl);
  const headers = {
    "content-type": "application/json",
    "idempotency-key": job.id,
    "user-agent": "edge-ml-runtime/1",
    [SIGNATURE_HEADER]: await sign(cfg.trainerSecret, "POST", url.pathname, body),
  };
  let res: Response;
  try {
    res = await trainerFetch(env)(cfg.trainerUrl, { method: "POST", headers, body, redirect: "manual" });
  } catch (error) {
    return { ok: false, error: `trainer request failed: ${String(error)}` };
  }
  const text = (await res.text()).slice(0, 300);
  if (res.status < 200 || res.status >= 300) return { ok: false, error: `trainer answered ${res.status}${text ? `: ${text}` : ""}` };
  return { ok: true };
}

/** Back-off before delivery attempt `attempts + 1`: base, 2 base, 4 base, ... capped at an hour. */
export function dispatchDelaySeconds(attempts: number, base: number): number {
  return Math.min(3600, base * 2 ** Math.min(Math.max(attempts - 1, 0), 8));
}

export async function consumeDispatch(batch: MessageBatch<DispatchMessage>, env: Env): Promise<void> {
  const dead = queueBaseName(batch.queue, env) === DISPATCH_DLQ;
  const db = registryDb(env.DB);
  const configured = Number((env as unknown as Record<string, string | undefined>).RETRAINING_DISPATCH_BACKOFF_SECONDS ?? "30");
  const base = Number.isFinite(configured) && configured >= 0 ? configured : 30;
  for (const msg of batch.messages) {
    const job = await findJob(db, msg.body.job_id);
    if (!job || job.state !== "queued") {
      msg.ack(); // already dispatched (a redelivery), cancelled or gone: nothing to do
      continue;
    }
    if (dead) {
      const error = `trainer unreachable after ${msg.attempts} attempt(s); last: ${job.error ?? "unknown"}`;
      await failJob(env, job.id, error);
      await env.RETRAINING_WORKFLOW.get(job.id)
        .then((w) => w.sendEvent({ type: "trainer-result", payload: { status: "failed", error } }))
        .catch(() => undefined);
      msg.ack();
      continue;
    }
    const result = await dispatchJob(env, job);
    if (result.ok) {
      await updateJob(db, job.id, (j) => (j.state === "queued" ? { action: "dispatch", actor: ACTOR, state: "dispatched", set: { error: null }, details: { attempts: msg.attempts } } : null));
      msg.ack();
    } else {
      // Record the attempt (state unchanged) so admins see retries in the history.
      await changeJob(db, job, { action: "dispatch_retry", actor: ACTOR, set: { error: result.error }, details: { attempt: msg.attempts, error: result.error } }).catch(() => undefined);
      msg.retry({ delaySeconds: dispatchDelaySeconds(msg.attempts, base) });
    }
  }
}
