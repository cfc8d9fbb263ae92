/**
 * Prediction API, version 1.
 *
 *   POST /v1/models/:name/predict
 *     { "features": { ... } }                 one row  -> { prediction }
 *     { "instances": [ { ... }, ... ] }       N rows   -> { predictions: [...] }  (one session run)
 *     { "entity_id": "...", "features"?: { overrides } }  one row assembled from the feature store
 *                                             (src/features/) -> { prediction, feature_sources, fell_back }
 *     optional "version" or "alias" (default: the model's deployment routing, else the champion alias)
 *     optional "unit": the entity/user id that keeps a caller on one deployment variant
 *
 * Responses carry the model name and version that answered, the request id, and headers
 * `x-model-version` and `server-timing: inference;dur=<ms>`.
 */
import { Hono } from "hono";
import { z } from "zod";
import { ApiError } from "../http/errors";
import { intVar, readJson } from "../http/limits";
import { aliasSchema, modelNameSchema, semverSchema, zodIssues } from "../registry/manifest";
import { score } from "../inference/predictor";
import { isolateMetrics } from "../observability/isolate-metrics";
import { entityIdSchema, entityRow, type EntityRow } from "../features";
import { dispatch, dispatchHeaders } from "./dispatch";
import { emitFailure, emitPrediction, failureOf } from "./events";

export const predictBody = z
  .object({
    features: z.record(z.string(), z.unknown()).optional(),
    instances: z.array(z.unknown()).min(1, "instances must not be empty").optional(),
    version: semverSchema.optional(),
    alias: aliasSchema.optional(),
    /** Sticky-assignment unit (entity or user id) for deployments that split traffic. */
    unit: z.string().min(1).max(256).optional(),
    /** Predict for an entity: its store features are fetched; "features" then only overrides. */
    entity_id: entityIdSchema.optional(),
  })
  .strict()
  .refine((b) => (b.entity_id !== undefined ? b.instances === undefined : (b.features === undefined) !== (b.instances === undefined)), {
    message: 'give exactly one of "features" (one row), "instances" (rows) or "entity_id" (with optional "features" overrides)',
  });

const BODY_KEYS = new Set(["features", "instances", "version", "alias", "unit", "entity_id"]);
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v) && [Object.prototype, null].includes(Object.getPrototypeOf(v));

/**
 * The two common bodies ({features} or {instances}, with an optional version or alias) checked
 * without zod's generic object path, which workerd's ban on code generation makes cost tens of
 * microseconds (`npm run bench:stages`). It accepts only what `predictBody` accepts and returns what
 * `predictBody` would return; anything else (every invalid body, entity and unit requests) gets
 * undefined and goes through `predictBody`, which alone decides and words the errors.
 */
export function quickPredictBody(raw: unknown): z.infer<typeof predictBody> | undefined {
  if (!isPlainObject(raw)) return undefined;
  for (const key in raw) if (!BODY_KEYS.has(key)) return undefined;
  const { features, instances, version, alias } = raw;
  if (raw.unit !== undefined || raw.entity_id !== undefined || (features === undefined) === (instances === undefined)) return undefined;
  if (features !== undefined && (!isPlainObject(features) || Object.prototype.hasOwnProperty.call(features, "__proto__"))) return undefined;
  if (instances !== undefined && (!Array.isArray(instances) || instances.length === 0)) return undefined;
  if (version !== undefined && !(typeof version === "string" && semverSchema.safeParse(version).success)) return undefined;
  if (alias !== undefined && !(typeof alias === "string" && aliasSchema.safeParse(alias).success)) return undefined;
  return {
    ...(features !== undefined ? { features: { ...features } } : {}),
    ...(instances !== undefined ? { instances: instances as unknown[] } : {}),
    ...(version !== undefined ? { version: version as string } : {}),
    ...(alias !== undefined ? { alias: alias as string } : {}),
  };
}

export const v1Routes = new Hono<{ Bindings: Env; Variables: { requestId: string; correlationId?: string } }>().post("/models/:name/predict", async (c) => {
  const started = performance.now();
  const name = modelNameSchema.safeParse(c.req.param("name"));
  if (!name.success) throw new ApiError("bad_request", `invalid model name '${c.req.param("name")}'`);
  const raw = await readJson(c);
  const maxRows = intVar(c.env.MAX_BATCH_ROWS, 1000);
  if (raw && typeof raw === "object" && Array.isArray((raw as { instances?: unknown }).instances)) {
    const n = (raw as { instances: unknown[] }).instances.length;
    if (n > maxRows) throw new ApiError("too_many_rows", `instances has ${n} rows; the limit is ${maxRows}`);
  }
  let body = quickPredictBody(raw);
  if (!body) {
    const parsed = predictBody.safeParse(raw);
    if (!parsed.success) throw new ApiError("invalid_input", "invalid request body", zodIssues(parsed.error));
    body = parsed.data;
  }

  const routed = await dispatch(c, name.data, { version: body.version, alias: body.alias }, body.unit);
  const { version } = routed;
  let fromStore: EntityRow | undefined;
  const featuresStarted = performance.now();
  if (body.entity_id !== undefined) fromStore = await entityRow(c.env, version.featureSchema, body.entity_id, body.features ?? {});
  const featuresMs = performance.now() - featuresStarted;
  const single = body.features !== undefined || fromStore !== undefined;
  const rows = fromStore ? [fromStore.row] : single ? [body.features] : body.instances!;
  let result;
  try {
    result = await score(c.env, version, rows, single ? () => "features" : (i) => `instances[${i}]`);
  } catch (error) {
    emitFailure(c, failureOf("v1", c.get("requestId"), routed, error, started));
    throw error;
  }
  const { predictions, columns, resolved, inferenceMs } = result;
  isolateMetrics.recordInference(version.modelName, version.version, rows.length, inferenceMs / 1000);
  const provenance = fromStore ? { entity_id: body.entity_id!, sources: fromStore.sources, fell_back: fromStore.fellBack } : undefined;
  emitPrediction(c, { requestId: c.get("requestId"), at: Date.now(), route: "v1", dispatch: routed, resolved, rows, predictions, columns, latencyMs: performance.now() - started, inferenceMs, features: provenance });

  for (const [k, v] of Object.entries(dispatchHeaders(routed))) c.header(k, v);
  c.header("server-timing", `${fromStore ? `features;dur=${featuresMs.toFixed(3)}, ` : ""}inference;dur=${inferenceMs.toFixed(3)}`);
  const base = {
    // The server's id of this prediction: the one /v1/feedback takes. The caller's own
    // x-request-id, if any, comes back as correlation_id.
    request_id: c.get("requestId"),
    ...(c.get("correlationId") ? { correlation_id: c.get("correlationId") } : {}),
    model: version.modelName,
    version: version.version,
    ...(routed.alias ? { alias: routed.alias } : {}),
    ...(routed.deployment ? { deployment: routed.deployment, variant: routed.variant } : {}),
  };
  const served = provenance ? { entity_id: provenance.entity_id, feature_sources: provenance.sources, fell_back: provenance.fell_back } : {};
  return c.json(single ? { ...base, prediction: predictions[0], ...served } : { ...base, predictions });
});
