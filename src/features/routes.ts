/**
 * HTTP routes of the feature store.
 *
 * Admin (mounted at /admin/features, bearer ADMIN_TOKEN):
 *   POST /definitions                          define a feature (new version unless identical)
 *   GET  /definitions?group=g                  current and past versions of a group
 *   GET  /definitions/:group/:name             every version of one feature
 *   POST /definitions/:group/:name/retire      retire a version ({"version": n}) or all of them
 *   POST /loads                                offline load: JSON {group, format, r2_key, ...}, or
 *                                              the file itself (text/csv | application/x-ndjson)
 *                                              with ?group=&entity_column=&time_column=&max_rejected=
 *   GET  /loads?group=g, GET /loads/:id        progress, rejected rows, outcome
 *   POST /warm                                 {group, entity_ids}: precompute these entities into
 *                                              the Cache API tier, through the loads queue
 *   GET  /metrics                              per-feature latency p50/p95, hit rate, fallbacks
 *   POST /profile                              time get_features in a loop inside this isolate
 *
 * Serving (mounted at /v1/features and /v1/events, API key when required); feature reads answer
 * `server-timing: features;dur=<ms>`, the time spent assembling features inside the worker:
 *   POST /v1/features/get     {group, entity_id, features: [names], as_of?, timeout_ms?}
 *   POST /v1/features/batch   {group, entity_ids: [...], features, as_of?, timeout_ms?}
 *   POST /v1/events           one event, or {events: [...]}
 */
import { Hono } from "hono";
import { z } from "zod";
import { ApiError } from "../http/errors";
import { intVar, limitBody, readJson } from "../http/limits";
import { zodIssues } from "../registry/manifest";
import { definitionBody, defineFeature, describeDefinition, entityIdSchema, featureNameSchema, groupRows, groupSchema, retireFeature } from "./definitions";
import { eventsBodySchema, ingestEvents, MAX_EVENTS } from "./ingest";
import { featureMetrics } from "./metrics";
import { createLoad, describeLoad, getLoad, listLoads, type WarmMessage } from "./offline";
import { cacheStats, getFeatures } from "./resolve";
import { parseTime } from "./rows";

type AdminEnv = { Bindings: Env; Variables: { actor: string } };
type ServeEnv = { Bindings: Env; Variables: { requestId: string } };

function parse<T>(schema: z.ZodType<T>, raw: unknown): T {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new ApiError("invalid_input", "invalid request body", zodIssues(parsed.error));
  return parsed.data;
}

function param<T>(schema: z.ZodType<T>, value: string | undefined, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ApiError("bad_request", `invalid ${what} '${value}': ${parsed.error.issues[0].message}`);
  return parsed.data;
}

const featureRef = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}(@[1-9]\d{0,8})?$/, "feature: name or name@version");
const lookupCommon = {
  group: groupSchema,
  features: z.array(featureRef).min(1, "name at least one feature").max(200),
  /** Point-in-time read: epoch ms or ISO 8601. */
  as_of: z.union([z.number(), z.string()]).optional(),
  timeout_ms: z.number().int().min(1).max(10_000).optional(),
};
export const getBody = z.object({ ...lookupCommon, entity_id: entityIdSchema }).strict();
export const batchBody = z.object({ ...lookupCommon, entity_ids: z.array(entityIdSchema).min(1, "entity_ids must not be empty") }).strict();

export const warmBody = z.object({ group: groupSchema, entity_ids: z.array(entityIdSchema).min(1, "entity_ids must not be empty") }).strict();
export const retireBody = z.object({ version: z.number().int().min(1).optional() }).strict();
export const profileBody = z.object({ ...lookupCommon, entity_id: entityIdSchema, iterations: z.number().int().min(1).max(100_000).default(1000) }).strict();

function asOf(raw: number | string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const t = parseTime(raw);
  if (t === undefined) throw new ApiError("invalid_input", "as_of: expected epoch milliseconds or ISO 8601 with a zone", [{ path: "as_of", message: "invalid time" }]);
  return t;
}

