/**
 * The batch job store in D1: every state change is one conditional statement, so concurrent or
 * redelivered queue messages cannot move a job twice (see tables.ts for the counting trigger and
 * the assembly lease).
 *
 * States: queued (created, plan message sent) -> running (planned, chunk messages sent) ->
 * assembling (every part written; one assembler at a time) -> succeeded. Any non-terminal state can
 * become failed (with a reason) or cancelled; terminal states never change again.
 */
import { and, asc, desc, eq, inArray, isNull, lt, notInArray, or, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { errorsKeyOf, outputKeysTouching } from "./keys";
import { batchFailures, batchJobs, batchParts, type BatchJobRow } from "./tables";

export type JobState = "queued" | "running" | "assembling" | "succeeded" | "failed" | "cancelled";
export const ACTIVE_STATES: JobState[] = ["queued", "running", "assembling"];
export const TERMINAL_STATES: JobState[] = ["succeeded", "failed", "cancelled"];
/** States whose jobs no longer own their output key (they serve nothing); see migrations/0009. */
export const KEY_RELEASED_STATES: JobState[] = ["failed", "cancelled"];

export const batchDb = (d1: D1Database) => drizzle(d1);

export type NewJob = typeof batchJobs.$inferInsert;

/** The message of migrations/0009's trigger, which refuses a job whose output key another job owns. */
const OUTPUT_KEY_OWNED = "batch output key is owned by another job";

/**
 * Inserts a job; false (and nothing inserted) when another job owns its output key or the errors
 * key beside it, which the trigger of migrations/0009 checks inside the insert.
 */
export async function insertJob(env: Env, job: NewJob): Promise<boolean> {
  try {
    await batchDb(env.DB).insert(batchJobs).values(job);
    return true;
  } catch (error) {
    // drizzle wraps the D1 error; the trigger's message is in the chain.
    for (let e: unknown = error; e instanceof Error; e = e.cause) if (e.message.includes(OUTPUT_KEY_OWNED)) return false;
    throw error;
  }
}

/**
 * The job (newest first) that writes or wrote `outputKey`, writes its errors file there, or whose
 * output `outputKey`'s errors file would overwrite; failed and cancelled jobs own no keys.
 */
export async function outputKeyOwner(env: Env, outputKey: string): Promise<BatchJobRow | undefined> {
  return batchDb(env.DB)
    .select()
    .from(batchJobs)
    .where(and(inArray(batchJobs.outputKey, outputKeysTouching(outputKey)), notInArray(batchJobs.state, KEY_RELEASED_STATES)))
    .orderBy(desc(batchJobs.createdAt))
    .get();
}

/** An active job whose input is where a job with output key `outputKey` would write (its output or errors file), if any: writing would replace the input mid-run. */
export async function activeInputReader(env: Env, outputKey: string): Promise<BatchJobRow | undefined> {
  return batchDb(env.DB)
    .select()
    .from(batchJobs)
    .where(and(inArray(batchJobs.inputKey, [outputKey, errorsKeyOf(outputKey)]), inArray(batchJobs.state, ACTIVE_STATES)))
    .get();
}

export async function getJob(env: Env, id: string): Promise<BatchJobRow | undefined> {
  return batchDb(env.DB).select().from(batchJobs).where(eq(batchJobs.id, id)).get();
}

export async function listJobs(env: Env, limit: number): Promise<BatchJobRow[]> {
  return batchDb(env.DB).select().from(batchJobs).orderBy(sql`${batchJobs.createdAt} DESC`).limit(limit).all();
}

/** queued -> running with the plan's totals (also re-run by a redelivered plan message: same values). */
export async function markPlanned(env: Env, id: string, plan: { columns?: string[]; rowsTotal: number; partsTotal: number }): Promise<BatchJobRow | undefined> {
  return batchDb(env.DB)
    .update(batchJobs)
    .set({ state: "running", columns: plan.columns ?? null, rowsTotal: plan.rowsTotal, partsTotal: plan.partsTotal, startedAt: sql`coalesce(${batchJobs.startedAt}, ${Date.now()})` })
    .where(and(eq(batchJobs.id, id), inArray(batchJobs.state, ["queued", "running"])))
    .returning()
    .get();
}

export interface PartRecord {
  part: number;
  firstRow: number;
  rows: number;
  errors: number;
  bytes: number;
  errorBytes: number;
}

/**
 * Records a finished part (its R2 objects are already written) and returns the job as it stands
 * after, and whether this call inserted the part. A part recorded before (a redelivered chunk)
 * inserts nothing and counts nothing.
 */
export async function recordPart(env: Env, jobId: string, p: PartRecord): Promise<{ job: BatchJobRow | undefined; inserted: boolean }> {
  const db = batchDb(env.DB);
  const [inserted, , job] = await db.batch([
    db.insert(batchParts).values({ jobId, ...p, at: Date.now() }).onConflictDoNothing().returning({ part: batchParts.part }),
    db.delete(batchFailures).where(and(eq(batchFailures.jobId, jobId), eq(batchFailures.part, p.part))),
    db.select().from(batchJobs).where(eq(batchJobs.id, jobId)),
  ]);
  return { job: job[0], inserted: inserted.length > 0 };
}

/** running -> assembling once every part is in (exactly one caller gets true; others see it already moved). */
export async function markAssembling(env: Env, id: string): Promise<boolean> {
  const row = await batchDb(env.DB)
    .update(batchJobs)
    .set({ state: "assembling" })
    .where(and(eq(batchJobs.id, id), eq(batchJobs.state, "running"), sql`${batchJobs.partsDone} = ${batchJobs.partsTotal}`))
    .returning({ id: batchJobs.id })
    .get();
  return row !== undefined;
}

/**
 * Takes the assembly lease for `holder` (a queue message id) until `until`. Granted when nobody
 * holds it, the holder is the same message (its own redelivery after a crash), or the lease expired.
 */
export async function claimAssembly(env: Env, id: string, holder: string, now: number, until: number): Promise<BatchJobRow | undefined> {
  return batchDb(env.DB)
    .update(batchJobs)
    .set({ assembler: holder, assemblyUntil: until })
    .where(and(eq(batchJobs.id, id), eq(batchJobs.state, "assembling"), or(isNull(batchJobs.assembler), eq(batchJobs.assembler, holder), lt(batchJobs.assemblyUntil, now))))
    .returning()
    .get();
}

/** assembling -> succeeded, only for the lease holder: the one place `assemblies` is counted. */
export async function markSucceeded(env: Env, id: string, holder: string, out: { outputBytes: number; errorsKey: string | null }): Promise<boolean> {
  const row = await batchDb(env.DB)
    .update(batchJobs)
    .set({ state: "succeeded", outputBytes: out.outputBytes, errorsKey: out.errorsKey, finishedAt: Date.now(), assemblies: sql`${batchJobs.assemblies} + 1` })
    .where(and(eq(batchJobs.id, id), eq(batchJobs.state, "assembling"), eq(batchJobs.assembler, holder)))
    .returning({ id: batchJobs.id })
    .get();
  return row !== undefined;
}

/** Any active state -> failed with a reason (the first reason wins). */
export async function markFailed(env: Env, id: string, reason: string): Promise<boolean> {
  const row = await batchDb(env.DB)
    .update(batchJobs)
    .set({ state: "failed", error: reason.slice(0, 2000), finishedAt: Date.now() })
    .where(and(eq(batchJobs.id, id), inArray(batchJobs.state, ACTIVE_STATES)))
    .returning({ id: batchJobs.id })
    .get();
  return row !== undefined;
}

export async function markCancelled(env: Env, id: string, by: string): Promise<boolean> {
  const row = await batchDb(env.DB)
    .update(batchJobs)
    .set({ state: "cancelled", error: `cancelled by ${by}`, finishedAt: Date.now() })
    .where(and(eq(batchJobs.id, id), inArray(batchJobs.state, ACTIVE_STATES)))
    .returning({ id: batchJobs.id })
    .get();
  return row !== undefined;
}

/** Remembers why a chunk failed (for the dead-letter consumer's reason). */
export async function recordChunkFailure(env: Env, jobId: string, part: number, attempts: number, error: string): Promise<void> {
  await batchDb(env.DB)
    .insert(batchFailures)
    .values({ jobId, part, attempts, error: error.slice(0, 1000), at: Date.now() })
    .onConflictDoUpdate({ target: [batchFailures.jobId, batchFailures.part], set: { attempts, error: error.slice(0, 1000), at: Date.now() } });
}

export async function chunkFailure(env: Env, jobId: string, part: number) {
  return batchDb(env.DB).select().from(batchFailures).where(and(eq(batchFailures.jobId, jobId), eq(batchFailures.part, part))).get();
}

export async function listParts(env: Env, jobId: string) {
  return batchDb(env.DB).select().from(batchParts).where(eq(batchParts.jobId, jobId)).orderBy(asc(batchParts.part)).all();
}

/** Rows scored by batch jobs, by model, version and state: the /metrics batch series. */
export async function batchTotals(env: Env) {
  return batchDb(env.DB)
    .select({ model: batchJobs.modelName, version: batchJobs.version, state: batchJobs.state, jobs: sql<number>`count(*)`, rows: sql<number>`coalesce(sum(${batchJobs.rowsDone}), 0)`, failed: sql<number>`coalesce(sum(${batchJobs.rowsFailed}), 0)` })
    .from(batchJobs)
    .groupBy(batchJobs.modelName, batchJobs.version, batchJobs.state)
    .all();
}
