/**
 * Feature definitions: the zod shapes of the admin API, and their store in D1 (versioned, retired,
 * never deleted).
 *
 * A feature belongs to a group (`customers`), whose entity id keys every value. Its kind says where
 * its value comes from: `offline` (bulk loads into KV), `online` (an expression over other
 * features of the group, evaluated per request) or `realtime` (an aggregate over events in a
 * window, kept by Durable Objects). Defining an existing name adds a version unless the definition
 * is identical to the current one (then the call is a no-op answering the current version), so
 * repeated deploy scripts are idempotent. Retiring marks versions retired. Retiring, or redefining
 * with a type that no longer fits, is refused while something reads the name (active online
 * features, model versions that are not archived; see dependents.ts).
 *
 * Serving reads the active definitions of a group through an isolate cache (REGISTRY_CACHE_SECONDS,
 * as model aliases); changes through this isolate's admin API invalidate it at once.
 */
import { and, desc, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { ApiError } from "../http/errors";
import { intVar } from "../http/limits";
import { checkAcyclic } from "./dag";
import { checkReaders } from "./dependents";
import { compiled, ExpressionError, references } from "./expression";
import { featureFunction, featureFunctions } from "./functions";
import { featureDefinitions } from "./tables";

export const groupSchema = z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, "group: lowercase letters, digits and '_', starting with a letter");
const RESERVED = new Set(["__proto__", "constructor", "prototype", "true", "false", "null"]);
export const featureNameSchema = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, "feature name: letters, digits and '_' (usable in expressions)")
  .refine((n) => !RESERVED.has(n), "reserved name");
export const entityIdSchema = z.string().min(1).max(256).regex(/^[^\u0000-\u001f]+$/, "entity id must not contain control characters");
export const dtypeSchema = z.enum(["numeric", "integer", "categorical", "boolean"]);
export type Dtype = z.infer<typeof dtypeSchema>;

export const WINDOWS: Record<string, number> = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800 };
export const MAX_WINDOW_SECONDS = 604800;

const fallbackSchema = z.discriminatedUnion("policy", [
  z.object({ policy: z.literal("default"), value: z.union([z.number().refine(Number.isFinite, "must be finite"), z.string(), z.boolean()]) }).strict(),
  z.object({ policy: z.literal("last_known") }).strict(),
  z.object({ policy: z.literal("error") }).strict(),
]);
export type Fallback = z.infer<typeof fallbackSchema>;

const aggregateSchema = z
  .object({
    event: featureNameSchema,
    /** Numeric field of the event to aggregate; omitted for `count`. */
    field: featureNameSchema.optional(),
    fn: z.enum(["count", "sum", "mean", "min", "max"]),
    window: z.enum(Object.keys(WINDOWS) as [string, ...string[]]),
  })
  .strict()
  .refine((a) => (a.fn === "count") === (a.field === undefined), { message: 'give "field" for sum/mean/min/max, and none for count' });
export type AggregateSpec = z.infer<typeof aggregateSchema>;

const common = {
  group: groupSchema,
  name: featureNameSchema,
  dtype: dtypeSchema,
  description: z.string().max(2000).default(""),
  ttl_seconds: z.number().int().min(0).max(86_400 * 7).default(60),
  fallback: fallbackSchema.default({ policy: "error" }),
  /** Stale-while-revalidate: for this long past its TTL a cached value is still served while a refresh runs in the background (offline features). */
  stale_seconds: z.number().int().min(0).max(86_400 * 7).default(0),
};

export const definitionBody = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("offline"), ...common }).strict(),
  z.object({ kind: z.literal("online"), ...common, expression: z.string().min(1).max(2000).optional(), function: z.string().min(1).max(100).optional() }).strict(),
  z.object({ kind: z.literal("realtime"), ...common, ttl_seconds: common.ttl_seconds.default(1), aggregate: aggregateSchema }).strict(),
]);
export type DefinitionBody = z.infer<typeof definitionBody>;

export type DefinitionRow = typeof featureDefinitions.$inferSelect;

/** An active definition as serving uses it. */
export interface Definition {
  group: string;
  name: string;
  version: number;
  kind: "offline" | "online" | "realtime";
  dtype: Dtype;
  ttlMs: number;
  /** How long past ttlMs a cached value may be served while it is refreshed (0: never). */
  staleMs: number;
  fallback: Fallback;
  expression?: string;
  /** Name of a TypeScript function in functions.ts computing this online feature. */
  fn?: string;
  deps: string[];
  aggregate?: AggregateSpec;
}

export function toDefinition(row: DefinitionRow): Definition {
  const spec = row.spec as { expression?: string; function?: string; aggregate?: AggregateSpec; stale_seconds?: number };
  return {
    group: row.group,
    name: row.name,
    version: row.version,
    kind: row.kind,
    dtype: row.dtype,
    ttlMs: row.ttlSeconds * 1000,
    staleMs: (spec.stale_seconds ?? 0) * 1000,
    fallback: row.fallback,
    expression: spec.expression,
    fn: spec.function,
    deps: depsOf(spec),
    aggregate: spec.aggregate,
  };
}