export const loadJson = z
  .object({
    group: groupSchema,
    format: z.enum(["csv", "ndjson"]),
    r2_key: z.string().min(1).max(1024),
    entity_column: z.string().min(1).max(128),
    time_column: z.string().min(1).max(128).optional(),
    max_rejected: z.number().int().min(0).default(0),
  })
  .strict();
export const loadQuery = loadJson.omit({ r2_key: true, format: true, max_rejected: true }).extend({ max_rejected: z.coerce.number().int().min(0).default(0) });

export const featureAdminRoutes = new Hono<AdminEnv>()
  .post("/definitions", async (c) => {
    const body = parse(definitionBody, await readJson(c));
    const { row, created } = await defineFeature(c.env, body, c.get("actor"));
    return c.json(describeDefinition(row), created ? 201 : 200);
  })
  .get("/definitions", async (c) => {
    const group = param(groupSchema, c.req.query("group"), "group");
    return c.json({ group, definitions: (await groupRows(c.env, group)).map(describeDefinition) });
  })
  .get("/definitions/:group/:name", async (c) => {
    const group = param(groupSchema, c.req.param("group"), "group");
    const name = param(featureNameSchema, c.req.param("name"), "feature name");
    const rows = (await groupRows(c.env, group)).filter((r) => r.name === name);
    if (!rows.length) throw new ApiError("not_found", `feature '${group}.${name}' not found`);
    return c.json({ group, name, versions: rows.map(describeDefinition) });
  })
  .post("/definitions/:group/:name/retire", async (c) => {
    const group = param(groupSchema, c.req.param("group"), "group");
    const name = param(featureNameSchema, c.req.param("name"), "feature name");
    const length = c.req.header("content-length");
    const raw = length === "0" || (!length && !c.req.header("content-type")) ? {} : await readJson(c);
    const body = parse(retireBody, raw);
    const rows = await retireFeature(c.env, group, name, body.version);
    return c.json({ group, name, versions: rows.map(describeDefinition) });
  })
  .post(
    "/loads",
    limitBody((env) => intVar(env.FEATURE_LOAD_MAX_BYTES, 50 * 1024 * 1024)),
    async (c) => {
      const type = (c.req.header("content-type") ?? "").toLowerCase();
      let result;
      if (type.startsWith("application/json")) {
        const body = parse(loadJson, await readJson(c));
        result = await createLoad(c.env, { group: body.group, format: body.format, entityColumn: body.entity_column, timeColumn: body.time_column, maxRejected: body.max_rejected, r2Key: body.r2_key }, c.get("actor"));
      } else if (type.startsWith("text/csv") || type.startsWith("application/x-ndjson")) {
        const q = loadQuery.safeParse(c.req.query());
        if (!q.success) throw new ApiError("invalid_input", "invalid query parameters", zodIssues(q.error));
        const upload = new Uint8Array(await c.req.arrayBuffer());
        const format = type.startsWith("text/csv") ? "csv" : "ndjson";
        result = await createLoad(c.env, { group: q.data.group, format, entityColumn: q.data.entity_column, timeColumn: q.data.time_column, maxRejected: q.data.max_rejected, upload }, c.get("actor"));
      } else {
        throw new ApiError("bad_request", "send the file as text/csv or application/x-ndjson, or JSON {group, format, r2_key, entity_column}");
      }
      return c.json(describeLoad(result.load), result.created ? 202 : 200);
    },
  )
  .get("/loads", async (c) => {
    const group = param(groupSchema, c.req.query("group"), "group");
    return c.json({ group, loads: (await listLoads(c.env, group)).map(describeLoad) });
  })
  .post("/warm", async (c) => {
    const raw = await readJson(c);
    const max = intVar(c.env.MAX_BATCH_ROWS, 1000);
    const n = (raw as { entity_ids?: unknown })?.entity_ids;
    if (Array.isArray(n) && n.length > max) throw new ApiError("too_many_rows", `entity_ids has ${n.length} entries; the limit is ${max}`);
    const body = parse(warmBody, raw);
    if (!(await groupRows(c.env, body.group)).some((r) => r.kind === "offline" && r.status === "active")) throw new ApiError("not_found", `group '${body.group}' has no active offline features`);
    const entities = [...new Set(body.entity_ids)];
    const messages: { body: WarmMessage }[] = [];
    for (let i = 0; i < entities.length; i += 100) messages.push({ body: { kind: "feature_warm", group: body.group, entities: entities.slice(i, i + 100) } });
    await c.env.FEATURE_LOADS.sendBatch(messages);
    return c.json({ group: body.group, entities: entities.length, messages: messages.length }, 202);
  })
  .get("/loads/:id", async (c) => c.json(describeLoad(await getLoad(c.env, c.req.param("id")))))
  .get("/metrics", (c) => c.json({ scope: "isolate", cache: cacheStats(), features: featureMetrics.snapshot() }))
  .post("/profile", async (c) => {
    // Times get_features in a loop inside this isolate (no HTTP in between). workerd's clock ticks in
    // whole milliseconds, so per-call readings are 0 or >= 1: the share of calls reading 0 is a lower
    // bound on the share that took under 1 ms, and the mean over many calls is the figure to quote.
    const body = parse(profileBody, await readJson(c));
    const readings: number[] = [];
    const started = performance.now();
    for (let i = 0; i < body.iterations; i++) {
      const t = performance.now();
      await getFeatures(c.env, body.group, [body.entity_id], body.features, { timeoutMs: body.timeout_ms });
      readings.push(performance.now() - t);
    }
    const total = performance.now() - started;
    readings.sort((a, b) => a - b);
    const at = (q: number) => readings[Math.min(readings.length - 1, Math.ceil(q * readings.length) - 1)];
    return c.json({
      iterations: body.iterations,
      mean_ms: total / body.iterations,
      share_reading_under_1ms: readings.filter((r) => r < 1).length / readings.length,
      readings_ms: { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: readings[readings.length - 1] },
    });
  });

