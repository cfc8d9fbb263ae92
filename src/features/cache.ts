/**
 * The in-isolate tier in front of KV and the realtime objects: an LRU bounded by entry count
 * (FEATURE_CACHE_ENTRIES), each entry stamped with the time it was fetched. Freshness is decided by
 * the reader against each feature's own TTL, so one cached offline record (all of an entity's
 * offline features of a group) serves a 5-minute feature and a 10-second one correctly.
 *
 * Expired entries are not dropped on read: they stay (until evicted) as the `last_known` value a
 * fallback may use when the source is missing or slow. Map iteration order is insertion order, so
 * re-inserting on a hit keeps the least recently used entry first for eviction.
 */
export interface Stamped<T> {
  value: T;
  at: number;
}

export class LruCache<T> {
  private readonly map = new Map<string, Stamped<T>>();
  constructor(private readonly maxEntries: number) {}

  get size() {
    return this.map.size;
  }

  /** The entry whatever its age (callers check freshness), marking it recently used. */
  get(key: string): Stamped<T> | undefined {
    const hit = this.map.get(key);
    if (hit) {
      this.map.delete(key);
      this.map.set(key, hit);
    }
    return hit;
  }

  set(key: string, value: T, at = Date.now()) {
    this.map.delete(key);
    this.map.set(key, { value, at });
    while (this.map.size > this.maxEntries) this.map.delete(this.map.keys().next().value!);
  }

  clear() {
    this.map.clear();
  }
}

export function fresh(entry: Stamped<unknown> | undefined, ttlMs: number, now: number): boolean {
  return entry !== undefined && now - entry.at < ttlMs;
}
