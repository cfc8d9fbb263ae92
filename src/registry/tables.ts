/**
 * Registry tables (D1 through drizzle). `npm run db:generate` turns changes here into a migration
 * in migrations/; never edit applied migrations by hand.
 *
 * - models: one row per model name.
 * - model_versions: immutable once registered except `status`; artifact bytes live in R2 under a
 *   content-addressed key (sha256), so identical artifacts are stored once.
 * - aliases: movable names (`champion`, `challenger`, ...) pointing at a version.
 * - audit_log: append-only record of every change, who made it and why.
 */
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

export const models = sqliteTable("models", {
  name: text("name").primaryKey(),
  description: text("description").notNull().default(""),
  createdAt: text("created_at").notNull().default(sql`(strftime('%Y-%m-%dT%H:%M:%fZ','now'))`),
  createdBy: text("created_by").notNull(),
});

export const modelVersions = sqliteTable(
  "model_versions",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    modelName: text("model_name")
      .notNull()
      .references(() => models.name),
    version: text("version").notNull(),
    major: integer("major").notNull(),
    minor: integer("minor").notNull(),
    patch: integer("patch").notNull(),
    task: text("task").notNull(),
    description: text("description").notNull().default(""),
    environment: text("environment").notNull(),
    status: text("status").notNull(),
    artifactKey: text("artifact_key").notNull(),
    sha256: text("sha256").notNull(),
    sizeBytes: integer("size_bytes").notNull(),
    irVersion: integer("ir_version").notNull(),
    opsets: text("opsets", { mode: "json" }).notNull().$type<Record<string, number>>(),
    metrics: text("metrics", { mode: "json" }).notNull().$type<Record<string, number>>(),
    featureSchema: text("feature_schema", { mode: "json" }).notNull().$type<unknown>(),
    reference: text("reference", { mode: "json" }).$type<unknown>(),
    createdAt: text("created_at").notNull(),
    createdBy: text("created_by").notNull(),
  },
  (t) => [uniqueIndex("model_versions_name_version").on(t.modelName, t.version), index("model_versions_sha").on(t.sha256)],
);

export const aliases = sqliteTable(
  "aliases",
  {
    modelName: text("model_name")
      .notNull()
      .references(() => models.name),
    alias: text("alias").notNull(),
    version: text("version").notNull(),
    updatedAt: text("updated_at").notNull(),
    updatedBy: text("updated_by").notNull(),
  },
  (t) => [primaryKey({ columns: [t.modelName, t.alias] })],
);

export const auditLog = sqliteTable(
  "audit_log",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    at: text("at").notNull(),
    actor: text("actor").notNull(),
    action: text("action").notNull(),
    modelName: text("model_name").notNull(),
    version: text("version"),
    reason: text("reason"),
    details: text("details", { mode: "json" }).$type<Record<string, unknown>>(),
  },
  (t) => [index("audit_log_model").on(t.modelName, t.id)],
);
