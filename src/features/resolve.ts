/**
 * get_features: the values of named features for one or many entities of a group, and where each
 * came from.
 *
 * Per request: the requested names (optionally pinned, `name@3`) and every feature their
 * expressions read are put in dependency order (dag.ts). Stored features come from the cheapest
 * tier that is fresh for them: the isolate cache (per-feature TTL), else one KV read per entity for
 * all offline features of the group, and one Durable Object call per shard for all realtime
 * features of the entities on it; these reads run in parallel under one per-request deadline
 * (`timeout_ms`, default FEATURE_TIMEOUT_MS). Online features are then computed in order.
 *
 * A feature whose source is missing, failed, timed out, or whose value is null or of the wrong type
 * takes its fallback: `default` (its declared value), `last_known` (the last value this isolate
 * served for that entity and feature) or `error` (no value; the caller is told which feature and
 * why). Each result says which tier served each feature (cache, kv, durable_object, computed,
 * default, last_known; prediction by entity adds `override` for values the caller sent) and which
 * fell back. A fallback never invents a zero.
 */
import { ApiError } from "../http/errors";
import { intVar } from "../http/limits";
import { fresh, LruCache } from "./cache";
import { plan } from "./dag";
import { groupDefinitions, type Definition } from "./definitions";
import { compiled, evaluate, type Value } from "./expression";
import { featureFunction } from "./functions";
import { featureMetrics, type Tier } from "./metrics";
import { readOffline, readOfflineTiered, type OfflineValues } from "./offline";
import { aggregatesStub, shardOf } from "./realtime";

export interface EntityFeatures {
  entity_id: string;
  values: Record<string, Value>;
  sources: Record<string, Tier>;
  fell_back: string[];
  errors: { feature: string; message: string }[];
}

export interface LookupOptions {
  asOf?: number;
  timeoutMs?: number;
  /** Runs a background refresh past the response (ctx.waitUntil); without it a stale value is not served. */
  waitUntil?: (task: Promise<unknown>) => void;
}

/** Cache keys with a background refresh under way in this isolate (one refresh per key at a time). */
const refreshing = new Set<string>();

let offlineCache: LruCache<OfflineValues | null> | undefined;
let realtimeCache: LruCache<number | null> | undefined;
let lastKnown: LruCache<Value> | undefined;

function caches(env: Env) {
  const n = intVar(env.FEATURE_CACHE_ENTRIES, 50_000);
  offlineCache ??= new LruCache(n);
  realtimeCache ??= new LruCache(n);
  lastKnown ??= new LruCache(n);
  return { offlineCache, realtimeCache, lastKnown };
}

/** Drops this isolate's cached values (benchmarks measure cold reads; tests isolate cases). */
export function clearFeatureCaches() {
  offlineCache?.clear();
  realtimeCache?.clear();
  lastKnown?.clear();
}

export function cacheStats() {
  return { offline_entries: offlineCache?.size ?? 0, realtime_entries: realtimeCache?.size ?? 0, last_known_entries: lastKnown?.size ?? 0 };
}

const TIMED_OUT = Symbol("timed out");
const FAILED = Symbol("failed");
type Outcome<T> = T | typeof TIMED_OUT | typeof FAILED;

/** Resolves requested names to definitions; unknown or retired names are a 404 naming them. */
async function resolveNames(env: Env, group: string, names: string[]) {
  const defs = await groupDefinitions(env, group);
  if (!defs.all.size) throw new ApiError("not_found", `feature group '${group}' not found`);
  const requested = new Map<string, Definition>();
  const unknown: string[] = [];
  for (const raw of names) {
    const at = raw.indexOf("@");
    if (at < 0) {
      const def = defs.current.get(raw);
      if (def) requested.set(raw, def);
      else unknown.push(raw);
      continue;
    }
    const entry = defs.all.get(raw);
    if (!entry || entry.status !== "active") unknown.push(raw);
    else requested.set(raw, entry.def);
  }
  if (unknown.length) {
    throw new ApiError("not_found", `unknown or retired feature(s) in group '${group}': ${unknown.join(", ")}`, unknown.map((n) => ({ path: `features.${n}`, message: "unknown or retired" })));
  }
  // Dependencies of online features resolve to the current version of the name they read.
  const byKey = new Map<string, Definition>(requested);
  const order = plan(requested.keys(), (key) => {
    const def = byKey.get(key) ?? defs.current.get(key);
    if (!def) return [];
    for (const dep of def.deps) if (!byKey.has(dep) && defs.current.has(dep)) byKey.set(dep, defs.current.get(dep)!);
    return def.deps;
  });
  return { requested, byKey, order };
}

