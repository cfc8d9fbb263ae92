/**
 * Retraining data access: configs, triggers, jobs and their history. Functions take the drizzle db
 * first, like the registry's and deployments' stores.
 *
 * Every job change is one D1 batch: the job row (guarded by its revision) and one event whose
 * (job, revision) is unique. Two writers racing (the queue consumer, the workflow, the cron, an
 * admin) cannot both apply a change from the same revision: the loser's batch fails whole and it
 * sees a 409 `conflict`, re-reads and decides again.
 */
import { and, desc, eq, lt } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
import { ApiError, notFound } from "../http/errors";
import type { Db } from "../registry/store";
import { TERMINAL, TRANSITIONS, type JobState, type RetrainingConfig, type StoredConfig, type Trigger } from "./model";
import { retrainingConfigs, retrainingJobEvents, retrainingJobs, retrainingTriggers } from "./tables";

export type JobRow = typeof retrainingJobs.$inferSelect;
export type TriggerRow = typeof retrainingTriggers.$inferSelect;

export interface ModelRetraining {
  model: string;
  trainerUrl: string;
  trainerSecret: string;
  config: StoredConfig;
}

function causeText(error: unknown): string {
  const e = error as { message?: string; cause?: { message?: string } };
  return `${e?.message ?? ""} ${e?.cause?.message ?? ""}`;
}

export async function putConfig(db: Db, model: string, c: RetrainingConfig, actor: string): Promise<void> {
  const { trainer_url, trainer_secret, ...rest } = c;
  const at = Date.now();
  await db
    .insert(retrainingConfigs)
    .values({ modelName: model, trainerUrl: trainer_url, trainerSecret: trainer_secret, config: rest, updatedAt: at, updatedBy: actor })
    .onConflictDoUpdate({ target: retrainingConfigs.modelName, set: { trainerUrl: trainer_url, trainerSecret: trainer_secret, config: rest, updatedAt: at, updatedBy: actor } });
}

export async function findConfig(db: Db, model: string): Promise<ModelRetraining | null> {
  const [row] = await db.select().from(retrainingConfigs).where(eq(retrainingConfigs.modelName, model)).limit(1);
  return row ? { model, trainerUrl: row.trainerUrl, trainerSecret: row.trainerSecret, config: row.config as StoredConfig } : null;
}

export async function getConfig(db: Db, model: string): Promise<ModelRetraining> {
  const c = await findConfig(db, model);
  if (!c) throw new ApiError("not_found", `model '${model}' has no retraining configuration; PUT /admin/retraining/${model}/config first`);
  return c;
}

export async function listConfigs(db: Db): Promise<ModelRetraining[]> {
  const rows = await db.select().from(retrainingConfigs);
  return rows.map((row) => ({ model: row.modelName, trainerUrl: row.trainerUrl, trainerSecret: row.trainerSecret, config: row.config as StoredConfig }));
}

export async function addTrigger(db: Db, model: string, t: Trigger, actor: string): Promise<TriggerRow> {
  const [row] = await db.insert(retrainingTriggers).values({ id: uuidv7(), modelName: model, type: t.type, config: t, createdAt: Date.now(), createdBy: actor }).returning();
  return row;
}

export async function listTriggers(db: Db, model?: string): Promise<TriggerRow[]> {
  const q = db.select().from(retrainingTriggers);
  return model ? q.where(eq(retrainingTriggers.modelName, model)) : q;
}

export async function deleteTrigger(db: Db, model: string, id: string): Promise<void> {
  const rows = await db.delete(retrainingTriggers).where(and(eq(retrainingTriggers.modelName, model), eq(retrainingTriggers.id, id))).returning();
  if (!rows.length) throw notFound(`trigger '${id}' of model '${model}'`);
}

export async function markTrigger(db: Db, id: string, evaluation: unknown, firedAt?: number): Promise<void> {
  await db
    .update(retrainingTriggers)
    .set(firedAt !== undefined ? { lastEvaluation: evaluation, lastFiredAt: firedAt } : { lastEvaluation: evaluation })
    .where(eq(retrainingTriggers.id, id));
}

export interface NewJob {
  model: string;
  triggerId?: string;
  triggerType: "degradation" | "drift" | "schedule" | "manual";
  reason: string;
  championVersion: string | null;
  actor: string;
  details?: Record<string, unknown>;
}

/** Creates a queued job; 409 when the model already has an active job (the partial unique index). */
export async function createJob(db: Db, j: NewJob, now = Date.now()): Promise<JobRow> {
  const id = uuidv7();
  const row = {
    id,
    modelName: j.model,
    triggerId: j.triggerId ?? null,
    triggerType: j.triggerType,
    reason: j.reason,
    state: "queued",
    active: 1,
    revision: 1,
    championVersion: j.championVersion,
    createdBy: j.actor,
    createdAt: now,
    updatedAt: now,
  };
  try {
    const [inserted] = await db.batch([
      db.insert(retrainingJobs).values(row).returning(),
      db.insert(retrainingJobEvents).values({ jobId: id, revision: 1, at: now, actor: j.actor, action: "create", fromState: null, toState: "queued", details: { trigger: j.triggerType, reason: j.reason, ...(j.details ?? {}) } }),
    ]);
    return (inserted as JobRow[])[0];
  } catch (error) {
    if (/UNIQUE constraint failed/i.test(causeText(error))) {
      const current = await activeJob(db, j.model);
      throw new ApiError("conflict", `model '${j.model}' already has an active retraining job${current ? ` (${current.id}, ${current.state})` : ""}`);
    }
    throw error;
  }
}