export function describeDefinition(row: DefinitionRow) {
  return {
    group: row.group,
    name: row.name,
    version: row.version,
    kind: row.kind,
    dtype: row.dtype,
    ...(row.spec as object),
    ttl_seconds: row.ttlSeconds,
    fallback: row.fallback,
    description: row.description,
    status: row.status,
    created_at: row.createdAt,
    created_by: row.createdBy,
    ...(row.retiredAt ? { retired_at: row.retiredAt } : {}),
  };
}

export const featuresDb = (d1: D1Database) => drizzle(d1);

/** Every version of every feature of a group, newest version first within a name. */
export async function groupRows(env: Env, group: string): Promise<DefinitionRow[]> {
  return featuresDb(env.DB).select().from(featureDefinitions).where(eq(featureDefinitions.group, group)).orderBy(featureDefinitions.name, desc(featureDefinitions.version));
}

/** The current (highest active) version of each name in a group. */
export function currentOf(rows: DefinitionRow[]): Map<string, DefinitionRow> {
  const out = new Map<string, DefinitionRow>();
  for (const r of rows) if (r.status === "active" && !out.has(r.name)) out.set(r.name, r);
  return out;
}

function checkDtype(body: DefinitionBody) {
  const f = body.fallback;
  if (f.policy === "default") {
    const v = f.value;
    const ok =
      (body.dtype === "numeric" && typeof v === "number") ||
      (body.dtype === "integer" && typeof v === "number" && Number.isInteger(v)) ||
      (body.dtype === "categorical" && typeof v === "string") ||
      (body.dtype === "boolean" && typeof v === "boolean");
    if (!ok) throw new ApiError("invalid_input", `fallback default ${JSON.stringify(v)} is not a ${body.dtype} value`, [{ path: "fallback.value", message: `expected a ${body.dtype} value` }]);
  }
  if (body.kind === "realtime" && body.dtype !== "numeric" && !(body.dtype === "integer" && body.aggregate.fn === "count")) {
    throw new ApiError("invalid_input", `realtime aggregates are numeric (integer for count), not ${body.dtype}`, [{ path: "dtype", message: "expected numeric" }]);
  }
  if (body.kind === "online" && body.dtype === "categorical") {
    // Strings are allowed in expressions (comparisons), and a categorical result is as valid.
  }
}

/** The features an online definition reads: its expression's references, or its function's declared reads. */
function depsOf(spec: { expression?: string; function?: string }): string[] {
  if (spec.function !== undefined) return featureFunction(spec.function)?.reads ?? [];
  return spec.expression ? [...references(compiled(spec.expression))] : [];
}

/** Defines a feature (new version, or the current one when identical). Validates expressions and rejects cycles first. */
export async function defineFeature(env: Env, body: DefinitionBody, actor: string): Promise<{ row: DefinitionRow; created: boolean }> {
  checkDtype(body);
  const rows = await groupRows(env, body.group);
  const current = currentOf(rows);
  const spec: Record<string, unknown> = {};
  if (body.kind === "online") {
    let deps: Set<string>;
    if ((body.expression === undefined) === (body.function === undefined)) {
      throw new ApiError("invalid_input", 'an online feature needs exactly one of "expression" or "function"', [{ path: "expression", message: 'give "expression" or "function"' }]);
    }
    const fn = body.function !== undefined ? featureFunction(body.function) : undefined;
    if (body.function !== undefined && !fn) {
      const known = Object.keys(featureFunctions);
      throw new ApiError("invalid_input", `unknown function '${body.function}' (registered in src/features/functions.ts: ${known.join(", ") || "none"})`, [{ path: "function", message: `unknown function '${body.function}'` }]);
    }
    try {
      deps = fn ? new Set(fn.reads) : references(compiled(body.expression!));
    } catch (error) {
      if (error instanceof ExpressionError) throw new ApiError("invalid_input", `malformed expression: ${error.message}`, [{ path: "expression", message: error.message }]);
      throw error;
    }
    for (const dep of deps) {
      if (!current.has(dep) && dep !== body.name) {
        const path = fn ? "function" : "expression";
        throw new ApiError("invalid_input", `${path} reads unknown feature '${dep}' of group '${body.group}'`, [{ path, message: `unknown feature '${dep}'` }]);
      }
    }
    const graph = new Map<string, string[]>();
    for (const [name, row] of current) graph.set(name, row.kind === "online" ? depsOf(row.spec as { expression?: string; function?: string }) : []);
    graph.set(body.name, [...deps]);
    const cycle = checkAcyclic(graph);
    if (cycle) throw new ApiError("invalid_input", `expression makes a dependency cycle: ${cycle.join(" -> ")}`, [{ path: "expression", message: `cycle ${cycle.join(" -> ")}` }]);
    if (fn) spec.function = body.function;
    else spec.expression = body.expression;
  }
  if (body.kind === "realtime") spec.aggregate = body.aggregate;
  if (body.stale_seconds > 0) spec.stale_seconds = body.stale_seconds;

  const existing = current.get(body.name);
  const latest = rows.find((r) => r.name === body.name);
  if (existing && existing.kind !== body.kind) {
    throw new ApiError("conflict", `feature '${body.group}.${body.name}' is ${existing.kind}; retire it before defining it as ${body.kind}`);
  }
  if (
    existing &&
    existing.dtype === body.dtype &&
    existing.ttlSeconds === body.ttl_seconds &&
    existing.description === body.description &&
    JSON.stringify(existing.fallback) === JSON.stringify(body.fallback) &&
    JSON.stringify(existing.spec) === JSON.stringify(spec)
  ) {
    return { row: existing, created: false };
  }
  const row: DefinitionRow = {
    group: body.group,
    name: body.name,
    version: (latest?.version ?? 0) + 1,
    kind: body.kind,
    dtype: body.dtype,
    spec,
    ttlSeconds: body.ttl_seconds,
    fallback: body.fallback,
    description: body.description,
    status: "active",
    createdAt: new Date().toISOString(),
    createdBy: actor,
    retiredAt: null,
  };
  if (existing && existing.dtype !== body.dtype) {
    await checkReaders(env, body.group, body.name, definitionsOf(rows), definitionsOf([row, ...rows]), `redefining it as ${body.dtype}`);
  }
  try {
    await featuresDb(env.DB).insert(featureDefinitions).values(row);
  } catch (error) {
    if (/UNIQUE|PRIMARY KEY/i.test(String((error as Error).message) + String((error as { cause?: Error }).cause?.message))) {
      throw new ApiError("conflict", `feature '${body.group}.${body.name}' was redefined concurrently; retry`);
    }
    throw error;
  }
  invalidateDefinitions(body.group);
  return { row, created: true };
}

