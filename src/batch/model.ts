/**
 * Request shapes of the batch API (zod: the one source of validation and types), and the public
 * view of a job.
 */
import { z } from "zod";
import { aliasSchema, modelNameSchema, semverSchema } from "../registry/manifest";
import { CHUNK_ROWS } from "./config";
import { INTERNAL_PREFIX } from "./keys";
import type { BatchJobRow } from "./tables";

export const formatSchema = z.enum(["csv", "ndjson"]);

const objectKey = z
  .string()
  .min(1)
  .max(1024)
  .refine((k) => !k.startsWith("/") && !k.split("/").includes(".."), { error: "must be a relative object key without '..' segments" });

const outputKey = objectKey.refine((k) => !k.startsWith(INTERNAL_PREFIX), { error: `keys under ${INTERNAL_PREFIX} are reserved for the system` });

const chunkSize = z.coerce.number().int().min(CHUNK_ROWS.min).max(CHUNK_ROWS.max).default(CHUNK_ROWS.default);

/** POST /v1/batch with a JSON body: the input is already in the BATCH bucket. */
export const createJobSchema = z
  .object({
    model: modelNameSchema,
    version: semverSchema.optional(),
    alias: aliasSchema.optional(),
    input: z.object({ key: objectKey, format: formatSchema.optional() }).strict(),
    output: z.object({ key: outputKey, format: formatSchema.optional() }).strict(),
    chunk_size: chunkSize,
  })
  .strict()
  .refine((b) => !(b.version && b.alias), { error: "give either version or alias, not both", path: ["version"] });
export type CreateJob = z.infer<typeof createJobSchema>;

/** POST /v1/batch with the file as the body (text/csv or application/x-ndjson): options in the query. */
export const uploadQuerySchema = z
  .object({
    model: modelNameSchema,
    version: semverSchema.optional(),
    alias: aliasSchema.optional(),
    output_key: outputKey,
    output_format: formatSchema.optional(),
    chunk_size: chunkSize,
  })
  .strict()
  .refine((b) => !(b.version && b.alias), { error: "give either version or alias, not both", path: ["version"] });

/** The format a key's extension names, if any. */
export function formatOfKey(key: string): "csv" | "ndjson" | undefined {
  const lower = key.toLowerCase();
  if (lower.endsWith(".csv")) return "csv";
  if (lower.endsWith(".ndjson") || lower.endsWith(".jsonl")) return "ndjson";
  return undefined;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The status view: state, progress, throughput, where the output is. */
export function describeJob(job: BatchJobRow, now = Date.now()) {
  const elapsed = job.startedAt === null ? 0 : ((job.finishedAt ?? now) - job.startedAt) / 1000;
  const done = job.state === "succeeded";
  return {
    job_id: job.id,
    state: job.state,
    model: job.modelName,
    version: job.version,
    alias: job.alias,
    input: { key: job.inputKey, format: job.inputFormat, bytes: job.inputBytes },
    output: { key: job.outputKey, format: job.outputFormat, location: done ? `r2://edge-ml-batch/${job.outputKey}` : null, bytes: job.outputBytes, download: done ? `/v1/batch/${job.id}/output` : null },
    rows: { total: job.rowsTotal, done: job.rowsDone, scored: job.rowsDone - job.rowsFailed, failed: job.rowsFailed },
    parts: { total: job.partsTotal, done: job.partsDone },
    errors: { rows: job.rowsFailed, key: job.errorsKey, download: job.errorsKey ? `/v1/batch/${job.id}/errors` : null },
    rows_per_second: elapsed > 0 ? Math.round((job.rowsDone / elapsed) * 10) / 10 : null,
    chunk_size: job.chunkRows,
    error: job.error,
    created_by: job.createdBy,
    created_at: iso(job.createdAt),
    started_at: iso(job.startedAt),
    finished_at: iso(job.finishedAt),
  };
}
