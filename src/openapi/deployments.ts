/** OpenAPI entries for deployments and traffic routing (src/deployments/routes.ts), mounted at /admin/deployments. */
import { z } from "zod";
import { STATES, createDeploymentSchema, promoteBodySchema, reasonBodySchema, testSetSchema, validateBodySchema, weightsBodySchema } from "../deployments/model";
import { modelNameSchema } from "../registry/manifest";
import * as r from "./responses";
import type { RouteDoc } from "./spec";

const id = { id: z.string().describe("deployment id") };
const doc = (d: Omit<RouteDoc, "tag" | "auth">): RouteDoc => ({ tag: "deployments", auth: "admin", ...d });
const transition = (verb: string, summary: string, body: z.ZodType = reasonBodySchema): RouteDoc =>
  doc({ method: "post", path: `/admin/deployments/:id/${verb}`, summary, params: id, body: { schema: body, required: false }, responses: { 200: { description: "the deployment after the change", schema: r.deploymentEnvelope } }, errors: [400, 404, 409, 422] });

export const deploymentDocs: RouteDoc[] = [
  doc({
    method: "post", path: "/admin/deployments", summary: "Create a deployment (direct, blue_green, canary, ab_test, shadow, bandit)",
    description: "One open deployment per model. Every change is one D1 transaction with its history event; a writer working from a stale revision gets 409.",
    body: { schema: createDeploymentSchema, example: { model: "credit-risk", strategy: "canary", version: "1.1.0", steps: [5, 25, 50, 100] } },
    responses: { 201: { description: "created (state validating)", schema: r.deploymentEnvelope } },
    errors: [400, 404, 409, 422],
  }),
  doc({ method: "get", path: "/admin/deployments", summary: "List deployments", query: { model: modelNameSchema.optional(), state: z.enum(STATES).optional() }, responses: { 200: { description: "deployments", schema: r.deploymentList } }, errors: [400] }),
  doc({
    method: "put", path: "/admin/deployments/test-sets/:model", summary: "Store a model's validation test set",
    description: "404 for an unknown model. Each label must be one of the classes of the model's versions that are not archived (compared as text), or a finite number for a regressor; else 422 naming rows[i].label. Nothing is stored on refusal.",
    params: { model: modelNameSchema }, body: { schema: testSetSchema },
    responses: { 200: { description: "stored", schema: z.looseObject({ model: z.string(), rows: z.number().int(), labelled: z.number().int() }) } }, errors: [400, 404, 413, 422],
  }),
  doc({ method: "get", path: "/admin/deployments/:id", summary: "One deployment", params: id, responses: { 200: { description: "the deployment", schema: r.deploymentEnvelope } }, errors: [404] }),
  doc({ method: "get", path: "/admin/deployments/:id/history", summary: "Its history events (canary steps and verdicts with their reasons)", params: id, responses: { 200: { description: "events", schema: z.looseObject({ deployment: z.string(), events: z.array(r.anyJson) }) } }, errors: [404] }),
  doc({
    method: "post", path: "/admin/deployments/:id/validate", summary: "Validate the candidate (loads, schema, test set, bounds, metric floor, latency)",
    description: "The test set's labels must be labels of every version validated and of the baseline: 422 naming test_set.rows[i].label for the request's set, 409 when the stored set does not fit (store a new one). Nothing is recorded on refusal.",
    params: id, body: { schema: validateBodySchema, required: false },
    responses: { 200: { description: "the report", schema: z.looseObject({ deployment: r.deployment, report: r.anyJson }) } }, errors: [400, 404, 409, 422],
  }),
  transition("start", "Start routing traffic (needs a passed validation)"),
  transition("pause", "Pause (traffic goes back to the baseline)"),
  transition("resume", "Resume a paused deployment"),
  transition("abort", "Abort"),
  transition("rollback", "Roll back to the baseline"),
  doc({
    method: "post", path: "/admin/deployments/:id/weights", summary: "Change A/B weights in place (same salt, minimal moves)", params: id,
    body: { schema: weightsBodySchema, example: { variants: [{ name: "a", weight: 70 }, { name: "b", weight: 30 }], reason: "shift traffic" } },
    responses: { 200: { description: "the deployment after the change", schema: r.deploymentEnvelope } }, errors: [400, 404, 409, 422],
  }),
  transition("promote", "Promote the candidate (or a named variant) and move the alias", promoteBodySchema),
  doc({ method: "get", path: "/admin/deployments/:id/results", summary: "Per-variant results (A/B, shadow, bandit)", params: id, responses: { 200: { description: "results", schema: z.looseObject({ deployment: z.string(), model: z.string(), strategy: z.string(), state: z.string() }) } }, errors: [404] }),
];
