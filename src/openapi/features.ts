/** OpenAPI entries for the feature store (src/features/routes.ts): admin under /admin/features, lookups under /v1/features, events at /v1/events. */
import { z } from "zod";
import { definitionBody, featureNameSchema, groupSchema } from "../features/definitions";
import { eventsBody } from "../features/ingest";
import { batchBody, getBody, loadJson, loadQuery, profileBody, retireBody, warmBody } from "../features/routes";
import * as r from "./responses";
import type { RouteDoc } from "./spec";

const feature = { group: groupSchema, name: featureNameSchema };
const admin = (d: Omit<RouteDoc, "tag" | "auth">): RouteDoc => ({ tag: "features", auth: "admin", ...d });
const serve = (d: Omit<RouteDoc, "tag" | "auth">): RouteDoc => ({ tag: "features", auth: "api_key", ...d });
const optional = (shape: Record<string, z.ZodType>) => Object.fromEntries(Object.entries(shape).map(([k, s]) => [k, s.optional()]));

export const featureDocs: RouteDoc[] = [
  admin({
    method: "post", path: "/admin/features/definitions", summary: "Define a feature (offline, realtime aggregate or derived); a changed definition is a new version",
    description: "A new type is refused (409, naming them in details) when an active online feature or a model version (not archived) reading the feature could no longer use it.",
    body: { schema: definitionBody, example: { group: "customer", name: "income", kind: "offline", dtype: "float", ttl_seconds: 86400 } },
    responses: { 201: { description: "a new version", schema: r.featureDefinition }, 200: { description: "identical to the current version (nothing changed)", schema: r.featureDefinition } },
    errors: [400, 409, 422],
  }),
  admin({ method: "get", path: "/admin/features/definitions", summary: "Every version of every feature of a group", query: { group: groupSchema }, responses: { 200: { description: "definitions", schema: z.looseObject({ group: z.string(), definitions: z.array(r.featureDefinition) }) } }, errors: [400] }),
  admin({ method: "get", path: "/admin/features/definitions/:group/:name", summary: "Every version of one feature", params: feature, responses: { 200: { description: "versions", schema: r.featureVersions } }, errors: [400, 404] }),
  admin({
    method: "post", path: "/admin/features/definitions/:group/:name/retire", summary: "Retire one version ({version}) or all of them", params: feature,
    description: "Refused (409, naming them in details) while an active online feature or a model version (not archived) reads what would be retired.",
    body: { schema: retireBody, required: false }, responses: { 200: { description: "versions after the change", schema: r.featureVersions } }, errors: [400, 404, 409, 422],
  }),
  admin({
    method: "post", path: "/admin/features/loads", summary: "Offline load: JSON naming a file in R2, or the file itself (text/csv, application/x-ndjson) with the options in the query",
    description: "With a file body, the options are the query parameters; with a JSON body they are in the body. The load runs on a queue; poll GET /admin/features/loads/{id}.",
    query: optional(loadQuery.shape), body: { schema: loadJson, example: { group: "customer", format: "csv", r2_key: "loads/customer.csv", entity_column: "customer_id" } },
    responses: { 202: { description: "accepted", schema: r.featureLoad }, 200: { description: "the same upload was already loaded", schema: r.featureLoad } },
    errors: [400, 404, 409, 413, 422],
  }),
  admin({ method: "get", path: "/admin/features/loads", summary: "Loads of a group", query: { group: groupSchema }, responses: { 200: { description: "loads", schema: z.looseObject({ group: z.string(), loads: z.array(r.featureLoad) }) } }, errors: [400] }),
  admin({ method: "get", path: "/admin/features/loads/:id", summary: "A load: progress, rejected rows, outcome", params: { id: z.string() }, responses: { 200: { description: "the load", schema: r.featureLoad } }, errors: [404] }),
  admin({
    method: "post", path: "/admin/features/warm", summary: "Warm the Cache API tier with entities' current offline records (queued, 100 entities per message)",
    body: { schema: warmBody, example: { group: "customers", entity_ids: ["c1", "c2"] } },
    responses: { 202: { description: "queued", schema: z.looseObject({ group: z.string(), entities: z.number().int(), messages: z.number().int() }) } }, errors: [400, 404, 413, 422],
  }),
  admin({ method: "get", path: "/admin/features/metrics", summary: "This isolate's feature latency, cache hit rate and fallbacks", responses: { 200: { description: "metrics", schema: z.looseObject({ scope: z.literal("isolate"), cache: r.anyJson, features: z.array(z.looseObject({ feature: z.string(), lookups: z.number().int() })) }) } } }),
  admin({
    method: "post", path: "/admin/features/profile", summary: "Time get_features in a loop inside this isolate", body: { schema: profileBody },
    responses: { 200: { description: "timings", schema: z.looseObject({ iterations: z.number().int(), mean_ms: z.number(), share_reading_under_1ms: z.number() }) } }, errors: [400, 404, 422],
  }),
  serve({
    method: "post", path: "/v1/features/get", summary: "Features of one entity (point-in-time with as_of)",
    body: { schema: getBody, example: { group: "customer", entity_id: "c-42", features: ["income", "txn_count_1h"] } },
    responses: { 200: { description: "values, the tier each came from, fallbacks", schema: r.entityFeatures.extend({ request_id: z.string(), group: z.string() }) } }, errors: [400, 404, 413, 422],
  }),
  serve({
    method: "post", path: "/v1/features/batch", summary: "Features of many entities",
    body: { schema: batchBody }, responses: { 200: { description: "one result per distinct entity", schema: z.looseObject({ request_id: z.string(), group: z.string(), results: z.array(r.entityFeatures) }) } }, errors: [400, 404, 413, 422],
  }),
  serve({
    method: "post", path: "/v1/events", summary: "Realtime events (one, or {events: [...]}) for the aggregate features",
    body: { schema: eventsBody }, responses: { 200: { description: "what was counted", schema: z.looseObject({ request_id: z.string(), accepted: z.number().int(), duplicates: z.number().int(), too_late: z.number().int() }) } }, errors: [400, 413, 422],
  }),
];
