/**
 * Which version answers a prediction: by explicit version, by alias, or the `champion` alias.
 *
 * Resolutions are cached per isolate for `REGISTRY_CACHE_SECONDS` (default 5 s) so the hot path
 * does not query D1 on every request. Changes made through this isolate's admin API invalidate
 * its cache at once; other isolates follow within the TTL. That TTL is the documented bound on how
 * long an alias move takes to reach every location.
 */
import { ApiError, notFound } from "../http/errors";
import { intVar } from "../http/limits";
import { findAlias, findVersion, registryDb, toModelVersion, type ModelVersion } from "./store";

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
  value: Promise<Resolved>;
}

const cache = new Map<string, CacheEntry>();
const MAX_ENTRIES = 1000;

export function invalidateResolved(name?: string) {
  if (!name) return cache.clear();
  for (const key of cache.keys()) if (key.startsWith(`${name}\u0000`)) cache.delete(key);
}

export function resolveVersion(env: Env, name: string, selector: Selector): Promise<Resolved> {
  if (selector.version && selector.alias) throw new ApiError("bad_request", "give either version or alias, not both");
  const key = `${name}\u0000${selector.version ? `v:${selector.version}` : `a:${selector.alias ?? DEFAULT_ALIAS}`}`;
  const now = Date.now();
  const hit = cache.get(key);
  if (hit && hit.expires > now) return hit.value;
  const ttlMs = intVar(env.REGISTRY_CACHE_SECONDS, 5) * 1000;
  const value = lookup(env, name, selector);
  if (cache.size >= MAX_ENTRIES) cache.delete(cache.keys().next().value!);
  cache.set(key, { expires: now + ttlMs, value });
  value.catch(() => cache.delete(key)); // errors (unknown model, D1 hiccup) are not cached
  return value;
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
  return { version: toModelVersion(row), alias };
}
