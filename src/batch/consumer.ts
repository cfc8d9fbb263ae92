/**
 * The batch queue consumer: plan a job, score a chunk, assemble the output; and the dead-letter
 * consumer that fails a job whose message kept failing.
 *
 * At-least-once safety, message by message:
 * - plan: re-planning gives the same chunks (same input object, by ETag) and resends them; their
 *   parts are idempotent, so a redelivered plan costs work, never correctness.
 * - chunk: writes its parts under fixed keys (a redelivery rewrites the same objects) and records
 *   the part with INSERT .. ON CONFLICT DO NOTHING (counted once, by trigger). Whoever records the
 *   last part moves the job running -> assembling (a conditional UPDATE: one winner) and sends the
 *   assemble message; a redelivered chunk of an assembling job without an assembler resends it.
 * - assemble: one lease holder at a time (claimAssembly), and only the holder's conditional
 *   assembling -> succeeded counts the assembly, so a job is assembled once.
 * Problems with the job itself (unknown or archived version, malformed file, missing columns) fail
 * the job at once; anything else (storage, D1 hiccups) is retried with back-off, its last error
 * recorded, and after the queue's max_retries the message reaches the dead-letter queue, whose
 * consumer fails the job with that error. Cancelled or finished jobs' messages are acknowledged
 * without work.
 */
import { ApiError } from "../http/errors";
import { queueBaseName } from "../http/queues";
import { resolveVersion } from "../registry/resolver";
import type { ModelVersion } from "../registry/store";
import { emitPredictionDetached } from "../serving/events";
import { assembleOutput, AssemblyAbandoned, deleteParts } from "./assembler";
import { scoreChunk, outputColumns, collidingColumns } from "./chunk";
import { batchConfig } from "./config";
import { FormatError, type BatchFormat } from "./formats";
import { jobPrefix } from "./keys";
import { BATCH_DLQ, type AssembleMessage, type BatchMessage, type ChunkMessage, type PlanMessage } from "./messages";
import { planChunks } from "./planner";
import { chunkFailure, claimAssembly, getJob, listParts, markAssembling, markFailed, markPlanned, markSucceeded, recordChunkFailure, recordPart } from "./store";
import type { BatchJobRow } from "./tables";

/** A problem with the job itself: retrying cannot help, so the job fails at once. */
export class JobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JobError";
  }
}

/** Failure records of messages other than chunks use these part numbers. */
const PLAN_PART = -1;
const ASSEMBLE_PART = -2;

export async function consumeBatch(batch: MessageBatch<BatchMessage>, env: Env, ctx: ExecutionContext): Promise<void> {
  if (queueBaseName(batch.queue, env) === BATCH_DLQ) {
    for (const message of batch.messages) {
      await deadLetter(env, ctx, message.body);
      message.ack();
    }
    return;
  }
  const cfg = batchConfig(env);
  // Messages of one batch are independent: each is acked or retried on its own.
  for (const message of batch.messages) {
    const body = message.body;
    try {
      await handle(env, ctx, body, message.id);
      message.ack();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (error instanceof JobError) {
        await markFailed(env, body.job, reason);
        ctx.waitUntil(deleteParts(env.BATCH, jobPrefix(body.job)).catch(() => undefined));
        message.ack();
        continue;
      }
      console.error(JSON.stringify({ level: "warn", msg: "batch message failed; will retry", kind: body.kind, job: body.job, attempts: message.attempts, error: reason }));
      await recordChunkFailure(env, body.job, partOf(body), message.attempts, reason).catch(() => undefined);
      const delaySeconds = Math.min(300, cfg.retryDelaySeconds * 2 ** Math.max(0, message.attempts - 1));
      message.retry({ delaySeconds });
    }
  }
}

const partOf = (m: BatchMessage) => (m.kind === "chunk" ? m.part : m.kind === "plan" ? PLAN_PART : ASSEMBLE_PART);

async function handle(env: Env, ctx: ExecutionContext, body: BatchMessage, messageId: string): Promise<void> {
  switch (body.kind) {
    case "plan":
      return plan(env, body);
    case "chunk":
      return chunk(env, ctx, body);
    case "assemble":
      return assemble(env, ctx, body, messageId);
  }
}

/** The job's version, pinned when the job was created (an alias is resolved once, at submission). */
async function pinnedVersion(env: Env, job: BatchJobRow): Promise<ModelVersion> {
  try {
    return (await resolveVersion(env, job.modelName, { version: job.version })).version;
  } catch (error) {
    if (error instanceof ApiError && (error.code === "not_found" || error.code === "conflict")) throw new JobError(`model: ${error.message}`);
    throw error;
  }
}

