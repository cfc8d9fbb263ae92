/**
 * Batch scoring API, mounted at /v1/batch behind the admin credential (bearer ADMIN_TOKEN).
 *
 *   POST /                 create a job; returns 202 with its id at once (planning and scoring run
 *                          on the queue). JSON body { model, version | alias, input: { key, format },
 *                          output: { key, format }, chunk_size } for a file already in the BATCH
 *                          bucket, or the file itself as the body (content-type text/csv or
 *                          application/x-ndjson, Content-Length required) with the options in the
 *                          query: ?model=&version=|alias=&output_key=&output_format=&chunk_size=
 *   GET  /                 recent jobs, newest first (?limit=, at most 100)
 *   GET  /:id              status: state, rows done/total, parts, errors, rows/s, output location
 *   POST /:id/cancel       stop a job that has not finished (its parts are deleted)
 *   GET  /:id/output       the assembled output (once succeeded)
 *   GET  /:id/errors       the errors file: one JSON line { row_number, reason } per bad row
 *
 * The model version is resolved when the job is created (an alias is pinned to the version it
 * names then), and the input's ETag is recorded: the whole job scores one file with one version.
 * An output key belongs to one job: a job whose output or errors file would overwrite another
 * job's (any state but failed or cancelled) is a 409 naming that job, checked before anything is
 * stored and again by a trigger inside the insert (two submissions racing for one key). The
 * downloads serve an object only if this job wrote it (the `batch_job` metadata the assembler sets).
 * Bad requests are 4xx naming the problem, and leave no job and no message behind.
 */
import { Hono, type Context } from "hono";
import { v7 as uuidv7 } from "uuid";
import type { z } from "zod";
import { ApiError } from "../http/errors";
import { queryInt, readJson } from "../http/limits";
import { zodIssues } from "../registry/manifest";
import { resolveVersion } from "../registry/resolver";
import { deleteParts } from "./assembler";
import { batchConfig } from "./config";
import { errorsKeyOf, JOB_METADATA, jobPrefix, uploadKey } from "./keys";
import type { PlanMessage } from "./messages";
import { createJobSchema, describeJob, formatOfKey, uploadQuerySchema } from "./model";
import { activeInputReader, getJob, insertJob, listJobs, markCancelled, markFailed, outputKeyOwner } from "./store";
import type { BatchJobRow } from "./tables";

type AdminEnv = { Bindings: Env; Variables: { actor: string } };

const JSON_BODY_MAX = 64 * 1024;
const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function parse<T>(schema: z.ZodType<T>, raw: unknown, what: string): T {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new ApiError("invalid_input", `invalid ${what}: ${first.path.join(".") || "(root)"}: ${first.message}`, zodIssues(parsed.error));
  }
  return parsed.data;
}

interface Spec {
  model: string;
  version?: string;
  alias?: string;
  inputKey: string;
  inputFormat?: "csv" | "ndjson";
  outputKey: string;
  /** Where the request gave the output key: `output.key` (JSON body) or `output_key` (upload query). */
  outputField: "output.key" | "output_key";
  outputFormat?: "csv" | "ndjson";
  chunkRows: number;
}

/** 409 naming the job that owns `outputKey` (its output, or its errors file, or the reverse). */
function outputKeyTaken(spec: Spec, owner: BatchJobRow | undefined): ApiError {
  const key = spec.outputKey;
  const job = owner ? `batch job ${owner.id} (${owner.state})` : "another batch job";
  const how = !owner || owner.outputKey === key
    ? `is the output key of ${job}`
    : errorsKeyOf(owner.outputKey) === key
      ? `is where ${job} writes its errors file (its output key is '${owner.outputKey}')`
      : `would put this job's errors file on '${errorsKeyOf(key)}', the output key of ${job}`;
  return new ApiError("conflict", `${spec.outputField} '${key}' ${how}; choose another output key`, [{ path: spec.outputField, message: `owned by ${owner ? `batch job ${owner.id}` : "another batch job"}` }]);
}

async function checkOutputKeyFree(c: Context<AdminEnv>, spec: Spec): Promise<void> {
  const owner = await outputKeyOwner(c.env, spec.outputKey);
  if (owner) throw outputKeyTaken(spec, owner);
  const reader = await activeInputReader(c.env, spec.outputKey);
  if (reader) {
    const message = `batch job ${reader.id} (${reader.state}) reads '${reader.inputKey}' as its input, and this job would write there: it would replace that input mid-run`;
    throw new ApiError("conflict", `${spec.outputField} '${spec.outputKey}': ${message}; choose another output key`, [{ path: spec.outputField, message }]);
  }
}