/** Retires one version, or every version when `version` is undefined. */
export async function retireFeature(env: Env, group: string, name: string, version: number | undefined): Promise<DefinitionRow[]> {
  const rows = await groupRows(env, group);
  const mine = rows.filter((r) => r.name === name && (version === undefined || r.version === version));
  if (!mine.length) throw new ApiError("not_found", `feature '${group}.${name}'${version !== undefined ? ` version ${version}` : ""} not found`);
  const active = mine.filter((r) => r.status === "active");
  if (active.length) {
    const after = rows.map((r): DefinitionRow => (active.includes(r) ? { ...r, status: "retired" } : r));
    await checkReaders(env, group, name, definitionsOf(rows), definitionsOf(after), "retiring it");
  }
  const at = new Date().toISOString();
  const db = featuresDb(env.DB);
  if (active.length) {
    await db.batch(
      active.map((r) =>
        db
          .update(featureDefinitions)
          .set({ status: "retired", retiredAt: at })
          .where(and(eq(featureDefinitions.group, group), eq(featureDefinitions.name, name), eq(featureDefinitions.version, r.version))),
      ) as [never, ...never[]],
    );
  }
  invalidateDefinitions(group);
  return (await groupRows(env, group)).filter((r) => r.name === name);
}

// ---- isolate cache of active definitions ----

export interface GroupDefinitions {
  /** Current active version by name. */
  current: Map<string, Definition>;
  /** Every version (active or retired) by `name@version`. */
  all: Map<string, { def: Definition; status: string }>;
}

// Resolved values only: a pending D1 query belongs to the request that started it (workerd refuses
// cross-request I/O), so concurrent misses each query, and the last answer is kept.
const groupCache = new Map<string, { expires: number; value: GroupDefinitions }>();

export function invalidateDefinitions(group?: string) {
  if (group === undefined) groupCache.clear();
  else groupCache.delete(group);
}

/** A group's definitions as serving reads them, from its rows (newest version first within a name, as `groupRows`). */
export function definitionsOf(rows: DefinitionRow[]): GroupDefinitions {
  const all = new Map<string, { def: Definition; status: string }>();
  for (const r of rows) all.set(`${r.name}@${r.version}`, { def: toDefinition(r), status: r.status });
  const current = new Map<string, Definition>();
  for (const [name, r] of currentOf(rows)) current.set(name, all.get(`${name}@${r.version}`)!.def);
  return { current, all };
}

export async function groupDefinitions(env: Env, group: string): Promise<GroupDefinitions> {
  const hit = groupCache.get(group);
  if (hit && hit.expires > Date.now()) return hit.value;
  const value = definitionsOf(await groupRows(env, group));
  if (groupCache.size >= 1000) groupCache.delete(groupCache.keys().next().value!);
  groupCache.set(group, { expires: Date.now() + intVar(env.REGISTRY_CACHE_SECONDS, 5) * 1000, value });
  return value;
}