export async function activeJob(db: Db, model: string): Promise<JobRow | null> {
  const [row] = await db.select().from(retrainingJobs).where(and(eq(retrainingJobs.modelName, model), eq(retrainingJobs.active, 1))).limit(1);
  return row ?? null;
}

export async function latestJob(db: Db, model: string): Promise<JobRow | null> {
  const [row] = await db.select().from(retrainingJobs).where(eq(retrainingJobs.modelName, model)).orderBy(desc(retrainingJobs.createdAt)).limit(1);
  return row ?? null;
}

export async function findJob(db: Db, id: string): Promise<JobRow | null> {
  const [row] = await db.select().from(retrainingJobs).where(eq(retrainingJobs.id, id)).limit(1);
  return row ?? null;
}

export async function getJob(db: Db, id: string): Promise<JobRow> {
  const row = await findJob(db, id);
  if (!row) throw notFound(`retraining job '${id}'`);
  return row;
}

export async function listJobs(db: Db, filter: { model?: string; state?: JobState; before?: number }, limit = 50): Promise<JobRow[]> {
  const where = [filter.model ? eq(retrainingJobs.modelName, filter.model) : undefined, filter.state ? eq(retrainingJobs.state, filter.state) : undefined, filter.before ? lt(retrainingJobs.createdAt, filter.before) : undefined].filter(Boolean);
  return db.select().from(retrainingJobs).where(and(...where)).orderBy(desc(retrainingJobs.createdAt)).limit(limit);
}

export async function jobEvents(db: Db, id: string) {
  const rows = await db.select().from(retrainingJobEvents).where(eq(retrainingJobEvents.jobId, id)).orderBy(retrainingJobEvents.revision);
  return rows.map((e) => ({ revision: e.revision, at: new Date(e.at).toISOString(), actor: e.actor, action: e.action, from: e.fromState, to: e.toState, details: e.details ?? {} }));
}

export interface JobChange {
  action: string;
  actor: string;
  state?: JobState;
  details?: Record<string, unknown>;
  set?: Partial<Pick<JobRow, "candidateVersion" | "deploymentId" | "metrics" | "report" | "export" | "error" | "promotedAt" | "watchUntil" | "active" | "championVersion">>;
}

/**
 * Applies one change (a transition, or a note with the state unchanged) to the job as read. Refuses
 * transitions the state machine does not allow; 409 when the job changed since it was read.
 */
export async function changeJob(db: Db, job: JobRow, change: JobChange, now = Date.now()): Promise<JobRow> {
  const to = change.state ?? (job.state as JobState);
  // A final state is not entered again: a second cancel would rewrite the first one's reason and time.
  if (change.state && to === job.state && TERMINAL.includes(to)) throw new ApiError("conflict", `job ${job.id} is already ${job.state}`);
  if (to !== job.state && !TRANSITIONS[job.state as JobState].includes(to)) {
    throw new ApiError("conflict", `job ${job.id} is ${job.state}; it cannot become ${to} (allowed: ${TRANSITIONS[job.state as JobState].join(", ") || "none, it is final"})`);
  }
  const terminal = TERMINAL.includes(to);
  const revision = job.revision + 1;
  const set = {
    ...(change.set ?? {}),
    state: to,
    revision,
    updatedAt: now,
    ...(terminal ? { active: 0, finishedAt: now } : {}),
  };
  try {
    const [updated] = await db.batch([
      db.update(retrainingJobs).set(set).where(and(eq(retrainingJobs.id, job.id), eq(retrainingJobs.revision, job.revision))).returning(),
      db.insert(retrainingJobEvents).values({ jobId: job.id, revision, at: now, actor: change.actor, action: change.action, fromState: job.state, toState: to, details: change.details ?? {} }),
    ]);
    const row = (updated as JobRow[])[0];
    if (!row) throw new ApiError("conflict", `job ${job.id} changed while this ran; re-read and retry`);
    return row;
  } catch (error) {
    if (error instanceof ApiError) throw error;
    if (/UNIQUE constraint failed/i.test(causeText(error))) throw new ApiError("conflict", `job ${job.id} changed while this ran (revision ${job.revision} is stale); re-read and retry`);
    throw error;
  }
}

/** Re-reads the job and applies `decide`'s change, retrying a few times on a lost race. */
export async function updateJob(db: Db, id: string, decide: (job: JobRow) => JobChange | null): Promise<JobRow> {
  for (let attempt = 0; ; attempt++) {
    const job = await getJob(db, id);
    const change = decide(job);
    if (!change) return job;
    try {
      return await changeJob(db, job, change);
    } catch (error) {
      const stale = error instanceof ApiError && error.code === "conflict" && /changed while/.test(error.message);
      if (!stale || attempt >= 4) throw error;
    }
  }
}

export function describeJob(j: JobRow) {
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  return {
    id: j.id,
    model: j.modelName,
    state: j.state,
    active: j.active === 1,
    trigger: { id: j.triggerId, type: j.triggerType },
    reason: j.reason,
    champion_version: j.championVersion,
    candidate_version: j.candidateVersion,
    deployment_id: j.deploymentId,
    metrics: j.metrics ?? null,
    export: j.export ?? null,
    error: j.error,
    created_by: j.createdBy,
    created_at: iso(j.createdAt),
    updated_at: iso(j.updatedAt),
    promoted_at: iso(j.promotedAt),
    watch_until: iso(j.watchUntil),
    finished_at: iso(j.finishedAt),
  };
}
