/**
 * Registry data access: functions taking the D1 database first, as in the workers-sdk examples.
 * Every change writes its audit entry in the same D1 batch (one transaction), so the audit log and
 * the registry never disagree.
 */
import { and, desc, eq, inArray, lt } from "drizzle-orm";
import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";
import { ApiError, notFound } from "../http/errors";
import { featureSchemaSchema, type FeatureSchema, type Manifest, type Reference } from "./manifest";
import { deployments } from "../deployments/tables";
import { aliases, auditLog, models, modelVersions } from "./tables";

export type Db = DrizzleD1Database & { $client: D1Database };
export function registryDb(d1: D1Database): Db {
  return drizzle(d1);
}

export type VersionRow = typeof modelVersions.$inferSelect;
export type VersionStatus = "registered" | "archived";

/** A version as served: its row with the feature schema parsed. */
export interface ModelVersion extends Omit<VersionRow, "featureSchema" | "reference"> {
  featureSchema: FeatureSchema;
  reference?: Reference | null;
}

export function toModelVersion(row: VersionRow): ModelVersion {
  // Stored schemas were validated at registration; parsing again restores defaults and types.
  return { ...row, featureSchema: featureSchemaSchema.parse(row.featureSchema), reference: row.reference as Reference | null };
}

/** Public view of a version (no reference samples, which are large). */
export function describeVersion(v: VersionRow | ModelVersion) {
  return {
    name: v.modelName,
    version: v.version,
    task: v.task,
    description: v.description,
    environment: v.environment,
    status: v.status,
    artifact: { key: v.artifactKey, sha256: v.sha256, size_bytes: v.sizeBytes, ir_version: v.irVersion, opsets: v.opsets },
    metrics: v.metrics,
    feature_schema: v.featureSchema,
    created_at: v.createdAt,
    created_by: v.createdBy,
  };
}

export function artifactKey(sha256: string): string {
  return `artifacts/sha256/${sha256}.onnx`;
}

export function parseSemver(version: string): [number, number, number] {
  const [major, minor, patch] = version.split(".").map(Number);
  return [major, minor, patch];
}

function now(): string {
  return new Date().toISOString();
}

export async function listModels(db: Db) {
  return db.select().from(models).orderBy(models.name).all();
}

export async function getModel(db: Db, name: string) {
  const model = await db.select().from(models).where(eq(models.name, name)).get();
  if (!model) throw notFound(`model '${name}'`);
  return model;
}

export async function listVersions(db: Db, name: string): Promise<VersionRow[]> {
  return db
    .select()
    .from(modelVersions)
    .where(eq(modelVersions.modelName, name))
    .orderBy(desc(modelVersions.major), desc(modelVersions.minor), desc(modelVersions.patch))
    .all();
}

export async function findVersion(db: Db, name: string, version: string): Promise<VersionRow | undefined> {
  return db
    .select()
    .from(modelVersions)
    .where(and(eq(modelVersions.modelName, name), eq(modelVersions.version, version)))
    .get();
}

export async function getVersion(db: Db, name: string, version: string): Promise<VersionRow> {
  const row = await findVersion(db, name, version);
  if (!row) throw notFound(`version ${version} of model '${name}'`);
  return row;
}

export async function listAliases(db: Db, name: string) {
  return db.select().from(aliases).where(eq(aliases.modelName, name)).orderBy(aliases.alias).all();
}

export async function findAlias(db: Db, name: string, alias: string) {
  return db
    .select()
    .from(aliases)
    .where(and(eq(aliases.modelName, name), eq(aliases.alias, alias)))
    .get();
}

export interface NewVersion {
  manifest: Manifest;
  sha256: string;
  sizeBytes: number;
  irVersion: number;
  opsets: Record<string, number>;
  actor: string;
  aliases: string[];
}

