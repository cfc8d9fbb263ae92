/**
 * Seeded randomness and stable hashes: mulberry32 (a small PRNG for reproducible splits, bootstraps
 * and tests), FNV-1a (stable shard choice), and a per-row sampling draw keyed by request id.
 */

/** mulberry32: a small seeded PRNG, for reproducible splits, bootstraps and tests. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a, 32 bit: a stable, cheap hash of a string (shard choice for request ids and entities). */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A uniform draw in [0, 1) that is a function of (request hash, row): `rowDraw(hash32(id), row)`.
 * The same row of the same request draws the same value in any isolate, so a decision taken on a
 * prediction (archive it when the draw is below the sample rate) can be taken again on its label.
 * The row is mixed into the request's hash by murmur3's finalizer, so sequential ids and rows
 * still draw independently-looking values.
 */
export function rowDraw(requestHash: number, row: number): number {
  let h = (requestHash ^ Math.imul(row + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}
