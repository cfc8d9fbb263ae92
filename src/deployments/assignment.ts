/**
 * Sticky, deterministic variant assignment.
 *
 * A unit key (entity id, user id, or the cookie the worker sets) is hashed together with the
 * deployment's salt into u in [0, 1); the variant whose cumulative range [sum of earlier weights,
 * + own weight) / 100 contains u answers. Variants keep their order for the deployment's life, so:
 * - the same unit gets the same variant while weights do not change;
 * - growing a canary listed after stable (stable [0, 0.9) -> [0, 0.75), canary [0.9, 1) ->
 *   [0.75, 1)) moves only units from stable into canary; no canary unit leaves it.
 * An A/B weight change in place (reweightSegments) keeps the salt and re-lays the ranges so that
 * only the share the new weights require moves: each shrinking variant gives up the end of its
 * ranges, and the freed pieces go to the growing variants. A variant may then own several ranges
 * (`Segments`); a unit moves only if it sat in a freed piece.
 * The salt makes assignments independent between deployments (a unit that was in the treatment
 * of one experiment is not systematically in the treatment of the next).
 *
 * The hash is cyrb53 (53-bit, non-cryptographic, fast and well mixed): unbiasedness over 100,000
 * keys is a test. It is synchronous so routing costs no await.
 */
import type { Variant } from "./model";

/** cyrb53 by bryc (public domain): a 53-bit string hash. */
export function cyrb53(text: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

const TWO_53 = 2 ** 53;

/** The unit's position in [0, 1) for a deployment salt. */
export function unitPosition(salt: string, unit: string): number {
  return cyrb53(`${salt}\u0000${unit}`) / TWO_53;
}

/** Cumulative upper bounds (fractions of 1) in variant order; the last is exactly 1. */
export function cumulativeBounds(variants: readonly Variant[]): number[] {
  const total = variants.reduce((s, v) => s + v.weight, 0);
  let acc = 0;
  const bounds = variants.map((v) => (acc += v.weight) / total);
  bounds[bounds.length - 1] = 1;
  return bounds;
}

/** Index of the variant whose range holds u; variants of weight 0 never answer. */
export function pickIndex(bounds: readonly number[], u: number): number {
  for (let i = 0; i < bounds.length; i++) if (u < bounds[i]) return i;
  return bounds.length - 1;
}

/**
 * A partition of [0, 1) into consecutive ranges, each [variant index, upper bound]; a range starts
 * where the previous one ends, the last ends at 1.
 */
export type Segments = [number, number][];

/** The deployment's ranges: stored ones (after an in-place weight change) while they fit the variants' weights, else cumulative. */
export function segmentsOf(variants: readonly Variant[], stored?: Segments): Segments {
  if (stored && stored.length && stored.every(([i]) => i >= 0 && i < variants.length) && stored[stored.length - 1][1] === 1) {
    // Only while they still match the weights (anything else that changes weights re-lays ranges cumulatively).
    const total = variants.reduce((a, v) => a + v.weight, 0);
    const share = new Array(variants.length).fill(0);
    let lo = 0;
    for (const [i, hi] of stored) {
      share[i] += hi - lo;
      lo = hi;
    }
    if (share.every((x, i) => Math.abs(x - variants[i].weight / total) < 1e-9)) return stored;
  }
  return cumulativeBounds(variants).map((b, i) => [i, b]);
}

/** Index of the variant whose range holds u (binary search over the upper bounds). */
export function pickSegment(segments: Segments, u: number): number {
  let lo = 0;
  let hi = segments.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (u < segments[mid][1]) hi = mid;
    else lo = mid + 1;
  }
  return segments[lo][0];
}

const EPS = 1e-12;

/**
 * New ranges for `weights` (one per variant, any positive total) that move the least share of
 * units: sum over variants of max(0, new share - old share). Returns the ranges and that share.
 */
export function reweightSegments(segments: Segments, weights: readonly number[]): { segments: Segments; moved: number } {
  const total = weights.reduce((a, b) => a + b, 0);
  const target = weights.map((w) => w / total);
  let lo = 0;
  const pieces = segments.map(([v, hi]) => {
    const piece = { v, lo, hi };
    lo = hi;
    return piece;
  });
  const share = new Array(weights.length).fill(0);
  for (const p of pieces) share[p.v] += p.hi - p.lo;
  const excess = share.map((s, i) => s - target[i]);
  const need = share.map((s, i) => Math.max(0, target[i] - s));
  const moved = need.reduce((a, b) => a + b, 0);
  // Shrinking variants release the end of their ranges, right to left.
  const free: { lo: number; hi: number }[] = [];
  for (let i = pieces.length - 1; i >= 0; i--) {
    const p = pieces[i];
    if (excess[p.v] <= EPS) continue;
    const take = Math.min(p.hi - p.lo, excess[p.v]);
    free.push({ lo: p.hi - take, hi: p.hi });
    p.hi -= take;
    excess[p.v] -= take;
  }
  free.sort((a, b) => a.lo - b.lo);
  // Growing variants take the freed pieces, in variant order.
  let g = 0;
  let last = -1;
  for (const f of free) {
    let a = f.lo;
    while (f.hi - a > EPS) {
      while (g < need.length && need[g] <= EPS) g++;
      const v = g < need.length ? g : last; // rounding leftovers go to the last grower
      const take = g < need.length ? Math.min(f.hi - a, need[g]) : f.hi - a;
      pieces.push({ v, lo: a, hi: a + take });
      if (g < need.length) need[g] -= take;
      last = v;
      a += take;
    }
  }
  const sorted = pieces.filter((p) => p.hi - p.lo > EPS).sort((a, b) => a.lo - b.lo);
  const out: Segments = [];
  for (const p of sorted) {
    if (out.length && out[out.length - 1][0] === p.v) out[out.length - 1][1] = p.hi;
    else out.push([p.v, p.hi]);
  }
  out[out.length - 1][1] = 1;
  return { segments: out, moved };
}
