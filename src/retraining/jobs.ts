/**
 * Starting, failing and announcing jobs: shared by the cron (automatic triggers), the admin API
 * (manual runs, cancel), the queue consumer and the workflow.
 *
 * A job is a D1 row (the record admins read) plus a Workflow instance with the job's id (the
 * durable execution: export, dispatch, wait for the trainer, validate, release). Creating the row
 * first makes the one-active-job rule atomic; if the workflow cannot be created the job fails at
 * once with that reason, so no row is left queued with nothing behind it.
 */
import type { Severity } from "../monitoring/sla";
import { findAlias, registryDb, type Db } from "../registry/store";
import { createJob, updateJob, type JobRow, type NewJob } from "./store";
import type { JobState } from "./model";

export const ACTOR = "retraining";

export async function championOf(db: Db, model: string): Promise<string | null> {
  return (await findAlias(db, model, "champion"))?.version ?? null;
}

export async function startJob(env: Env, job: Omit<NewJob, "championVersion">, now = Date.now()): Promise<JobRow> {
  const db = registryDb(env.DB);
  const row = await createJob(db, { ...job, championVersion: await championOf(db, job.model) }, now);
  try {
    await env.RETRAINING_WORKFLOW.create({ id: row.id, params: { job_id: row.id } });
  } catch (error) {
    return failJob(env, row.id, `could not start the job's workflow: ${String(error)}`);
  }
  return row;
}

/** Marks a job failed (unless it is already final) and announces it. */
export async function failJob(env: Env, id: string, error: string, actor = ACTOR): Promise<JobRow> {
  const db = registryDb(env.DB);
  let changed = false;
  const row = await updateJob(db, id, (job) => {
    if (!["queued", "dispatched", "training", "validating"].includes(job.state)) return null;
    changed = true;
    return { action: "fail", actor, state: "failed", set: { error }, details: { error } };
  });
  if (changed) await announce(env, row, "warning", `retraining job failed`, error);
  return row;
}

/** A job outcome through the model's existing alert targets (monitoring's control object). */
export async function announce(env: Env, job: JobRow, severity: Severity, title: string, text: string): Promise<void> {
  try {
    await env.MODEL_CONTROL.getByName(job.modelName).announce({
      kind: "alert",
      model: job.modelName,
      version: job.candidateVersion ?? job.championVersion ?? undefined,
      severity,
      state: "firing",
      rule: `retraining:${job.state as JobState}`,
      title: `${job.modelName}: ${title}`,
      text: `job ${job.id} (${job.triggerType}: ${job.reason}): ${text}`,
      at: Date.now(),
    });
  } catch (error) {
    console.error(JSON.stringify({ level: "warn", msg: "retraining notification failed", job: job.id, error: String(error) }));
  }
}
