/** OpenAPI entries for the retraining loop (src/retraining/routes.ts): admin under /admin/retraining, the trainer's signed calls under /retraining. */
import { z } from "zod";
import { cancelSchema, completeCallbackSchema, JOB_STATES, manualJobSchema, retrainingConfigSchema, statusCallbackSchema, triggerSchema } from "../retraining/model";
import { modelNameSchema } from "../registry/manifest";
import * as r from "./responses";
import type { RouteDoc } from "./spec";

const model = { model: modelNameSchema };
const id = { id: z.string().describe("retraining job id") };
const admin = (d: Omit<RouteDoc, "tag" | "auth">): RouteDoc => ({ tag: "retraining", auth: "admin", ...d });
const trainer = (d: Omit<RouteDoc, "tag" | "auth">): RouteDoc => ({ tag: "retraining", auth: "trainer", ...d });
const jobEnvelope = z.looseObject({ job: r.retrainingJob });
const config = z.looseObject({ model: z.string(), trainer_url: z.string(), trainer_secret: z.literal("<redacted>") });

export const retrainingDocs: RouteDoc[] = [
  admin({ method: "put", path: "/admin/retraining/:model/config", summary: "Trainer endpoint and secret, sample rate, cool-down, validation, release, watch", params: model, body: { schema: retrainingConfigSchema }, responses: { 200: { description: "stored (secret redacted)", schema: config } }, errors: [400, 404, 422] }),
  admin({ method: "get", path: "/admin/retraining/:model/config", summary: "The configuration (secret redacted)", params: model, responses: { 200: { description: "configuration", schema: config } }, errors: [400, 404] }),
  admin({
    method: "post", path: "/admin/retraining/:model/triggers", summary: "Define a trigger (degradation, drift or schedule)", params: model,
    body: { schema: triggerSchema, example: { type: "drift", psi: 0.25, on: "features", min_features: 2, window: "24h" } },
    responses: { 201: { description: "the trigger", schema: z.looseObject({ id: z.string(), model: z.string(), type: z.string() }) } }, errors: [400, 404, 422],
  }),
  admin({
    method: "get", path: "/admin/retraining/:model/triggers", summary: "Triggers, with each one's last evaluation", params: model,
    responses: { 200: { description: "triggers", schema: z.looseObject({ model: z.string(), triggers: z.array(z.looseObject({ id: z.string(), type: z.string(), enabled: z.boolean(), last_fired_at: z.string().nullable() })) }) } }, errors: [400],
  }),
  admin({ method: "delete", path: "/admin/retraining/:model/triggers/:id", summary: "Delete a trigger", params: { ...model, id: z.string() }, responses: { 200: { description: "deleted", schema: z.looseObject({ deleted: z.string() }) } }, errors: [400, 404] }),
  admin({ method: "post", path: "/admin/retraining/:model/jobs", summary: "Retrain now (manual trigger with a reason; the cool-down does not apply)", params: model, body: { schema: manualJobSchema, example: { reason: "new labels for Q3" } }, responses: { 202: { description: "started", schema: jobEnvelope } }, errors: [400, 404, 409, 422] }),
  admin({
    method: "get", path: "/admin/retraining/:model/jobs", summary: "Retraining history, newest first", params: model,
    query: { state: z.enum(JOB_STATES).optional(), limit: z.coerce.number().int().min(1).max(200).optional(), before: z.string().regex(/^\d{1,15}$/).optional().describe("epoch ms") },
    responses: { 200: { description: "jobs", schema: z.looseObject({ model: z.string(), jobs: z.array(r.retrainingJob) }) } }, errors: [400],
  }),
  admin({ method: "get", path: "/admin/retraining/jobs/:id", summary: "A job with its event history", params: id, responses: { 200: { description: "job and events", schema: z.looseObject({ job: r.retrainingJob, events: z.array(r.anyJson) }) } }, errors: [404] }),
  admin({ method: "get", path: "/admin/retraining/jobs/:id/report", summary: "The champion/challenger comparison report", params: id, responses: { 200: { description: "report", schema: z.looseObject({ job: z.string(), state: z.string(), report: z.unknown() }) } }, errors: [404] }),
  admin({ method: "post", path: "/admin/retraining/jobs/:id/cancel", summary: "Cancel a queued, dispatched or training job", params: id, body: { schema: cancelSchema, required: false }, responses: { 200: { description: "the job", schema: jobEnvelope } }, errors: [400, 404, 409, 422] }),
  trainer({
    method: "get", path: "/retraining/jobs/:id/export/:part", summary: "Training data export (gzip NDJSON)", params: { ...id, part: z.enum(["train", "oot"]) },
    responses: { 200: { description: "gzip NDJSON", contentType: "application/x-ndjson" } }, errors: [404],
  }),
  trainer({ method: "post", path: "/retraining/jobs/:id/status", summary: "Trainer status callback", params: id, body: { schema: statusCallbackSchema }, responses: { 200: { description: "job state", schema: z.looseObject({ job: z.string(), state: z.string() }) } }, errors: [400, 404, 409, 413, 422] }),
  trainer({
    method: "post", path: "/retraining/jobs/:id/candidate", summary: "Upload the candidate (multipart: manifest JSON + ONNX artifact); staged, not registered", params: id,
    body: { schema: z.object({ manifest: z.string().describe("manifest JSON"), artifact: z.string().describe("ONNX bytes") }), contentType: "multipart/form-data" },
    responses: { 201: { description: "staged", schema: z.looseObject({ job: z.string(), version: z.string(), sha256: z.string() }) } }, errors: [400, 404, 409, 413, 422],
  }),
  trainer({ method: "post", path: "/retraining/jobs/:id/complete", summary: "Trainer completion callback", params: id, body: { schema: completeCallbackSchema }, responses: { 202: { description: "accepted", schema: z.looseObject({ job: z.string(), accepted: z.string() }) } }, errors: [400, 404, 409, 413, 422] }),
];
