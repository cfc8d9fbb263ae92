/**
 * Batch job tables (D1 through drizzle; the SQL is migrations/0007_batch.sql and 0009, hand-written).
 *
 * - batch_jobs: one row per job. Its `state` moves queued -> running -> assembling -> succeeded, or
 *   to failed / cancelled; every move is a conditional UPDATE (`WHERE state IN (...)`), so two
 *   consumers racing on the same job cannot both win a transition. `parts_done`, `rows_done` and
 *   `rows_failed` are maintained by a trigger on batch_parts (see below), never by read-modify-write.
 *   `assembler` + `assembly_until` are the assembly lease: the queue message that holds it (by
 *   message id, so its own redelivery can take it back) and until when. A job owns its
 *   `output_key` and the errors key beside it unless it failed or was cancelled: a trigger
 *   (migrations/0009_batch_output_keys.sql) refuses to insert a job whose output would overwrite
 *   another job's output or errors file, so one object is never the output of two jobs.
 * - batch_parts: one row per finished chunk, (job_id, part) unique. A consumer inserts its part's
 *   row with ON CONFLICT DO NOTHING after writing the part to R2; the AFTER INSERT trigger adds the
 *   part's counts to its job in the same statement. A redelivered chunk rewrites the same R2 part
 *   and its insert changes nothing, so counts are exact under at-least-once delivery.
 * - batch_failures: the last failure of a chunk that is being retried, so the dead-letter consumer
 *   can say why a job failed (a queue message does not carry its error).
 */
import { integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

export const batchJobs = sqliteTable("batch_jobs", {
  id: text("id").primaryKey(),
  state: text("state").notNull(),
  modelName: text("model_name").notNull(),
  version: text("version").notNull(),
  alias: text("alias"),
  inputKey: text("input_key").notNull(),
  inputFormat: text("input_format").notNull(),
  inputBytes: integer("input_bytes").notNull(),
  /** ETag of the input when the job was created: chunks read only that object, never a replacement. */
  inputEtag: text("input_etag").notNull(),
  outputKey: text("output_key").notNull(),
  outputFormat: text("output_format").notNull(),
  chunkRows: integer("chunk_rows").notNull(),
  /** CSV input: the header's column names (JSON array), read by the planner. */
  columns: text("columns", { mode: "json" }).$type<string[]>(),
  rowsTotal: integer("rows_total"),
  partsTotal: integer("parts_total"),
  partsDone: integer("parts_done").notNull().default(0),
  rowsDone: integer("rows_done").notNull().default(0),
  rowsFailed: integer("rows_failed").notNull().default(0),
  outputBytes: integer("output_bytes"),
  errorsKey: text("errors_key"),
  /** Completed assemblies of the output (0 or 1: the tests check it never reaches 2). */
  assemblies: integer("assemblies").notNull().default(0),
  assembler: text("assembler"),
  assemblyUntil: integer("assembly_until"),
  error: text("error"),
  createdBy: text("created_by").notNull(),
  createdAt: integer("created_at").notNull(),
  startedAt: integer("started_at"),
  finishedAt: integer("finished_at"),
});

export const batchParts = sqliteTable(
  "batch_parts",
  {
    jobId: text("job_id").notNull(),
    part: integer("part").notNull(),
    firstRow: integer("first_row").notNull(),
    rows: integer("rows").notNull(),
    errors: integer("errors").notNull(),
    bytes: integer("bytes").notNull(),
    errorBytes: integer("error_bytes").notNull(),
    at: integer("at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.part] })],
);

export const batchFailures = sqliteTable(
  "batch_failures",
  {
    jobId: text("job_id").notNull(),
    part: integer("part").notNull(),
    attempts: integer("attempts").notNull(),
    error: text("error").notNull(),
    at: integer("at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.part] })],
);

export type BatchJobRow = typeof batchJobs.$inferSelect;