export const featureServeRoutes = new Hono<ServeEnv>()
  .post("/get", async (c) => {
    const body = parse(getBody, await readJson(c));
    const started = performance.now();
    const [result] = await getFeatures(c.env, body.group, [body.entity_id], body.features, { asOf: asOf(body.as_of), timeoutMs: body.timeout_ms, waitUntil: (t) => c.executionCtx.waitUntil(t) });
    if (result.errors.length) {
      throw new ApiError(
        "not_found",
        `no value for ${result.errors.map((e) => e.feature).join(", ")} of entity '${body.entity_id}': ${result.errors[0].message}`,
        result.errors.map((e) => ({ path: `features.${e.feature}`, message: e.message })),
      );
    }
    c.header("server-timing", `features;dur=${(performance.now() - started).toFixed(3)}`);
    return c.json({ request_id: c.get("requestId"), group: body.group, ...result });
  })
  .post("/batch", async (c) => {
    const raw = await readJson(c);
    const max = intVar(c.env.MAX_BATCH_ROWS, 1000);
    const n = (raw as { entity_ids?: unknown })?.entity_ids;
    if (Array.isArray(n) && n.length > max) throw new ApiError("too_many_rows", `entity_ids has ${n.length} entries; the limit is ${max}`);
    const body = parse(batchBody, raw);
    const entities = [...new Set(body.entity_ids)];
    const started = performance.now();
    const results = await getFeatures(c.env, body.group, entities, body.features, { asOf: asOf(body.as_of), timeoutMs: body.timeout_ms, waitUntil: (t) => c.executionCtx.waitUntil(t) });
    c.header("server-timing", `features;dur=${(performance.now() - started).toFixed(3)}`);
    return c.json({ request_id: c.get("requestId"), group: body.group, results });
  });

export const eventRoutes = new Hono<ServeEnv>().post("/", async (c) => {
  const raw = await readJson(c);
  const list = (raw as { events?: unknown })?.events;
  if (Array.isArray(list) && list.length > MAX_EVENTS) throw new ApiError("too_many_rows", `events has ${list.length} entries; the limit is ${MAX_EVENTS}`);
  const body = parse(eventsBodySchema(raw), raw);
  const events = "events" in body ? body.events : [body];
  return c.json({ request_id: c.get("requestId"), ...(await ingestEvents(c.env, events)) });
});
