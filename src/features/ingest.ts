/**
 * POST /v1/events: realtime events into their aggregate objects.
 *
 * An event names its group, entity, event type, a unique event id and its event time; numeric
 * fields ride along. The whole request is validated before anything is written (an event no
 * active realtime feature of its group consumes is refused, as is a field a consuming feature
 * needs that is missing or not a number), then events are grouped by shard and each shard gets one
 * call. Re-sent events are counted once (deduplicated by entity and event id in the object); late
 * events are placed by their event time; ones older than the retention are reported `too_late`.
 */
import { z } from "zod";
import { ApiError, type FieldIssue } from "../http/errors";
import { entityIdSchema, featureNameSchema, groupDefinitions, groupSchema } from "./definitions";
import { aggregatesStub, MAX_SKEW_MS, shardOf, type FeatureEvent, type IngestResult } from "./realtime";
import { parseTime } from "./rows";

export const MAX_EVENTS = 1000;
/**
 * Largest event field value accepted. Window aggregates add values up (sum, mean): two values near
 * 1e308 overflowed the sum to Infinity, and the feature read as null for the whole window. At
 * 1e100 no realistic number of events can overflow a sum.
 */
const MAX_FIELD_MAGNITUDE = 1e100;

export const eventSchema = z
  .object({
    group: groupSchema,
    entity_id: entityIdSchema,
    event: featureNameSchema,
    event_id: z.string().min(1).max(128),
    /** Epoch milliseconds or ISO 8601 with a zone. */
    event_time: z.union([z.number(), z.string()]),
    fields: z
      .record(featureNameSchema, z.number().refine(Number.isFinite, "must be a finite number").refine((v) => Math.abs(v) <= MAX_FIELD_MAGNITUDE, "must be at most 1e100 in magnitude, so that window sums stay finite"))
      .refine((f) => Object.keys(f).length <= 32, "at most 32 fields")
      .default({}),
  })
  .strict();
const eventBatch = z.object({ events: z.array(eventSchema).min(1, "events must not be empty") }).strict();
/** One event, or `{events: [...]}`: the OpenAPI document's schema. */
export const eventsBody = z.union([eventSchema, eventBatch]);
/** The schema a body is checked against: chosen by its shape, so an error names the field at fault (a union reports "Invalid input" at the root). */
export function eventsBodySchema(raw: unknown): z.ZodType<z.infer<typeof eventsBody>> {
  return typeof raw === "object" && raw !== null && "events" in raw ? eventBatch : eventSchema;
}

export async function ingestEvents(env: Env, events: z.infer<typeof eventSchema>[], now = Date.now()): Promise<IngestResult> {
  const issues: FieldIssue[] = [];
  const parsed: { group: string; e: FeatureEvent }[] = [];
  const groups = new Map<string, Awaited<ReturnType<typeof groupDefinitions>>>();
  for (const g of new Set(events.map((e) => e.group))) groups.set(g, await groupDefinitions(env, g));
  let future = 0;
  events.forEach((e, i) => {
    const defs = groups.get(e.group)!;
    const consumers = [...defs.current.values()].filter((d) => d.kind === "realtime" && d.aggregate!.event === e.event);
    if (!consumers.length) {
      issues.push({ path: `events[${i}].event`, message: `no active realtime feature of group '${e.group}' consumes '${e.event}' events` });
      return;
    }
    for (const d of consumers) {
      const field = d.aggregate!.field;
      if (field !== undefined && e.fields[field] === undefined) issues.push({ path: `events[${i}].fields.${field}`, message: `required by '${d.name}'` });
    }
    const ts = parseTime(e.event_time);
    if (ts === undefined) {
      issues.push({ path: `events[${i}].event_time`, message: "expected epoch milliseconds or ISO 8601 with a zone" });
      return;
    }
    if (ts > now + MAX_SKEW_MS) {
      future++;
      return;
    }
    parsed.push({ group: e.group, e: { entity: e.entity_id, event: e.event, id: e.event_id, ts, fields: e.fields } });
  });
  if (issues.length) throw new ApiError("invalid_input", `${issues.length} invalid event(s); first: ${issues[0].path}: ${issues[0].message}`, issues.slice(0, 50));
  if (future) throw new ApiError("invalid_input", `${future} event(s) are more than ${MAX_SKEW_MS / 60000} minutes in the future`);

  const byShard = new Map<string, FeatureEvent[]>();
  for (const { group, e } of parsed) {
    const shard = shardOf(env, group, e.entity);
    byShard.set(shard, [...(byShard.get(shard) ?? []), e]);
  }
  const results = await Promise.all([...byShard].map(([shard, list]) => aggregatesStub(env, shard).ingest(list, now)));
  const total: IngestResult = { accepted: 0, duplicates: 0, too_late: 0 };
  for (const r of results) {
    total.accepted += r.accepted;
    total.duplicates += r.duplicates;
    total.too_late += r.too_late;
  }
  return total;
}