/** Inserts model (if new), version, aliases and audit entries in one D1 transaction. */
export async function insertVersion(db: Db, v: NewVersion): Promise<VersionRow> {
  const m = v.manifest;
  const at = now();
  const [major, minor, patch] = parseSemver(m.version);
  const row = {
    modelName: m.name,
    version: m.version,
    major,
    minor,
    patch,
    task: m.task,
    description: m.description,
    environment: m.environment,
    status: "registered" as VersionStatus,
    artifactKey: artifactKey(v.sha256),
    sha256: v.sha256,
    sizeBytes: v.sizeBytes,
    irVersion: v.irVersion,
    opsets: v.opsets,
    metrics: m.metrics,
    featureSchema: m.featureSchema,
    reference: m.reference ?? null,
    createdAt: at,
    createdBy: v.actor,
  };
  const aliasWrites = v.aliases.map((alias) =>
    db
      .insert(aliases)
      .values({ modelName: m.name, alias, version: m.version, updatedAt: at, updatedBy: v.actor })
      .onConflictDoUpdate({ target: [aliases.modelName, aliases.alias], set: { version: m.version, updatedAt: at, updatedBy: v.actor } }),
  );
  const aliasAudits = v.aliases.map((alias) =>
    db.insert(auditLog).values({ at, actor: v.actor, action: "alias.set", modelName: m.name, version: m.version, details: { alias } }),
  );
  const [, inserted] = await db.batch([
    db.insert(models).values({ name: m.name, description: m.description, createdAt: at, createdBy: v.actor }).onConflictDoNothing(),
    db.insert(modelVersions).values(row).returning(),
    db.insert(auditLog).values({
      at,
      actor: v.actor,
      action: "version.register",
      modelName: m.name,
      version: m.version,
      details: { sha256: v.sha256, size_bytes: v.sizeBytes, environment: m.environment, metrics: m.metrics },
    }),
    ...aliasWrites,
    ...aliasAudits,
  ]);
  return (inserted as VersionRow[])[0];
}

export interface AliasMove {
  name: string;
  alias: string;
  version: string;
  actor: string;
  at: string;
  reason?: string;
  /** Extra audit details (e.g. the deployment that moved the alias). */
  details?: Record<string, string>;
}

/**
 * The statements of an alias move, for a D1 batch (one transaction): a guard that fails the whole
 * batch unless the target version is still registered when it runs (a version archived meanwhile
 * takes no alias, and nothing else of the batch is written; see `isArchivedDuringMove`), the audit
 * entry, whose `previous` is read by SQL inside the transaction (so it is the version this move
 * actually replaced, whatever moves ran concurrently), then the alias upsert.
 */
