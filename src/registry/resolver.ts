/**
 * Which version answers a prediction: by explicit version, by alias, or the `champion` alias.
 *
 * Resolutions are cached per isolate for `REGISTRY_CACHE_SECONDS` (default 5 s) so the hot path
 * does not query D1 on every request. Changes made through this isolate's admin API invalidate
 * its cache at once; other isolates follow within the TTL. That TTL is the documented bound on how
 * long an alias move takes to reach every location.
 *
 * Memory: a resolved version carries its feature schema and training reference (histograms and up
 * to 5,000 samples per feature: megabytes for a wide model), so the cache is bounded by both entry
 * count and estimated bytes (MAX_CACHE_BYTES, a small share of the isolate's 128 MB), expired
 * entries are dropped before anything live is evicted, and selectors that resolve to the same
 * version (its number, `champion`, `challenger`) share one parsed copy instead of one each.
 *
 * Only resolved values are cached, never a promise of one: a promise made by one request wraps that
 * request's D1 I/O, and another request awaiting it can fail with "Cannot perform I/O on behalf of
 * a different request" (or hang when the first request is cancelled). Concurrent misses on a cold
 * key each run their own lookup (a couple of indexed D1 reads); a lookup that started before an
 * invalidation does not store its answer.
 */
import { ApiError, notFound } from "../http/errors";
import { intVar } from "../http/limits";
import { findAlias, findVersion, registryDb, toModelVersion, type ModelVersion, type VersionRow } from "./store";

export const DEFAULT_ALIAS = "champion";

export interface Selector {
  version?: string;
  alias?: string;
}

export interface Resolved {
  version: ModelVersion;
  /** The alias used to find it, if any. */
  alias?: string;
}

interface CacheEntry {
  expires: number;
  value: Resolved;
  /** Estimated bytes of the parsed version. */
  bytes: number;
}

const cache = new Map<string, CacheEntry>();
const MAX_ENTRIES = 1000;
export const MAX_CACHE_BYTES = 16 * 1024 * 1024;
let cachedBytes = 0;
/** Bumped by every invalidation: a lookup that began under an older generation is not cached. */
let generation = 0;
/** Parsed versions by row identity, so several selectors of one version share one copy. */
const parsedVersions = new Map<string, WeakRef<ModelVersion>>();

function drop(key: string, entry: CacheEntry) {
  if (cache.get(key) !== entry) return;
  cache.delete(key);
  cachedBytes -= entry.bytes;
}

/** Drops expired entries, then the least recently inserted, until the bounds hold. */
function prune(now: number) {
  for (const [key, entry] of cache) if (entry.expires <= now) drop(key, entry);
  for (const [key, entry] of cache) {
    if (cache.size < MAX_ENTRIES && cachedBytes <= MAX_CACHE_BYTES) break;
    drop(key, entry);
  }
  for (const [key, ref] of parsedVersions) if (!ref.deref()) parsedVersions.delete(key);
}

/** Entries and estimated bytes the isolate's resolver cache holds (exported at /metrics). */
export function resolverCacheStats(): { entries: number; bytes: number } {
  return { entries: cache.size, bytes: cachedBytes };
}

export function invalidateResolved(name?: string) {
  generation++;
  for (const [key, entry] of cache) if (!name || key.startsWith(`${name}\u0000`)) drop(key, entry);
}

export function resolveVersion(env: Env, name: string, selector: Selector): Promise<Resolved> {
  if (selector.version && selector.alias) throw new ApiError("bad_request", "give either version or alias, not both");
  const key = `${name}\u0000${selector.version ? `v:${selector.version}` : `a:${selector.alias ?? DEFAULT_ALIAS}`}`;
  const hit = cache.get(key);
  if (hit && hit.expires > Date.now()) return Promise.resolve(hit.value);
  const ttlMs = intVar(env.REGISTRY_CACHE_SECONDS, 5) * 1000;
  const startedIn = generation;
  // This request's own lookup; errors (unknown model, D1 hiccup) are not cached.
  return lookup(env, name, selector).then((resolved) => {
    if (startedIn === generation) store(key, resolved, ttlMs);
    return resolved;
  });
}

function store(key: string, value: Resolved, ttlMs: number) {
  const now = Date.now();
  const old = cache.get(key);
  if (old) drop(key, old);
  if (cache.size >= MAX_ENTRIES) prune(now);
  const entry: CacheEntry = { expires: now + ttlMs, value, bytes: sizeOf(value.version) };
  cache.set(key, entry);
  cachedBytes += entry.bytes;
  if (cachedBytes > MAX_CACHE_BYTES) prune(now);
}

const sizes = new WeakMap<ModelVersion, number>();
/** Estimated bytes of a parsed version: twice its JSON (numbers and strings cost about that parsed). */
function sizeOf(v: ModelVersion): number {
  let n = sizes.get(v);
  if (n === undefined) sizes.set(v, (n = 2 * (JSON.stringify(v.featureSchema).length + JSON.stringify(v.reference ?? null).length)));
  return n;
}

/** One parsed copy per version row (selectors resolving to the same row share it). */
function shared(row: VersionRow): ModelVersion {
  const id = `${row.id}:${row.status}`;
  const existing = parsedVersions.get(id)?.deref();
  if (existing) return existing;
  const parsed = toModelVersion(row);
  parsedVersions.set(id, new WeakRef(parsed));
  return parsed;
}

async function lookup(env: Env, name: string, selector: Selector): Promise<Resolved> {
  const db = registryDb(env.DB);
  let alias: string | undefined;
  let versionName = selector.version;
  if (!versionName) {
    alias = selector.alias ?? DEFAULT_ALIAS;
    const row = await findAlias(db, name, alias);
    if (!row) {
      throw notFound(selector.alias ? `alias '${alias}' of model '${name}'` : `champion of model '${name}' (no 'champion' alias; pass a version or alias)`);
    }
    versionName = row.version;
  }
  const row = await findVersion(db, name, versionName);
  if (!row) throw notFound(`version ${versionName} of model '${name}'`);
  if (row.status === "archived") throw new ApiError("conflict", `version ${versionName} of model '${name}' is archived`);
  return { version: shared(row), alias };
}
