/**
 * Retraining tables (D1 through drizzle; hand-written migration migrations/0008_retraining.sql).
 *
 * - retraining_configs: one row per model that can be retrained: the trainer's endpoint and the
 *   HMAC secret both sides sign with (never shown back), plus the JSON settings (model.ts).
 * - retraining_triggers: what starts a job automatically (degradation, drift, schedule).
 * - retraining_jobs: one row per job. `active` is 1 from queued until the job is terminal (and,
 *   once promoted, until its watch period ends); a partial unique index on (model) WHERE active = 1
 *   is the one-active-job rule, enforced by the database rather than by a read-then-write check.
 * - retraining_job_events: the history. Every change writes one event carrying the job's new
 *   revision, unique per job: a writer working from a stale revision collides and its whole batch
 *   fails (the same optimistic lock the deployments use).
 */
import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

export const retrainingConfigs = sqliteTable("retraining_configs", {
  modelName: text("model_name").primaryKey(),
  trainerUrl: text("trainer_url").notNull(),
  trainerSecret: text("trainer_secret").notNull(),
  config: text("config", { mode: "json" }).notNull().$type<unknown>(),
  updatedAt: integer("updated_at").notNull(),
  updatedBy: text("updated_by").notNull(),
});

export const retrainingTriggers = sqliteTable(
  "retraining_triggers",
  {
    id: text("id").primaryKey(),
    modelName: text("model_name").notNull(),
    type: text("type").notNull(),
    config: text("config", { mode: "json" }).notNull().$type<unknown>(),
    enabled: integer("enabled").notNull().default(1),
    lastFiredAt: integer("last_fired_at"),
    lastEvaluation: text("last_evaluation", { mode: "json" }).$type<unknown>(),
    createdAt: integer("created_at").notNull(),
    createdBy: text("created_by").notNull(),
  },
  (t) => [index("retraining_triggers_model").on(t.modelName)],
);

export const retrainingJobs = sqliteTable(
  "retraining_jobs",
  {
    id: text("id").primaryKey(),
    modelName: text("model_name").notNull(),
    triggerId: text("trigger_id"),
    triggerType: text("trigger_type").notNull(),
    reason: text("reason").notNull(),
    state: text("state").notNull(),
    active: integer("active").notNull(),
    revision: integer("revision").notNull(),
    championVersion: text("champion_version"),
    candidateVersion: text("candidate_version"),
    deploymentId: text("deployment_id"),
    metrics: text("metrics", { mode: "json" }).$type<unknown>(),
    report: text("report", { mode: "json" }).$type<unknown>(),
    export: text("export", { mode: "json" }).$type<unknown>(),
    error: text("error"),
    createdBy: text("created_by").notNull(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    promotedAt: integer("promoted_at"),
    watchUntil: integer("watch_until"),
    finishedAt: integer("finished_at"),
  },
  (t) => [
    index("retraining_jobs_model").on(t.modelName, t.createdAt),
    uniqueIndex("retraining_jobs_one_active_per_model").on(t.modelName).where(sql`active = 1`),
  ],
);

export const retrainingJobEvents = sqliteTable(
  "retraining_job_events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    jobId: text("job_id")
      .notNull()
      .references(() => retrainingJobs.id),
    revision: integer("revision").notNull(),
    at: integer("at").notNull(),
    actor: text("actor").notNull(),
    action: text("action").notNull(),
    fromState: text("from_state"),
    toState: text("to_state").notNull(),
    details: text("details", { mode: "json" }).$type<Record<string, unknown>>(),
  },
  (t) => [uniqueIndex("retraining_job_events_revision").on(t.jobId, t.revision)],
);