async function plan(env: Env, msg: PlanMessage): Promise<void> {
  const job = await getJob(env, msg.job);
  if (!job || (job.state !== "queued" && job.state !== "running")) return;
  const version = await pinnedVersion(env, job);
  const cfg = batchConfig(env);
  const object = await env.BATCH.get(job.inputKey, { onlyIf: { etagMatches: job.inputEtag } });
  if (!object) throw new JobError(`input object ${job.inputKey} no longer exists`);
  if (!("body" in object)) throw new JobError(`input object ${job.inputKey} was replaced after the job was created`);
  let planned;
  try {
    planned = await planChunks(object.body, job.inputFormat as BatchFormat, { chunkRows: job.chunkRows, chunkBytes: cfg.chunkMaxBytes, maxRows: cfg.maxRows });
  } catch (error) {
    if (error instanceof FormatError) throw new JobError(`input: ${error.message}`);
    throw error;
  }
  if (planned.columns) {
    const missing = version.featureSchema.features.filter((f) => f.missing.policy === "reject" && !planned.columns!.includes(f.name)).map((f) => f.name);
    if (missing.length) throw new JobError(`input: CSV header lacks required feature column(s) ${missing.join(", ")} of ${version.modelName}@${version.version}`);
    const clash = collidingColumns(planned.columns, version);
    if (clash.length) throw new JobError(`input: CSV column(s) ${clash.join(", ")} would collide with output columns; rename them`);
  }
  const updated = await markPlanned(env, job.id, { columns: planned.columns, rowsTotal: planned.rows, partsTotal: planned.chunks.length });
  if (!updated) return; // cancelled or failed meanwhile
  if (planned.chunks.length === 0) {
    if (await markAssembling(env, job.id)) await env.BATCH_QUEUE.send({ kind: "assemble", job: job.id } satisfies AssembleMessage);
    return;
  }
  const messages = planned.chunks.map((c) => ({ body: { kind: "chunk", job: job.id, part: c.part, start: c.start, end: c.end, first_row: c.firstRow, rows: c.rows } satisfies ChunkMessage }));
  // sendBatch takes at most 100 messages (and 256 KB) per call; ours are ~150 bytes each.
  for (let i = 0; i < messages.length; i += 100) await env.BATCH_QUEUE.sendBatch(messages.slice(i, i + 100));
}

async function chunk(env: Env, ctx: ExecutionContext, msg: ChunkMessage): Promise<void> {
  const job = await getJob(env, msg.job);
  if (!job) return;
  if (job.state === "assembling" && !job.assembler) {
    // A crash between moving to assembling and sending the assemble message: send it again.
    await env.BATCH_QUEUE.send({ kind: "assemble", job: job.id } satisfies AssembleMessage);
    return;
  }
  if (job.state !== "running") return;
  if (msg.part < 0 || msg.part >= (job.partsTotal ?? 0)) throw new JobError(`chunk ${msg.part} is not a part of this job (it has ${job.partsTotal} parts)`);
  const version = await pinnedVersion(env, job);
  const scored = await scoreChunk(env, job, version, msg);
  const { job: after, inserted } = await recordPart(env, job.id, scored.record);
  if (!after) return;
  if (after.state === "cancelled" || after.state === "failed") {
    // The job ended while this chunk ran: do not leave its parts behind.
    ctx.waitUntil(deleteParts(env.BATCH, jobPrefix(job.id)).catch(() => undefined));
    return;
  }
  if (inserted && scored.columns) {
    // Batch traffic for monitoring (volume, score and feature drift), off the job's critical path.
    emitPredictionDetached(env, (task) => ctx.waitUntil(task), {
      requestId: `batch:${job.id}:${msg.part}`,
      at: Date.now(),
      route: "batch",
      dispatch: { version },
      resolved: scored.resolved,
      rows: scored.raw,
      predictions: scored.predictions,
      columns: scored.columns,
      latencyMs: 0,
      inferenceMs: scored.inferenceMs,
    });
  }
  if (after.state === "running" && after.partsDone === after.partsTotal && (await markAssembling(env, job.id))) {
    await env.BATCH_QUEUE.send({ kind: "assemble", job: job.id } satisfies AssembleMessage);
  }
}

async function assemble(env: Env, ctx: ExecutionContext, msg: AssembleMessage, holder: string): Promise<void> {
  const job = await getJob(env, msg.job);
  if (!job || job.state !== "assembling") return; // already succeeded, or cancelled / failed
  const cfg = batchConfig(env);
  const now = Date.now();
  const leased = await claimAssembly(env, job.id, holder, now, now + cfg.assemblyLeaseMs);
  if (!leased) return; // another delivery holds the lease; its own retries finish the job
  const version = await pinnedVersion(env, job);
  const parts = await listParts(env, job.id);
  if (parts.length !== job.partsTotal || parts.some((p, i) => p.part !== i)) {
    throw new Error(`assembly found ${parts.length} recorded parts of ${job.partsTotal}`);
  }
  const stillWanted = async () => {
    const now = await getJob(env, job.id);
    return now?.state === "assembling" && now.assembler === holder;
  };
  try {
    const out = await assembleOutput(env.BATCH, {
      jobId: job.id,
      outputKey: job.outputKey,
      outputFormat: job.outputFormat,
      header: job.outputFormat === "csv" ? outputColumns(job, version) : undefined,
      parts,
      pieceBytes: cfg.pieceBytes,
      stillWanted,
    });
    await markSucceeded(env, job.id, holder, out);
  } catch (error) {
    if (error instanceof AssemblyAbandoned) return;
    throw error;
  }
  ctx.waitUntil(deleteParts(env.BATCH, jobPrefix(job.id)).catch(() => undefined));
}

/** A message that exhausted its retries: the job fails, naming the step and its last error. */
async function deadLetter(env: Env, ctx: ExecutionContext, body: BatchMessage): Promise<void> {
  const failure = await chunkFailure(env, body.job, partOf(body));
  const last = failure ? `after ${failure.attempts} attempts: ${failure.error}` : "after repeated attempts";
  const step = body.kind === "chunk" ? `chunk ${body.part} (rows ${body.first_row}-${body.first_row + body.rows - 1})` : body.kind === "plan" ? "planning" : "assembly";
  if (await markFailed(env, body.job, `${step} failed ${last}`)) {
    ctx.waitUntil(deleteParts(env.BATCH, jobPrefix(body.job)).catch(() => undefined));
  }
}
