/** Small seeded PRNG (mulberry32) and helpers for deterministic splits / synthetic data. */

import { mulberry32 } from "../../src/stats/random.ts";

export { mulberry32 };

/** Fisher-Yates shuffle (returns a new array). */
export function shuffle<T>(items: readonly T[], rand: () => number): T[] {
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Standard normal via Box-Muller. */
export function gaussian(rand: () => number): number {
  const u = 1 - rand();
  const v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
