/**
 * Mergeable uniform samples (reservoirs) of feature values, for tests that need raw values (KS).
 *
 * A reservoir holds at most `capacity` values drawn uniformly from the `seen` values it stands
 * for. Merging two reservoirs draws from each in proportion to the values they stand for, so a
 * merged reservoir is (approximately, up to rounding of the split) a uniform sample of the union.
 */
export interface Reservoir {
  seen: number;
  values: number[];
}

export function emptyReservoir(): Reservoir {
  return { seen: 0, values: [] };
}

/**
 * Offers one value standing for `weight` values (1 unless the caller subsampled, e.g. a row drawn
 * from a large batch stands for n/k rows). Weight 1 is Algorithm R; other weights follow Chao's
 * weighted reservoir: the value enters with probability capacity * weight / seen.
 */
export function offer(r: Reservoir, value: number, capacity: number, random: () => number = Math.random, weight = 1) {
  r.seen += weight;
  if (r.values.length < capacity) r.values.push(value);
  else if (weight === 1) {
    const j = Math.floor(random() * r.seen);
    if (j < capacity) r.values[j] = value;
  } else if (random() < (capacity * weight) / r.seen) {
    r.values[Math.floor(random() * capacity)] = value;
  }
}

function pick(values: number[], k: number, random: () => number): number[] {
  if (k >= values.length) return values.slice();
  const copy = values.slice();
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(random() * (copy.length - i));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy.slice(0, k);
}

/**
 * Merges reservoirs in one draw: each contributes in proportion to the values it stands for, up
 * to `capacity` in all. The total is the largest whose proportional split every reservoir can
 * fill, so a side that is itself a subsample is never outweighed by a complete small side.
 * Merging k reservoirs at once draws once, where k - 1 pairwise merges would resample k - 1 times.
 */
export function mergeManyReservoirs(parts: readonly Reservoir[], capacity: number, random: () => number = Math.random): Reservoir {
  let seen = 0;
  for (const r of parts) seen += r.seen;
  const live = parts.filter((r) => r.seen > 0);
  if (live.length <= 1) return { seen, values: live.length ? pick(live[0].values, capacity, random) : [] };
  let total = capacity;
  for (const r of live) total = Math.min(total, (r.values.length * seen) / r.seen);
  const values: number[] = [];
  for (const r of live) values.push(...pick(r.values, Math.min(r.values.length, Math.round((total * r.seen) / seen)), random));
  return { seen, values };
}

export function mergeReservoirs(a: Reservoir, b: Reservoir, capacity: number, random: () => number = Math.random): Reservoir {
  return mergeManyReservoirs([a, b], capacity, random);
}
