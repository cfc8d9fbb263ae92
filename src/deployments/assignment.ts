/**
 * Sticky, deterministic variant assignment.
 *
 * A unit key (entity id, user id, or the cookie the worker sets) is hashed together with the
 * deployment's salt into u in [0, 1); the variant whose cumulative range [sum of earlier weights,
 * + own weight) / 100 contains u answers. Variants keep their order for the deployment's life, so:
 * - the same unit gets the same variant while weights do not change;
 * - growing a canary listed after stable (stable [0, 0.9) -> [0, 0.75), canary [0.9, 1) ->
 *   [0.75, 1)) moves only units from stable into canary; no canary unit leaves it.
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
