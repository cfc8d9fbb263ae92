/** OpenAPI entries for liveness, readiness, metrics and the API description itself (src/app.ts, src/openapi/routes.ts). */
import { z } from "zod";
import * as r from "./responses";
import type { RouteDoc } from "./spec";

export const healthDocs: RouteDoc[] = [
  { method: "get", path: "/health", tag: "health", auth: "none", summary: "Liveness: answers while the isolate runs", responses: { 200: { description: "alive", schema: r.health, example: { status: "ok" } } } },
  {
    method: "get", path: "/ready", tag: "health", auth: "none",
    summary: "Readiness: the registry answers and every champion loads",
    responses: { 200: { description: "ready", schema: r.readiness }, 503: { description: "not ready (the report says what failed)", schema: r.readiness } },
  },
  {
    method: "get", path: "/metrics", tag: "health", auth: "metrics",
    summary: "Prometheus metrics: fleet-wide aggregates and this isolate's counters",
    responses: { 200: { description: "Prometheus text exposition format 0.0.4", contentType: "text/plain" } },
  },
  { method: "get", path: "/openapi.json", tag: "health", auth: "none", summary: "This OpenAPI 3.1 document", responses: { 200: { description: "the document", schema: r.anyJson } } },
  { method: "get", path: "/docs", tag: "health", auth: "none", summary: "API reference page rendered from /openapi.json", responses: { 200: { description: "HTML page", contentType: "text/html" } } },
  {
    method: "get", path: "/schemas/manifest.json", tag: "registry", auth: "none",
    summary: "JSON Schema (2020-12) of the registration manifest, generated from its zod schema",
    description: "For trainers outside TypeScript: validate a manifest before registering (Python: `jsonschema.validate(manifest, schema)`). Cross-field rules (dense columns naming known features, impute values within bounds, classes containing positiveClass) are checked at registration and reported by path.",
    responses: { 200: { description: "JSON Schema", schema: z.looseObject({ $schema: z.string() }) } },
  },
];
