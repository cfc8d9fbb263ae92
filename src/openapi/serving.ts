/** OpenAPI entries for the prediction APIs: /v1 (src/serving/v1.ts) and the Open Inference Protocol /v2 (src/serving/v2.ts). */
import { z } from "zod";
import { modelNameSchema, semverSchema } from "../registry/manifest";
import { predictBody } from "../serving/v1";
import { inferRequest } from "../serving/v2";
import * as r from "./responses";
import type { RouteDoc } from "./spec";

const ROW = { Seniority: 9, Home: "rent", Time: 60, Age: 30, Marital: "married", Records: "no", Job: "freelance", Expenses: 73, Income: 129, Assets: 0, Debt: 0, Amount: 800, Price: 846 };
const name = { name: modelNameSchema };
const nameVersion = { name: modelNameSchema, version: semverSchema };
const v2 = (path: string, summary: string, responses: RouteDoc["responses"], extra: Partial<RouteDoc> = {}): RouteDoc => ({ method: "get", path, tag: "v2", auth: "api_key", summary, responses, ...extra });

export const servingDocs: RouteDoc[] = [
  {
    method: "post", path: "/v1/models/:name/predict", tag: "v1", auth: "api_key",
    summary: "Predict one row (features) or many (instances) in one session run",
    description: "Routing: an explicit version or alias wins; else the model's open deployment (sticky per unit); else the champion. Headers: x-request-id, x-model-version, x-deployment/x-variant when routed, server-timing.",
    params: name,
    body: { schema: predictBody, example: { features: ROW } },
    responses: { 200: { description: "the prediction(s) and which version answered", schema: r.predictResponse, example: { request_id: "0193…", model: "credit-risk", version: "1.0.0", alias: "champion", prediction: { label: 0, score: 0.347, probabilities: { "0": 0.653, "1": 0.347 } } } } },
    errors: [400, 404, 413, 422],
  },
  v2("/v2", "Server metadata", { 200: { description: "server metadata", schema: r.v2ServerMetadata } }, { auth: "none" }),
  v2("/v2/health/live", "Server liveness", { 200: { description: "live", schema: z.looseObject({ live: z.boolean() }) } }, { auth: "none" }),
  v2("/v2/health/ready", "Server readiness", { 200: { description: "ready", schema: z.looseObject({ ready: z.boolean() }) }, 503: { description: "not ready", schema: z.looseObject({ ready: z.boolean() }) } }, { auth: "none" }),
  v2("/v2/models/:name", "Model metadata (the default version)", { 200: { description: "inputs, outputs, features", schema: r.v2ModelMetadata } }, { params: name, errors: [400, 404] }),
  v2("/v2/models/:name/versions/:version", "Model metadata of one version", { 200: { description: "inputs, outputs, features", schema: r.v2ModelMetadata } }, { params: nameVersion, errors: [400, 404] }),
  v2("/v2/models/:name/ready", "Model readiness", { 200: { description: "loads", schema: r.v2ModelReady }, 503: { description: "does not load", schema: r.v2ModelReady } }, { params: name, errors: [400, 404] }),
  v2("/v2/models/:name/versions/:version/ready", "Version readiness", { 200: { description: "loads", schema: r.v2ModelReady }, 503: { description: "does not load", schema: r.v2ModelReady } }, { params: nameVersion, errors: [400, 404] }),
  ...(["/v2/models/:name/infer", "/v2/models/:name/versions/:version/infer"] as const).map(
    (path): RouteDoc => ({
      method: "post", path, tag: "v2", auth: "api_key",
      summary: path.includes("versions") ? "Inference on one version" : "Inference (routed as /v1)",
      description: "Inputs named after features ([N] or [N,1] each; null = missing), or the model's own dense tensor (columns checked against the schema).",
      params: path.includes("versions") ? nameVersion : name,
      body: { schema: inferRequest, example: { inputs: [{ name: "Age", shape: [1], datatype: "INT64", data: [30] }] } },
      responses: { 200: { description: "output tensors", schema: r.v2InferResponse } },
      errors: [400, 404, 413, 422],
    }),
  ),
];
