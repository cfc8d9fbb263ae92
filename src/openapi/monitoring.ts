/** OpenAPI entries for monitoring (src/monitoring/routes.ts): feedback, reads under /v1/monitoring, the dashboard, admin under /admin/monitoring. */
import { z } from "zod";
import { feedbackBodySchema } from "../monitoring/routes";
import { targetsBodySchema } from "../monitoring/notify";
import { slaConfigSchema } from "../monitoring/sla";
import { modelNameSchema, semverSchema } from "../registry/manifest";
import * as r from "./responses";
import type { RouteDoc } from "./spec";

const model = { model: modelNameSchema };
const windowQuery = (fallback: string) => ({
  window: z.enum(["1m", "5m", "30m", "1h", "6h", "24h", "7d"]).optional().describe(`time window (default ${fallback})`),
  version: semverSchema.optional().describe("one version (default: every version with data)"),
});
const read = (path: string, summary: string, fallback: string, schema: z.ZodType = r.perVersionWindow): RouteDoc => ({
  method: "get", path: `/v1/monitoring/models/:model/${path}`, tag: "monitoring", auth: "api_key", summary, params: model,
  query: windowQuery(fallback), responses: { 200: { description: summary, schema } }, errors: [400, 404],
});
const admin = (d: Omit<RouteDoc, "tag" | "auth" | "params">): RouteDoc => ({ tag: "monitoring", auth: "admin", params: model, errors: [400, 404], ...d });

export const monitoringDocs: RouteDoc[] = [
  {
    method: "post", path: "/v1/feedback", tag: "monitoring", auth: "api_key", summary: "Delayed labels, joined to logged predictions by request id (and row)",
    body: { schema: feedbackBodySchema, example: { model: "credit-risk", feedback: [{ request_id: "0193…", row: 0, actual: 1 }] } },
    responses: { 200: { description: "what was joined", schema: r.feedbackResponse } }, errors: [400, 413, 422],
  },
  read("summary", "Volume, rps, errors by class, latency p50/p95/p99", "5m"),
  read("drift", "Feature and score drift against the training reference (PSI, KS, chi-square, JS)", "24h"),
  read("performance", "Live AUC/KS/Gini/log loss or RMSE from joined labels, and degradation", "7d"),
  { method: "get", path: "/v1/monitoring/models/:model/sla", tag: "monitoring", auth: "api_key", summary: "SLA configuration and compliance", params: model, responses: { 200: { description: "SLA", schema: r.modelScoped } }, errors: [400, 404] },
  { method: "get", path: "/v1/monitoring/models/:model/alerts", tag: "monitoring", auth: "api_key", summary: "Firing alerts and history", params: model, query: { limit: z.coerce.number().int().min(1).max(1000).optional() }, responses: { 200: { description: "alerts", schema: r.modelScoped } }, errors: [400, 404] },
  { method: "get", path: "/v1/monitoring/models/:model/dashboard", tag: "monitoring", auth: "api_key", summary: "Dashboard data (JSON export)", params: model, query: windowQuery("1h"), responses: { 200: { description: "dashboard data", schema: r.anyJson } }, errors: [400, 404] },
  { method: "get", path: "/dashboard/:model", tag: "monitoring", auth: "none", summary: "Dashboard page", params: model, responses: { 200: { description: "HTML page", contentType: "text/html" } }, errors: [400] },
  admin({ method: "get", path: "/admin/monitoring/:model/sla", summary: "SLA configuration", responses: { 200: { description: "SLA", schema: r.modelScoped } } }),
  admin({ method: "put", path: "/admin/monitoring/:model/sla", summary: "Set the SLA", body: { schema: slaConfigSchema, example: { p95_latency_ms: 50, max_error_rate: 0.01, min_auc: 0.75 } }, responses: { 200: { description: "stored", schema: r.modelScoped } }, errors: [400, 404, 422] }),
  admin({ method: "get", path: "/admin/monitoring/:model/targets", summary: "Notification targets (secrets redacted)", responses: { 200: { description: "targets", schema: r.modelScoped } } }),
  admin({ method: "put", path: "/admin/monitoring/:model/targets", summary: "Set notification targets", body: { schema: targetsBodySchema }, responses: { 200: { description: "stored (secrets redacted)", schema: r.modelScoped } }, errors: [400, 404, 422] }),
  admin({ method: "post", path: "/admin/monitoring/:model/evaluate", summary: "Evaluate SLA and alerts now (the cron does it every minute)", responses: { 200: { description: "evaluations", schema: r.modelScoped } } }),
  admin({ method: "post", path: "/admin/monitoring/:model/reports", summary: "Write the daily drift reports now (the cron does it at 06:00 UTC)", responses: { 201: { description: "report keys", schema: r.modelScoped } } }),
  {
    method: "get", path: "/admin/monitoring/:model/reports/:version/:file", tag: "monitoring", auth: "admin", summary: "A stored drift report (HTML or JSON)",
    params: { model: modelNameSchema, version: semverSchema, file: z.string() }, responses: { 200: { description: "the report", contentType: "text/html" } }, errors: [400, 404],
  },
  admin({ method: "get", path: "/admin/monitoring/:model/dead-letters", summary: "Notifications that exhausted their retries", responses: { 200: { description: "dead letters", schema: r.modelScoped } } }),
  admin({ method: "post", path: "/admin/monitoring/:model/dead-letters/replay", summary: "Replay dead letters", responses: { 200: { description: "replayed", schema: r.modelScoped } } }),
];