async function loadJob(c: Context<AdminEnv>) {
  const id = c.req.param("id") ?? "";
  const job = JOB_ID.test(id) ? await getJob(c.env, id) : undefined;
  if (!job) throw new ApiError("not_found", `batch job '${id.slice(0, 80)}' not found`);
  return job;
}

export const batchRoutes = new Hono<AdminEnv>();

batchRoutes.post("/", async (c) => {
  const cfg = batchConfig(c.env);
  const type = (c.req.header("content-type") ?? "").toLowerCase();
  const id = uuidv7();
  let spec: Spec;
  let uploaded = false;
  if (type.startsWith("text/csv") || type.startsWith("application/x-ndjson") || type.startsWith("application/jsonl")) {
    const q = parse(uploadQuerySchema, c.req.query(), "query");
    const format = type.startsWith("text/csv") ? "csv" : "ndjson";
    const length = Number(c.req.header("content-length"));
    if (!Number.isInteger(length) || length <= 0) throw new ApiError("bad_request", "an upload needs a Content-Length header and a non-empty body");
    if (length > cfg.maxUploadBytes) {
      throw new ApiError("body_too_large", `upload of ${length} bytes exceeds ${cfg.maxUploadBytes}; put larger files in the BATCH bucket and pass input.key`);
    }
    spec = { model: q.model, version: q.version, alias: q.alias, inputKey: uploadKey(id, format), inputFormat: format, outputKey: q.output_key, outputField: "output_key", outputFormat: q.output_format, chunkRows: q.chunk_size };
    // Resolve the model and check the output key before storing anything, so neither leaves an upload behind.
    await resolveVersion(c.env, spec.model, { version: spec.version, alias: spec.alias });
    await checkOutputKeyFree(c, spec);
    const { readable, writable } = new FixedLengthStream(length);
    const [stored] = await Promise.all([c.env.BATCH.put(spec.inputKey, readable, { httpMetadata: { contentType: type } }), c.req.raw.body!.pipeTo(writable)]);
    if (!stored) throw new ApiError("unavailable", "could not store the upload");
    uploaded = true;
  } else {
    const length = Number(c.req.header("content-length") ?? 0);
    if (length > JSON_BODY_MAX) throw new ApiError("body_too_large", `a JSON job request is at most ${JSON_BODY_MAX} bytes (send files as text/csv or application/x-ndjson bodies)`);
    const b = parse(createJobSchema, await readJson(c), "request body");
    spec = { model: b.model, version: b.version, alias: b.alias, inputKey: b.input.key, inputFormat: b.input.format, outputKey: b.output.key, outputField: "output.key", outputFormat: b.output.format, chunkRows: b.chunk_size };
  }
  try {
    return await createJob(c, id, spec);
  } catch (error) {
    if (uploaded) await c.env.BATCH.delete(spec.inputKey);
    throw error;
  }
});

