/**
 * HTTP surface of the retraining loop.
 *
 * Admin (mounted at /admin/retraining, bearer ADMIN_TOKEN):
 *   PUT    /:model/config               trainer endpoint + secret, sample rate, cool-down, validation, release, watch
 *   GET    /:model/config               (secret redacted)
 *   POST   /:model/triggers             define a trigger (degradation | drift | schedule)
 *   GET    /:model/triggers             list, with each one's last evaluation
 *   DELETE /:model/triggers/:id
 *   POST   /:model/jobs                 run now (manual trigger, with a reason; cool-down does not apply)
 *   GET    /:model/jobs                 retraining history, newest first (?state=, ?limit=, ?before=<ms>)
 *   GET    /jobs/:id                    status with its event history
 *   GET    /jobs/:id/report             the champion/challenger comparison report
 *   POST   /jobs/:id/cancel             queued | dispatched | training -> cancelled
 *
 * Trainer (mounted at /retraining, HMAC-signed with the model's trainer secret; signing.ts):
 *   GET    /jobs/:id/export/:part       train | oot (gzip NDJSON)
 *   POST   /jobs/:id/status             {"status":"training"}
 *   POST   /jobs/:id/candidate          multipart: manifest (JSON) + artifact (ONNX); staged, not registered
 *   POST   /jobs/:id/complete           {"status":"succeeded","metrics":{...}} | {"status":"failed","error":"..."}
 */
import { Hono, type Context } from "hono";
import type { z } from "zod";
import { sha256Hex } from "../http/encoding";
import { ApiError } from "../http/errors";
import { intVar, limitBody, optionalJson, queryInt, readJson } from "../http/limits";
import { checkArtifact } from "../registry/artifact-check";
import { manifestSchema, modelNameSchema, zodIssues } from "../registry/manifest";
import { artifactKey, findVersion, getModel, listVersions, registryDb } from "../registry/store";
import { payloadArchive } from "./archive";
import { exportKey } from "./export";
import { startJob } from "./jobs";
import { cancelSchema, completeCallbackSchema, JOB_STATES, manualJobSchema, retrainingConfigSchema, statusCallbackSchema, triggerSchema, type JobState } from "./model";
import { SIGNATURE_HEADER, verify } from "./signing";
import { addTrigger, deleteTrigger, describeJob, findConfig, getConfig, getJob, jobEvents, listJobs, listTriggers, putConfig, updateJob, type JobRow } from "./store";
import { misfits, stagedKey, type StagedCandidate } from "./validate";
import { TRAINER_RESULT } from "./workflow";

type AdminEnv = { Bindings: Env; Variables: { actor: string } };

function parse<T>(schema: z.ZodType<T>, raw: unknown): T {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new ApiError("invalid_input", `invalid request body: ${parsed.error.issues[0].path.join(".") || "(root)"}: ${parsed.error.issues[0].message}`, zodIssues(parsed.error));
  return parsed.data;
}

function modelParam(c: Context): string {
  const m = modelNameSchema.safeParse(c.req.param("model"));
  if (!m.success) throw new ApiError("bad_request", `invalid model name '${String(c.req.param("model")).slice(0, 80)}'`);
  return m.data;
}

const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/;
async function loadJob(c: Context): Promise<JobRow> {
  const id = c.req.param("id")!;
  if (!JOB_ID.test(id)) throw new ApiError("not_found", `retraining job '${id.slice(0, 80)}' not found`);
  return getJob(registryDb(c.env.DB), id);
}

