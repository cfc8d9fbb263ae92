/**
 * Response shapes, written as zod for the OpenAPI document. The handlers build their answers with
 * plain objects, so these describe them: the fields each answer always has are required, and
 * objects stay open (`looseObject`) so adding a field is not a breaking change. The OpenAPI test
 * validates real responses against the document, which keeps these honest.
 */
import { z } from "zod";

export const errorBody = z.looseObject({
  error: z.looseObject({
    code: z.enum([
      "bad_request", "invalid_json", "invalid_input", "invalid_artifact", "unauthorized", "forbidden", "not_found",
      "conflict", "body_too_large", "too_many_rows", "rate_limited", "unavailable", "internal_error",
    ]),
    message: z.string(),
    details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
  request_id: z.string().optional(),
});

const classLabel = z.union([z.number(), z.string()]);
export const prediction = z.looseObject({
  label: classLabel.optional(),
  score: z.number().optional(),
  probabilities: z.record(z.string(), z.number()).optional(),
  value: z.number().optional(),
});

const predictBase = {
  request_id: z.string(),
  model: z.string(),
  version: z.string(),
  alias: z.string().optional(),
  deployment: z.string().optional(),
  variant: z.string().optional(),
};
export const predictResponse = z.union([
  z.looseObject({ ...predictBase, prediction }),
  z.looseObject({ ...predictBase, predictions: z.array(prediction) }),
]);

const tensorMeta = z.looseObject({ name: z.string(), datatype: z.string(), shape: z.array(z.number().int()) });
export const v2ServerMetadata = z.looseObject({ name: z.string(), version: z.string(), extensions: z.array(z.string()) });
export const v2ModelMetadata = z.looseObject({
  name: z.string(),
  versions: z.array(z.string()),
  platform: z.string(),
  inputs: z.array(tensorMeta),
  outputs: z.array(tensorMeta),
});
export const v2ModelReady = z.looseObject({ name: z.string(), version: z.string(), ready: z.boolean() });
export const v2InferResponse = z.looseObject({
  model_name: z.string(),
  model_version: z.string(),
  id: z.string(),
  outputs: z.array(z.looseObject({ name: z.string(), datatype: z.string(), shape: z.array(z.number().int()), data: z.array(z.unknown()) })),
});

export const health = z.looseObject({ status: z.literal("ok") });
export const readiness = z.looseObject({
  ready: z.boolean(),
  registry: z.enum(["ok", "error"]),
  models: z.record(z.string(), z.looseObject({ version: z.string().optional(), status: z.enum(["ok", "error"]), error: z.string().optional() })),
});

export const modelVersion = z.looseObject({
  name: z.string(),
  version: z.string(),
  task: z.enum(["binary_classification", "multiclass_classification", "regression"]),
  description: z.string(),
  environment: z.string(),
  status: z.string(),
  artifact: z.looseObject({ key: z.string(), sha256: z.string(), size_bytes: z.number(), ir_version: z.number(), opsets: z.record(z.string(), z.number()) }),
  metrics: z.record(z.string(), z.number()),
  feature_schema: z.looseObject({ features: z.array(z.looseObject({ name: z.string(), type: z.string() })), input: z.looseObject({ kind: z.string() }), output: z.looseObject({ kind: z.string() }) }),
  created_at: z.string(),
  created_by: z.string(),
});
export const registered = modelVersion.extend({ aliases: z.array(z.string()) });
const modelSummary = z.looseObject({ name: z.string(), description: z.string(), created_at: z.string(), created_by: z.string() });
export const modelList = z.looseObject({ models: z.array(modelSummary) });
export const modelDetail = modelSummary.extend({ aliases: z.record(z.string(), z.string()), versions: z.array(modelVersion) });
export const versionList = z.looseObject({ versions: z.array(modelVersion) });
export const auditPage = z.looseObject({
  entries: z.array(z.looseObject({ id: z.number(), at: z.string(), actor: z.string(), action: z.string(), modelName: z.string(), version: z.string().nullable() })),
  next_before: z.number().nullable(),
});

export const deployment = z.looseObject({
  id: z.string(),
  model: z.string(),
  strategy: z.string(),
  state: z.string(),
  baseline_version: z.string().nullable(),
  candidate_version: z.string().nullable(),
  variants: z.array(z.looseObject({ name: z.string(), version: z.string() })),
  routing: z.boolean(),
  revision: z.number(),
});
export const deploymentEnvelope = z.looseObject({ deployment });
export const deploymentList = z.looseObject({ deployments: z.array(deployment) });

/** Monitoring reads: per version, for a window. */
export const perVersionWindow = z.looseObject({ model: z.string(), window: z.string(), versions: z.array(z.looseObject({ version: z.string() })) });
export const modelScoped = z.looseObject({ model: z.string() });
export const feedbackResponse = z.looseObject({
  joined: z.number().int(),
  duplicates: z.array(z.looseObject({ request_id: z.string(), row: z.number() })),
  not_found: z.array(z.looseObject({ request_id: z.string(), row: z.number() })),
});
export const anyJson = z.looseObject({});

/** Feature store answers (src/features). */
export const featureDefinition = z.looseObject({ group: z.string(), name: z.string(), version: z.number().int(), kind: z.string(), dtype: z.string(), status: z.string(), created_at: z.string() });
export const featureVersions = z.looseObject({ group: z.string(), name: z.string(), versions: z.array(featureDefinition) });
export const featureLoad = z.looseObject({
  id: z.string(), group: z.string(), format: z.string(), status: z.string(),
  progress: z.looseObject({ bytes_done: z.number(), bytes_total: z.number(), fraction: z.number() }),
  rows_loaded: z.number().int(), rows_rejected: z.number().int(),
});
export const entityFeatures = z.looseObject({
  entity_id: z.string(), values: z.record(z.string(), z.unknown()), sources: z.record(z.string(), z.string()), fell_back: z.array(z.string()),
  errors: z.array(z.looseObject({ feature: z.string(), message: z.string() })),
});

/** A batch scoring job (src/batch/model.ts describeJob). */
export const batchJob = z.looseObject({
  job_id: z.string(), state: z.string(), model: z.string(), version: z.string(),
  rows: z.looseObject({ total: z.number().int().nullable(), done: z.number().int(), scored: z.number().int(), failed: z.number().int() }),
  rows_per_second: z.number().nullable(),
});

/** A retraining job (src/retraining/store.ts describeJob). */
export const retrainingJob = z.looseObject({ id: z.string(), model: z.string(), state: z.string(), active: z.boolean(), trigger: z.looseObject({ type: z.string() }), created_at: z.string().nullable() });