async function createJob(c: Context<AdminEnv>, id: string, spec: Spec) {
  const cfg = batchConfig(c.env);
  const inputFormat = spec.inputFormat ?? formatOfKey(spec.inputKey);
  if (!inputFormat) throw new ApiError("invalid_input", `input.format: cannot tell the format of '${spec.inputKey}' from its name; give "csv" or "ndjson"`, [{ path: "input.format", message: "required" }]);
  const outputFormat = spec.outputFormat ?? formatOfKey(spec.outputKey) ?? inputFormat;
  if (spec.outputKey === spec.inputKey) throw new ApiError("invalid_input", "output.key must differ from input.key", [{ path: "output.key", message: "same as input.key" }]);
  if (errorsKeyOf(spec.outputKey) === spec.inputKey) {
    throw new ApiError("invalid_input", `output.key: the errors file '${errorsKeyOf(spec.outputKey)}' would overwrite input.key`, [{ path: "output.key", message: "its errors file is input.key" }]);
  }
  await checkOutputKeyFree(c, spec);
  const { version, alias } = await resolveVersion(c.env, spec.model, { version: spec.version, alias: spec.alias });
  const head = await c.env.BATCH.head(spec.inputKey);
  if (!head) throw new ApiError("not_found", `input object '${spec.inputKey}' not found in the batch bucket`);
  if (head.size > cfg.maxInputBytes) throw new ApiError("body_too_large", `input object is ${head.size} bytes; the limit is ${cfg.maxInputBytes}`);
  if (head.size === 0) throw new ApiError("invalid_input", `input object '${spec.inputKey}' is empty`, [{ path: "input.key", message: "empty object" }]);
  const now = Date.now();
  const inserted = await insertJob(c.env, {
    id,
    state: "queued",
    modelName: version.modelName,
    version: version.version,
    alias: alias ?? null,
    inputKey: spec.inputKey,
    inputFormat,
    inputBytes: head.size,
    inputEtag: head.etag,
    outputKey: spec.outputKey,
    outputFormat,
    chunkRows: spec.chunkRows,
    createdBy: c.get("actor") ?? "admin",
    createdAt: now,
  });
  // Another submission took the key since the check above (the trigger refused this insert).
  if (!inserted) throw outputKeyTaken(spec, await outputKeyOwner(c.env, spec.outputKey));
  try {
    await c.env.BATCH_QUEUE.send({ kind: "plan", job: id } satisfies PlanMessage);
  } catch (error) {
    await markFailed(c.env, id, "could not enqueue the job");
    throw new ApiError("unavailable", "the batch queue is unavailable; try again");
  }
  const job = (await getJob(c.env, id))!;
  return c.json(describeJob(job), 202, { location: `/v1/batch/${id}` });
}

batchRoutes.get("/", async (c) => {
  const limit = queryInt(c.req.query("limit"), "limit", 1, 100, 20);
  const jobs = await listJobs(c.env, limit);
  return c.json({ jobs: jobs.map((j) => describeJob(j)) });
});

batchRoutes.get("/:id", async (c) => c.json(describeJob(await loadJob(c))));

batchRoutes.post("/:id/cancel", async (c) => {
  const job = await loadJob(c);
  if (!(await markCancelled(c.env, job.id, c.get("actor") ?? "admin"))) {
    throw new ApiError("conflict", `batch job ${job.id} is ${(await getJob(c.env, job.id))!.state}; only queued, running or assembling jobs can be cancelled`);
  }
  const cleanup = deleteParts(c.env.BATCH, jobPrefix(job.id)).catch(() => undefined);
  try {
    c.executionCtx.waitUntil(cleanup);
  } catch {
    await cleanup;
  }
  return c.json(describeJob((await getJob(c.env, job.id))!));
});

/** How far R2's clock may be ahead of the Worker's when telling a legacy object's age (below). */
const CLOCK_SLACK_MS = 60_000;

/**
 * Whether `object` is the one `job` assembled. The assembler names the job in the object's custom
 * metadata; objects written before it did carry none, and count as the job's unless they were
 * written after the job finished.
 */
function writtenBy(object: R2Object, job: BatchJobRow): boolean {
  const writer = object.customMetadata?.[JOB_METADATA];
  if (writer !== undefined) return writer === job.id;
  return job.finishedAt === null || object.uploaded.getTime() <= job.finishedAt + CLOCK_SLACK_MS;
}

async function download(c: Context<AdminEnv>, which: "output" | "errors") {
  const job = await loadJob(c);
  if (job.state !== "succeeded") throw new ApiError("conflict", `batch job ${job.id} is ${job.state}; its ${which} exists once it has succeeded`);
  const key = which === "output" ? job.outputKey : job.errorsKey;
  if (!key) throw new ApiError("not_found", `batch job ${job.id} had no bad rows, so it has no errors file`);
  const object = await c.env.BATCH.get(key);
  if (!object) throw new ApiError("not_found", `object '${key}' is no longer in the batch bucket`);
  if (!writtenBy(object, job)) {
    const writer = object.customMetadata?.[JOB_METADATA];
    throw new ApiError("not_found", `object '${key}' in the batch bucket is no longer the ${which === "output" ? "output" : "errors file"} of batch job ${job.id}: ${writer ? `batch job ${writer}` : "something else"} wrote it after the job finished`);
  }
  const headers = new Headers({ "content-length": String(object.size), etag: object.httpEtag });
  headers.set("content-type", object.httpMetadata?.contentType ?? "application/octet-stream");
  return new Response(object.body, { headers });
}

batchRoutes.get("/:id/output", (c) => download(c, "output"));
batchRoutes.get("/:id/errors", (c) => download(c, "errors"));
