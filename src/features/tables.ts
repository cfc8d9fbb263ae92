/**
 * Feature-store tables (D1 through drizzle); the SQL lives in migrations/0006_features.sql.
 *
 * - feature_definitions: one row per (group, name, version). A definition is immutable once
 *   written except `status` (active -> retired); redefining a feature adds a version, so a model
 *   that pinned version 2 keeps the meaning it was trained with.
 * - feature_loads: one row per offline bulk load, its progress (`next_offset` into the staged
 *   file, row counters), a bounded sample of rejected rows, and its outcome. A group's serving
 *   pointer (KV) moves to a load only when that load has succeeded.
 */
import { integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";

export const featureDefinitions = sqliteTable(
  "feature_definitions",
  {
    group: text("group_name").notNull(),
    name: text("name").notNull(),
    version: integer("version").notNull(),
    kind: text("kind").notNull().$type<"offline" | "online" | "realtime">(),
    dtype: text("dtype").notNull().$type<"numeric" | "integer" | "categorical" | "boolean">(),
    spec: text("spec", { mode: "json" }).notNull().$type<Record<string, unknown>>(),
    ttlSeconds: integer("ttl_seconds").notNull(),
    fallback: text("fallback", { mode: "json" }).notNull().$type<{ policy: "default"; value: number | string | boolean } | { policy: "last_known" } | { policy: "error" }>(),
    description: text("description").notNull().default(""),
    status: text("status").notNull().$type<"active" | "retired">(),
    createdAt: text("created_at").notNull(),
    createdBy: text("created_by").notNull(),
    retiredAt: text("retired_at"),
  },
  (t) => [primaryKey({ columns: [t.group, t.name, t.version] })],
);

export const featureLoads = sqliteTable("feature_loads", {
  id: text("id").primaryKey(),
  group: text("group_name").notNull(),
  format: text("format").notNull().$type<"csv" | "ndjson">(),
  sourceKey: text("source_key").notNull(),
  idempotencyKey: text("idempotency_key").notNull(),
  entityColumn: text("entity_column").notNull(),
  timeColumn: text("time_column"),
  columns: text("columns", { mode: "json" }).$type<string[]>(),
  status: text("status").notNull().$type<"queued" | "running" | "succeeded" | "failed">(),
  totalBytes: integer("total_bytes").notNull(),
  nextOffset: integer("next_offset").notNull(),
  rowsSeen: integer("rows_seen").notNull().default(0),
  rowsLoaded: integer("rows_loaded").notNull().default(0),
  rowsRejected: integer("rows_rejected").notNull().default(0),
  maxRejected: integer("max_rejected").notNull(),
  rejected: text("rejected", { mode: "json" }).notNull().$type<{ row: number; message: string }[]>(),
  /** A consumer holds a chunk until this time (ms); a duplicate delivery waits instead of racing it. */
  leaseUntil: integer("lease_until").notNull().default(0),
  error: text("error"),
  createdAt: text("created_at").notNull(),
  createdBy: text("created_by").notNull(),
  finishedAt: text("finished_at"),
});
