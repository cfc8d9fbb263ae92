/**
 * What reads a feature, and whether a change to its definitions would break those readers.
 *
 * Two kinds of reader: active online features of the same group (their expression or function
 * reads the current version of the name) and model versions whose manifest takes the feature from
 * the store (`store`: the current version, or a pinned one). Model versions count unless archived:
 * archiving is already refused while an alias or an open deployment uses a version, so "not
 * archived" covers everything that serves or can be put back to serving by an alias move, and
 * archiving is the operator's way of saying a version is done with.
 *
 * Retiring and redefining compute the group as it would be after the change and refuse it (409,
 * naming the readers) when a reader would find no active definition, or one whose type does not
 * fit it: for a model version, the same test registration applies (`storeFeatureIssue`); for an
 * online feature, the value must stay the same kind of value its expression computes with
 * (numeric and integer are both numbers; categorical strings; booleans). Only what the change
 * breaks counts: a reader already broken before it does not block an unrelated change.
 *
 * The check reads, then the caller writes: a model registered in between is not seen (the same
 * window registration has against a concurrent retire).
 */
import { and, eq, ne, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { ApiError, type FieldIssue } from "../http/errors";
import type { FeatureSpec } from "../registry/manifest";
import { modelVersions } from "../registry/tables";
import type { Dtype, GroupDefinitions } from "./definitions";

/** Manifest type -> store dtypes that fit it (numeric takes integers too). */
const COMPATIBLE: Record<FeatureSpec["type"], Dtype[]> = {
  numeric: ["numeric", "integer"],
  integer: ["integer"],
  categorical: ["categorical"],
  boolean: ["boolean"],
};

/** The kind of value an online feature's expression or function gets for each dtype. */
const VALUE_KIND: Record<Dtype, string> = { numeric: "number", integer: "number", categorical: "string", boolean: "boolean" };

type StoreFeature = FeatureSpec & { store: NonNullable<FeatureSpec["store"]> };

/** Why a manifest feature cannot take its value from the store as `defs` stand (undefined: it can). Registration's check. */
export function storeFeatureIssue(f: StoreFeature, defs: GroupDefinitions): string | undefined {
  const name = f.store.name ?? f.name;
  const pinned = f.store.version;
  const entry = pinned !== undefined ? defs.all.get(`${name}@${pinned}`) : undefined;
  const def = pinned !== undefined ? (entry?.status === "active" ? entry.def : undefined) : defs.current.get(name);
  const label = `'${f.store.group}.${name}'${pinned !== undefined ? ` version ${pinned}` : ""}`;
  if (!def) return `feature-store feature ${label} does not exist or is retired`;
  if (!COMPATIBLE[f.type].includes(def.dtype)) return `feature-store feature ${label} is ${def.dtype}; '${f.name}' is ${f.type}`;
  return undefined;
}

/** Model versions that are not archived and take `group.name` from the store, with the features that do. */
async function modelReaders(d1: D1Database, group: string, name: string): Promise<{ model: string; version: string; features: StoreFeature[] }[]> {
  const reads = sql`EXISTS (SELECT 1 FROM json_each(${modelVersions.featureSchema}, '$.features') AS f
    WHERE json_extract(f.value, '$.store.group') = ${group} AND coalesce(json_extract(f.value, '$.store.name'), json_extract(f.value, '$.name')) = ${name})`;
  const rows = await drizzle(d1)
    .select({ model: modelVersions.modelName, version: modelVersions.version, schema: modelVersions.featureSchema })
    .from(modelVersions)
    .where(and(ne(modelVersions.status, "archived"), reads))
    .orderBy(modelVersions.modelName, modelVersions.major, modelVersions.minor, modelVersions.patch);
  return rows.map((r) => ({
    model: r.model,
    version: r.version,
    features: ((r.schema as { features: FeatureSpec[] }).features ?? []).filter((f): f is StoreFeature => f.store?.group === group && (f.store.name ?? f.name) === name),
  }));
}

/**
 * Refuses (409) a change to `group.name` that would break what reads it. `before` and `after` are
 * the group's definitions now and as the change would leave them; `change` describes it for the
 * message ("retiring it", "redefining it as categorical").
 */
export async function checkReaders(env: Env, group: string, name: string, before: GroupDefinitions, after: GroupDefinitions, change: string): Promise<void> {
  const label = `'${group}.${name}'`;
  const issues: FieldIssue[] = [];
  const online: string[] = [];
  const was = before.current.get(name);
  const will = after.current.get(name);
  for (const reader of after.current.values()) {
    if (reader.kind !== "online" || reader.name === name || !reader.deps.includes(name)) continue;
    if (!will) issues.push({ path: `online_features.${reader.name}`, message: `reads ${label}, which would have no active version` });
    else if (was && VALUE_KIND[was.dtype] !== VALUE_KIND[will.dtype]) {
      issues.push({ path: `online_features.${reader.name}`, message: `reads ${label} as a ${VALUE_KIND[was.dtype]} (${was.dtype}); it would become ${will.dtype}` });
    } else continue;
    online.push(reader.name);
  }
  const models: string[] = [];
  for (const reader of await modelReaders(env.DB, group, name)) {
    let broken = false;
    for (const f of reader.features) {
      const issue = storeFeatureIssue(f, after);
      if (!issue || storeFeatureIssue(f, before) !== undefined) continue;
      issues.push({ path: `model_versions.${reader.model}@${reader.version}.${f.name}`, message: `after this change, ${issue}` });
      broken = true;
    }
    if (broken) models.push(`${reader.model} ${reader.version}`);
  }
  if (!issues.length) return;
  const readers = [...(online.length ? [`active online feature(s) ${online.join(", ")}`] : []), ...(models.length ? [`model version(s) ${models.join(", ")}`] : [])];
  const remedy = [...(online.length ? ["retire or redefine those features"] : []), ...(models.length ? ["archive those versions (or register versions that fit)"] : [])];
  throw new ApiError("conflict", `${label} is read by ${readers.join(" and ")}, which ${change} would break; ${remedy.join(" and ")} first`, issues);
}