export function aliasMoveStatements(d1: D1Database, m: AliasMove): D1PreparedStatement[] {
  const registered = "EXISTS (SELECT 1 FROM model_versions WHERE model_name = ?1 AND version = ?3 AND status = 'registered')";
  const extra = Object.keys(m.details ?? {}).map((_, i) => `, ?${8 + 2 * i}, ?${9 + 2 * i}`).join("");
  const params = [m.name, m.alias, m.version, m.at, m.actor, m.reason ?? null, "alias.set", ...Object.entries(m.details ?? {}).flat()];
  return [
    // Inserts a NULL version (a NOT NULL violation that aborts the batch) exactly when the target is not registered.
    d1.prepare(`INSERT INTO aliases (model_name, alias, version, updated_at, updated_by) SELECT ?1, ?2, NULL, ?4, ?5 WHERE NOT ${registered}`).bind(m.name, m.alias, m.version, m.at, m.actor),
    d1
      .prepare(
        `INSERT INTO audit_log (at, actor, action, model_name, version, reason, details)
         VALUES (?4, ?5, ?7, ?1, ?3, ?6, json_object('alias', ?2, 'previous', (SELECT version FROM aliases WHERE model_name = ?1 AND alias = ?2)${extra}))
         RETURNING json_extract(details, '$.previous') AS previous`,
      )
      .bind(...params),
    d1
      .prepare(
        `INSERT INTO aliases (model_name, alias, version, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (model_name, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
      )
      .bind(m.name, m.alias, m.version, m.at, m.actor),
  ];
}

/** A drizzle query as a D1 statement, to share a D1 batch with raw statements such as `aliasMoveStatements`. */
export function asD1Statement(d1: D1Database, query: { toSQL(): { sql: string; params: unknown[] } }): D1PreparedStatement {
  const { sql: text, params } = query.toSQL();
  return d1.prepare(text).bind(...params);
}

/** Whether a batch failed on the guard of `aliasMoveStatements` (the target version was archived or deleted meanwhile). */
export function isArchivedDuringMove(error: unknown): boolean {
  const e = error as { message?: string; cause?: { message?: string } };
  return /NOT NULL constraint failed: aliases\.version/.test(`${e?.message} ${e?.cause?.message}`);
}

/** The `previous` version the audit statement of `aliasMoveStatements` recorded, from its batch result. */
export function previousOf(auditResult: unknown): string | null {
  const rows = (auditResult as D1Result<{ previous: string | null }>).results ?? [];
  return rows[0]?.previous ?? null;
}

/**
 * Points `alias` at `version`. Archived versions cannot take an alias. Returns the version the
 * alias pointed at before this move (read in the same transaction as the move).
 */
export async function setAlias(db: Db, name: string, alias: string, version: string, actor: string, reason?: string) {
  const target = await getVersion(db, name, version);
  const archived = () => new ApiError("conflict", `version ${version} of '${name}' is archived and cannot take alias '${alias}'`);
  if (target.status === "archived") throw archived();
  try {
    const [, audit] = await db.$client.batch(aliasMoveStatements(db.$client, { name, alias, version, actor, at: now(), reason }));
    return { alias, version, previous: previousOf(audit) };
  } catch (error) {
    if (isArchivedDuringMove(error)) throw archived();
    throw error;
  }
}

export async function deleteAlias(db: Db, name: string, alias: string, actor: string, reason?: string) {
  const existing = await findAlias(db, name, alias);
  if (!existing) throw notFound(`alias '${alias}' of model '${name}'`);
  await db.batch([
    db.delete(aliases).where(and(eq(aliases.modelName, name), eq(aliases.alias, alias))),
    db.insert(auditLog).values({ at: now(), actor, action: "alias.delete", modelName: name, version: existing.version, reason, details: { alias } }),
  ]);
}

/** Deployment states that hold traffic on their versions: deployments/model.ts OPEN_STATES, repeated so the registry takes only the table from the layer above it. */
const OPEN_DEPLOYMENT_STATES = ["validating", "active", "promoting", "paused"] as const;

/**
 * What makes a version serve traffic: aliases, and deployments that are not finished (validating,
 * active, promoting, paused), so archiving stays refused while any traffic can reach the version.
 */
export async function servingReferences(db: Db, name: string, version: string): Promise<string[]> {
  const refs = await db
    .select({ alias: aliases.alias })
    .from(aliases)
    .where(and(eq(aliases.modelName, name), eq(aliases.version, version)))
    .all();
  const open = await db
    .select({ id: deployments.id, state: deployments.state, variants: deployments.variants, config: deployments.config })
    .from(deployments)
    .where(and(eq(deployments.modelName, name), inArray(deployments.state, [...OPEN_DEPLOYMENT_STATES])))
    .all();
  const inDeployments = open
    .filter((d) => (d.variants as { version: string }[]).some((v) => v.version === version) || (d.config as { candidate?: string }).candidate === version)
    .map((d) => `deployment ${d.id} (${d.state})`);
  return [...refs.map((r) => `alias '${r.alias}'`), ...inDeployments];
}

/**
 * The archive's write: the status update, only while no alias and no open deployment refers to the
 * version, and its audit entry, which writes a NULL `at` (a NOT NULL violation that aborts the
 * batch) unless the update changed the row. Checked by SQL inside the transaction, so a move or a
 * deployment that commits first makes the archive write nothing.
 */
export function archiveStatements(d1: D1Database, name: string, version: string, at: string, actor: string, reason?: string): D1PreparedStatement[] {
  const unreferenced = `NOT EXISTS (SELECT 1 FROM aliases WHERE model_name = ?1 AND version = ?2)
    AND NOT EXISTS (SELECT 1 FROM deployments d WHERE d.model_name = ?1 AND d.state IN (${OPEN_DEPLOYMENT_STATES.map((st) => `'${st}'`).join(", ")})
      AND (json_extract(d.config, '$.candidate') = ?2 OR EXISTS (SELECT 1 FROM json_each(d.variants) v WHERE json_extract(v.value, '$.version') = ?2)))`;
  return [
    d1.prepare(`UPDATE model_versions SET status = 'archived' WHERE model_name = ?1 AND version = ?2 AND status = 'registered' AND ${unreferenced}`).bind(name, version),
    d1
      .prepare("INSERT INTO audit_log (at, actor, action, model_name, version, reason) VALUES (CASE WHEN changes() = 1 THEN ?1 END, ?2, 'version.archive', ?3, ?4, ?5)")
      .bind(at, actor, name, version, reason ?? null),
  ];
}

export async function archiveVersion(db: Db, name: string, version: string, actor: string, reason?: string) {
  const row = await getVersion(db, name, version);
  if (row.status === "archived") throw new ApiError("conflict", `version ${version} of '${name}' is already archived`);
  const serving = async () => {
    const refs = await servingReferences(db, name, version);
    if (refs.length) throw new ApiError("conflict", `version ${version} of '${name}' serves traffic (${refs.join(", ")}); move those first`);
  };
  await serving();
  // The same rule again inside the write (archiveStatements): an alias moved to the version, or a
  // deployment opened on it, between the check above and this batch would otherwise be left on an
  // archived version.
  const d1 = db.$client;
  try {
    await d1.batch(archiveStatements(d1, name, version, now(), actor, reason));
  } catch (error) {
    const e = error as { message?: string; cause?: { message?: string } };
    if (!/NOT NULL constraint failed: audit_log\.at/.test(`${e?.message} ${e?.cause?.message}`)) throw error;
    await serving(); // names what took it meanwhile
    throw new ApiError("conflict", `version ${version} of '${name}' was archived or put to use meanwhile by another request`);
  }
  return { ...row, status: "archived" };
}

/**
 * Brings an archived version back to `registered`, the only status an archived version can have had
 * (archiving is refused while an alias or an open deployment uses it, so no alias or traffic comes
 * back by itself). `alias`, when given, is pointed at the restored version in the same transaction
 * (with its own `alias.set` audit entry), the way to put it back to serving, e.g. as champion.
 * Refused with 409 when the version is not archived, or when its artifact is no longer in R2 or is
 * not the registered bytes (size, and the sha256 R2 stored with it; the orphan sweep keeps artifacts
 * that any version row, archived or not, references, but an object deleted by hand or by a bucket
 * lifecycle rule cannot be served again). Everything is one D1 batch: the restore's audit insert
 * writes a NULL `at` (a NOT NULL violation that aborts the batch) unless the update just before it
 * changed the archived row, so of two concurrent restores one commits and the other gets 409 with
 * nothing written.
 */
export async function restoreVersion(db: Db, artifacts: R2Bucket, name: string, version: string, actor: string, reason?: string, alias?: string) {
  const row = await getVersion(db, name, version);
  if (row.status !== "archived") throw new ApiError("conflict", `version ${version} of '${name}' is not archived (status '${row.status}'); nothing to restore`);
  const object = await artifacts.head(row.artifactKey);
  const stored = object?.checksums.sha256 ? [...new Uint8Array(object.checksums.sha256)].map((b) => b.toString(16).padStart(2, "0")).join("") : undefined;
  if (!object || object.size !== row.sizeBytes || (stored !== undefined && stored !== row.sha256)) {
    const what = !object
      ? "is no longer in the artifact bucket"
      : object.size !== row.sizeBytes
        ? `holds ${object.size} bytes, not the ${row.sizeBytes} registered`
        : `holds other bytes (sha256 ${stored}, registered ${row.sha256})`;
    throw new ApiError("conflict", `version ${version} of '${name}' cannot be restored: its artifact ${row.artifactKey} ${what}; register the ONNX file again as a new version`);
  }
  const d1 = db.$client;
  const at = now();
  const statements = [
    d1.prepare("UPDATE model_versions SET status = 'registered' WHERE model_name = ?1 AND version = ?2 AND status = 'archived'").bind(name, version),
    d1
      .prepare("INSERT INTO audit_log (at, actor, action, model_name, version, reason, details) VALUES (CASE WHEN changes() = 1 THEN ?1 END, ?2, 'version.restore', ?3, ?4, ?5, json_object('from', 'archived', 'to', 'registered'))")
      .bind(at, actor, name, version, reason ?? null),
    ...(alias ? aliasMoveStatements(d1, { name, alias, version, actor, at, reason, details: { via: "restore" } }) : []),
  ];
  let results: D1Result[];
  try {
    results = await d1.batch(statements);
  } catch (error) {
    const e = error as { message?: string; cause?: { message?: string } };
    if (/NOT NULL constraint failed: audit_log\.at/.test(`${e?.message} ${e?.cause?.message}`)) throw new ApiError("conflict", `version ${version} of '${name}' was restored meanwhile by another request`);
    throw error;
  }
  return { row: { ...row, status: "registered" }, alias: alias ? { alias, previous: previousOf(results[3]) } : undefined };
}

/** Audit entries newest first; `before` is the id cursor from the previous page (LIMIT n+1 paging). */
export async function auditTrail(db: Db, name: string, limit: number, before?: number) {
  const where = before ? and(eq(auditLog.modelName, name), lt(auditLog.id, before)) : eq(auditLog.modelName, name);
  const rows = await db.select().from(auditLog).where(where).orderBy(desc(auditLog.id)).limit(limit + 1).all();
  const page = rows.slice(0, limit);
  return { entries: page, next_before: rows.length > limit ? page[page.length - 1].id : null };
}

/** Is any other version row still pointing at this artifact? (Used before deleting an R2 object.) */
export async function artifactInUse(db: Db, sha256: string): Promise<boolean> {
  const row = await db.select({ id: modelVersions.id }).from(modelVersions).where(eq(modelVersions.sha256, sha256)).limit(1).get();
  return Boolean(row);
}