export const retrainingAdminRoutes = new Hono<AdminEnv>()
  .put("/:model/config", async (c) => {
    const model = modelParam(c);
    const body = parse(retrainingConfigSchema, await readJson(c));
    const db = registryDb(c.env.DB);
    await getModel(db, model);
    // Metrics must fit the model's task (its newest version's): 422 naming the metric, nothing stored.
    const [newest] = await listVersions(db, model);
    if (newest && body.validation.metrics) {
      const wrong = misfits(body.validation.metrics, newest.task);
      if (wrong.length) throw new ApiError("invalid_input", `invalid request body: validation.metrics[${wrong[0].index}].name: ${wrong[0].message}`, wrong.map((w) => ({ path: `validation.metrics[${w.index}].name`, message: w.message })));
    }
    await putConfig(db, model, body, c.get("actor"));
    payloadArchive.forget(model);
    const { trainer_secret: _secret, ...shown } = body;
    return c.json({ model, ...shown, trainer_secret: "<redacted>" });
  })
  .get("/:model/config", async (c) => {
    const model = modelParam(c);
    const cfg = await getConfig(registryDb(c.env.DB), model);
    return c.json({ model, trainer_url: cfg.trainerUrl, trainer_secret: "<redacted>", ...cfg.config });
  })
  .post("/:model/triggers", async (c) => {
    const model = modelParam(c);
    const body = parse(triggerSchema, await readJson(c));
    // Checked here rather than in the schema, which also reads triggers stored before this rule.
    if (body.type === "schedule" && body.every === "daily" && body.day !== undefined) {
      const message = "daily schedules run every day: give day only with weekly, monthly or quarterly";
      throw new ApiError("invalid_input", `invalid request body: day: ${message}`, [{ path: "day", message }]);
    }
    const db = registryDb(c.env.DB);
    await getConfig(db, model);
    if (body.type === "drift" && body.on === "features") {
      // A threshold above the number of features the model has could never fire.
      const widest = Math.max(0, ...(await listVersions(db, model)).filter((v) => v.status !== "archived").map((v) => (v.featureSchema as { features?: unknown[] }).features?.length ?? 0));
      if (body.min_features > widest) {
        const message = `model '${model}' has at most ${widest} features, so min_features ${body.min_features} could never be reached`;
        throw new ApiError("invalid_input", `invalid request body: min_features: ${message}`, [{ path: "min_features", message }]);
      }
    }
    const row = await addTrigger(db, model, body, c.get("actor"));
    return c.json({ id: row.id, model, ...body, created_at: new Date(row.createdAt).toISOString() }, 201);
  })
  .get("/:model/triggers", async (c) => {
    const model = modelParam(c);
    const rows = await listTriggers(registryDb(c.env.DB), model);
    return c.json({
      model,
      triggers: rows.map((t) => ({ id: t.id, ...(t.config as object), enabled: t.enabled === 1, last_fired_at: t.lastFiredAt ? new Date(t.lastFiredAt).toISOString() : null, last_evaluation: t.lastEvaluation ?? null })),
    });
  })
  .delete("/:model/triggers/:id", async (c) => {
    const model = modelParam(c);
    await deleteTrigger(registryDb(c.env.DB), model, c.req.param("id"));
    return c.json({ deleted: c.req.param("id") });
  })
  .post("/:model/jobs", async (c) => {
    const model = modelParam(c);
    const body = parse(manualJobSchema, await readJson(c));
    await getConfig(registryDb(c.env.DB), model);
    const job = await startJob(c.env, { model, triggerType: "manual", reason: body.reason, actor: c.get("actor") });
    return c.json({ job: describeJob(job) }, 202);
  })
  .get("/:model/jobs", async (c) => {
    const model = modelParam(c);
    await getModel(registryDb(c.env.DB), model); // 404 for a model that does not exist, not an empty history
    const state = c.req.query("state");
    if (state !== undefined && !JOB_STATES.includes(state as JobState)) throw new ApiError("bad_request", `invalid state '${state.slice(0, 40)}'; one of ${JOB_STATES.join(", ")}`);
    const limit = queryInt(c.req.query("limit"), "limit", 1, 200, 50);
    const before = c.req.query("before");
    if (before !== undefined && !/^\d{1,15}$/.test(before)) throw new ApiError("bad_request", "before: epoch milliseconds");
    const rows = await listJobs(registryDb(c.env.DB), { model, state: state as JobState | undefined, before: before ? Number(before) : undefined }, limit);
    return c.json({ model, jobs: rows.map(describeJob) });
  })
  .get("/jobs/:id", async (c) => {
    const job = await loadJob(c);
    return c.json({ job: describeJob(job), events: await jobEvents(registryDb(c.env.DB), job.id) });
  })
  .get("/jobs/:id/report", async (c) => {
    const job = await loadJob(c);
    if (!job.report) throw new ApiError("not_found", `job ${job.id} has no comparison report yet (it is ${job.state})`);
    return c.json({ job: job.id, state: job.state, report: job.report });
  })
  .post("/jobs/:id/cancel", async (c) => {
    const body = parse(cancelSchema, await optionalJson(c));
    const job = await loadJob(c);
    const reason = body.reason ?? "cancelled by an admin";
    const row = await updateJob(registryDb(c.env.DB), job.id, () => ({ action: "cancel", actor: c.get("actor"), state: "cancelled", set: { error: reason }, details: { reason } }));
    await c.env.RETRAINING_WORKFLOW.get(job.id)
      .then((w) => w.terminate())
      .catch(() => undefined); // already finished
    return c.json({ job: describeJob(row) });
  });

/** Verifies the trainer's signature with the job's model secret; returns the job and raw body. */
async function signed(c: Context<{ Bindings: Env }>): Promise<{ job: JobRow; body: Uint8Array }> {
  const id = c.req.param("id")!;
  // Unknown ids and bad signatures answer the same 401, so ids cannot be probed without the secret.
  const refuse = (why: string) => new ApiError("unauthorized", `trainer request refused: ${why}`);
  if (!JOB_ID.test(id)) throw refuse("unknown job");
  const db = registryDb(c.env.DB);
  const job = await getJob(db, id).catch(() => null);
  const cfg = job ? await findConfig(db, job.modelName) : null;
  if (!job || !cfg) throw refuse("unknown job");
  const body = new Uint8Array(await c.req.arrayBuffer());
  const why = await verify(cfg.trainerSecret, c.req.header(SIGNATURE_HEADER), c.req.method, new URL(c.req.url).pathname, body);
  if (why) throw refuse(why);
  return { job, body };
}

function jsonOf(body: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(body));
  } catch (error) {
    throw new ApiError("invalid_json", `request body is not valid JSON: ${(error as Error).message}`);
  }
}