export async function getFeatures(env: Env, group: string, entities: string[], names: string[], opts: LookupOptions = {}): Promise<EntityFeatures[]> {
  const started = performance.now();
  const { requested, byKey, order } = await resolveNames(env, group, names);
  const { offlineCache, realtimeCache, lastKnown } = caches(env);
  const now = Date.now();
  const pointInTime = opts.asOf !== undefined;

  const defs = order.map((k) => [k, byKey.get(k)!] as const);
  const offlineDefs = defs.filter(([k, d]) => d.kind === "offline");
  const realtimeDefs = defs.filter(([k, d]) => d.kind === "realtime");
  const offlineTtl = Math.min(...offlineDefs.map(([, d]) => d.ttlMs));
  // Stale-while-revalidate applies to the group's cached record only if every offline feature read allows it.
  const offlineStale = opts.waitUntil ? Math.min(...offlineDefs.map(([, d]) => d.staleMs)) : 0;

  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeoutMs = opts.timeoutMs ?? intVar(env.FEATURE_TIMEOUT_MS, 200);
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => (timer = setTimeout(() => resolve(TIMED_OUT), timeoutMs)));
  const bounded = <T>(p: Promise<T>): Promise<Outcome<T>> =>
    Promise.race<Outcome<T>>([
      p.catch((error): typeof FAILED => {
        console.error(JSON.stringify({ level: "warn", msg: "feature source failed", group, error: String(error) }));
        return FAILED;
      }),
      deadline,
    ]);

  // Offline: one KV read per entity not fresh in the cache.
  const offline = new Map<string, { value: Outcome<OfflineValues | null>; tier: Tier }>();
  const offlineSettled = new Map<string, number>();
  const pending: Promise<unknown>[] = [];
  if (offlineDefs.length) {
    for (const entity of entities) {
      const key = `${group}\u0000${entity}`;
      const hit = pointInTime ? undefined : offlineCache.get(key);
      if (hit && fresh(hit, offlineTtl, now)) {
        offline.set(entity, { value: hit.value, tier: "cache" });
        offlineSettled.set(entity, performance.now());
        continue;
      }
      if (hit && offlineStale > 0 && fresh(hit, offlineTtl + offlineStale, now)) {
        offline.set(entity, { value: hit.value, tier: "stale_cache" });
        offlineSettled.set(entity, performance.now());
        if (!refreshing.has(key)) {
          refreshing.add(key);
          opts.waitUntil!(
            readOffline(env, group, entity)
              .then((value) => offlineCache.set(key, value))
              .catch((error) => console.error(JSON.stringify({ level: "warn", msg: "feature refresh failed", group, entity, error: String(error) })))
              .finally(() => refreshing.delete(key)),
          );
        }
        continue;
      }
      let tier: Tier = "kv";
      const read = pointInTime ? readOffline(env, group, entity, opts.asOf) : readOfflineTiered(env, group, entity).then((r) => ((tier = r.tier), r.value));
      pending.push(
        bounded(read).then((value) => {
          offline.set(entity, { value, tier });
          offlineSettled.set(entity, performance.now());
          if (!pointInTime && value !== TIMED_OUT && value !== FAILED) offlineCache.set(key, value);
        }),
      );
    }
  }

  // Realtime: the features not fresh in the cache, one object call per shard.
  const realtime = new Map<string, { value: Outcome<number | null>; tier: Tier; at: number }>(); // key entity\0featureKey
  if (realtimeDefs.length) {
    const byShard = new Map<string, string[]>();
    for (const entity of entities) {
      const missing = realtimeDefs.filter(([k, d]) => {
        const hit = pointInTime ? undefined : realtimeCache.get(`${group}\u0000${entity}\u0000${k}@${d.version}`);
        if (hit && fresh(hit, d.ttlMs, now)) {
          realtime.set(`${entity}\u0000${k}`, { value: hit.value, tier: "cache", at: performance.now() });
          return false;
        }
        return true;
      });
      if (!missing.length) continue;
      const shard = shardOf(env, group, entity);
      byShard.set(shard, [...(byShard.get(shard) ?? []), entity]);
    }
    for (const [shard, shardEntities] of byShard) {
      const queries = realtimeDefs.map(([k, d]) => ({ key: k, spec: d.aggregate! }));
      pending.push(
        bounded(aggregatesStub(env, shard).read(shardEntities, queries, opts.asOf ?? now)).then((result) => {
          const at = performance.now();
          for (const entity of shardEntities) {
            for (const [k, d] of realtimeDefs) {
              const id = `${entity}\u0000${k}`;
              if (realtime.has(id)) continue;
              const value = result === TIMED_OUT || result === FAILED ? result : (result[entity]?.[k] ?? null);
              realtime.set(id, { value, tier: "durable_object", at });
              if (!pointInTime && value !== TIMED_OUT && value !== FAILED) realtimeCache.set(`${group}\u0000${entity}\u0000${k}@${d.version}`, value);
            }
          }
        }),
      );
    }
  }
  await Promise.all(pending);
  clearTimeout(timer);

  return entities.map((entity) => {
    const values = new Map<string, Value>();
    const out: EntityFeatures = { entity_id: entity, values: {}, sources: {}, fell_back: [], errors: [] };
    for (const [key, def] of defs) {
      const metricName = `${group}.${def.name}`;
      let value: Value | undefined;
      let tier: Tier = "computed";
      let reason = "";
      let settledAt = performance.now();
      if (def.kind === "offline") {
        const got = offline.get(entity)!;
        tier = got.tier;
        settledAt = offlineSettled.get(entity) ?? settledAt;
        if (got.value === TIMED_OUT) reason = `offline source timed out after ${timeoutMs} ms`;
        else if (got.value === FAILED) reason = "offline source failed";
        else if (got.value === null) reason = `entity '${entity}' has no offline values in group '${group}'${pointInTime ? " at that time" : ""}`;
        else if (!Object.hasOwn(got.value.values, def.name)) reason = `entity '${entity}' has no value for '${def.name}'`;
        else value = got.value.values[def.name];
      } else if (def.kind === "realtime") {
        const got = realtime.get(`${entity}\u0000${key}`)!;
        tier = got.tier;
        settledAt = got.at;
        if (got.value === TIMED_OUT) reason = `realtime source timed out after ${timeoutMs} ms`;
        else if (got.value === FAILED) reason = "realtime source failed";
        else if (got.value === null) reason = `no events in the window of '${def.name}'`;
        else value = got.value;
      } else {
        const fn = def.fn !== undefined ? featureFunction(def.fn) : undefined;
        const result = def.fn !== undefined ? (fn ? fn.compute(Object.fromEntries(fn.reads.map((n) => [n, values.get(n) ?? null]))) : null) : evaluate(compiled(def.expression!), (name) => values.get(name) ?? null);
        if (result === null) reason = `'${def.name}' evaluated to null (a missing input or an undefined operation)`;
        else value = result;
        settledAt = performance.now();
      }
      if (value !== undefined && !fits(value, def)) {
        reason = `'${def.name}' got ${JSON.stringify(value)}, not a ${def.dtype} value`;
        value = undefined;
      }
      const lkKey = `${group}\u0000${entity}\u0000${def.name}`;
      if (value === undefined) {
        if (def.fallback.policy === "default") {
          value = def.fallback.value;
          tier = "default";
        } else if (def.fallback.policy === "last_known") {
          const known = lastKnown.get(lkKey);
          if (known) {
            value = known.value;
            tier = "last_known";
          }
        }
      } else if (!pointInTime) {
        lastKnown.set(lkKey, value);
      }
      const ms = settledAt - started;
      if (value === undefined) {
        featureMetrics.record(metricName, "error", ms);
        if (requested.has(key)) out.errors.push({ feature: key, message: reason });
        continue;
      }
      featureMetrics.record(metricName, tier, ms);
      values.set(def.name, value);
      if (requested.has(key)) {
        out.values[key] = value;
        out.sources[key] = tier;
        if (tier === "default" || tier === "last_known") out.fell_back.push(key);
      }
    }
    return out;
  });
}

function fits(value: Value, def: Definition): boolean {
  switch (def.dtype) {
    case "numeric":
      return typeof value === "number" && Number.isFinite(value);
    case "integer":
      return typeof value === "number" && Number.isInteger(value);
    case "categorical":
      return typeof value === "string";
    case "boolean":
      return typeof value === "boolean";
  }
}