const WORKING: JobState[] = ["queued", "dispatched", "training"];

export const trainerRoutes = new Hono<{ Bindings: Env }>()
  .get("/jobs/:id/export/:part", async (c) => {
    const { job } = await signed(c);
    const part = c.req.param("part");
    if (part !== "train" && part !== "oot") throw new ApiError("not_found", `export part '${part.slice(0, 20)}' not found; train or oot`);
    const o = await c.env.ARTIFACTS.get(exportKey(job.id, part));
    if (!o) throw new ApiError("not_found", `job ${job.id} has no ${part} export`);
    return new Response(o.body, { headers: { "content-type": "application/gzip", "content-length": String(o.size) } });
  })
  .post("/jobs/:id/status", limitBody(() => 16 * 1024), async (c) => {
    const { job, body } = await signed(c);
    const s = parse(statusCallbackSchema, jsonOf(body));
    const row = await updateJob(registryDb(c.env.DB), job.id, (j) => {
      if (j.state === "training") return null;
      if (!["queued", "dispatched"].includes(j.state)) throw new ApiError("conflict", `job ${j.id} is ${j.state}; it cannot start training`);
      return { action: "training", actor: "trainer", state: "training", details: s.detail ? { detail: s.detail } : {} };
    });
    return c.json({ job: row.id, state: row.state });
  })
  .post("/jobs/:id/candidate", limitBody((env) => intVar(env.MAX_ARTIFACT_BYTES, 25 * 1024 * 1024) + 4 * 1024 * 1024), async (c) => {
    const { job, body } = await signed(c);
    if (!WORKING.includes(job.state as JobState)) throw new ApiError("conflict", `job ${job.id} is ${job.state}; it takes no candidate`);
    let form: FormData;
    try {
      form = await new Response(body as BodyInit, { headers: { "content-type": c.req.header("content-type") ?? "" } }).formData();
    } catch {
      throw new ApiError("bad_request", "upload multipart/form-data with fields 'manifest' (JSON) and 'artifact' (ONNX file)");
    }
    const manifestField = form.get("manifest");
    const artifact = form.get("artifact");
    if (manifestField === null) throw new ApiError("invalid_input", "missing form field 'manifest'", [{ path: "manifest", message: "required" }]);
    if (!(artifact instanceof File) || artifact.size === 0) throw new ApiError("invalid_input", "missing file field 'artifact'", [{ path: "artifact", message: "required: the ONNX file" }]);
    const manifest = parse(manifestSchema, jsonOf(new TextEncoder().encode(typeof manifestField === "string" ? manifestField : await manifestField.text())));
    if (manifest.name !== job.modelName) throw new ApiError("invalid_input", `manifest name '${manifest.name}' is not the job's model '${job.modelName}'`, [{ path: "manifest.name", message: "must be the job's model" }]);
    const db = registryDb(c.env.DB);
    if (await findVersion(db, job.modelName, manifest.version)) throw new ApiError("conflict", `version ${manifest.version} of '${job.modelName}' already exists; pick a new version`);
    const bytes = new Uint8Array(await artifact.arrayBuffer());
    const sha256 = await sha256Hex(bytes);
    const info = await checkArtifact(sha256, bytes, manifest.featureSchema);
    await c.env.ARTIFACTS.put(artifactKey(sha256), bytes, { sha256, customMetadata: { model: job.modelName, version: manifest.version, job: job.id } });
    const staged: StagedCandidate = { manifest, sha256, size_bytes: bytes.byteLength, ir_version: info.irVersion, opsets: info.opsets, uploaded_at: new Date().toISOString() };
    await c.env.ARTIFACTS.put(stagedKey(job.id), JSON.stringify(staged), { httpMetadata: { contentType: "application/json" } });
    await updateJob(db, job.id, () => ({ action: "candidate", actor: "trainer", set: { candidateVersion: manifest.version }, details: { version: manifest.version, sha256, size_bytes: bytes.byteLength } }));
    return c.json({ job: job.id, version: manifest.version, sha256 }, 201);
  })
  .post("/jobs/:id/complete", limitBody(() => 64 * 1024), async (c) => {
    const { job, body } = await signed(c);
    const result = parse(completeCallbackSchema, jsonOf(body));
    if (!WORKING.includes(job.state as JobState)) throw new ApiError("conflict", `job ${job.id} is ${job.state}; it is not waiting for the trainer`);
    const db = registryDb(c.env.DB);
    if (result.status === "succeeded") {
      if (!(await c.env.ARTIFACTS.head(stagedKey(job.id)))) throw new ApiError("conflict", `job ${job.id}: upload the candidate (POST .../candidate) before reporting success`);
      await updateJob(db, job.id, (j) => ({ action: "trainer_succeeded", actor: "trainer", state: "training", set: { metrics: result.metrics }, details: { metrics: result.metrics, ...(result.detail ? { detail: result.detail } : {}) } }));
    }
    const w = await c.env.RETRAINING_WORKFLOW.get(job.id);
    await w.sendEvent({ type: TRAINER_RESULT, payload: result });
    return c.json({ job: job.id, accepted: result.status }, 202);
  });

