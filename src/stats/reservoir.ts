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

export function mergeReservoirs(a: Reservoir, b: Reservoir, capacity: number, random: () => number = Math.random): Reservoir {
  const seen = a.seen + b.seen;
  if (a.seen === 0) return { seen, values: pick(b.values, capacity, random) };
  if (b.seen === 0) return { seen, values: pick(a.values, capacity, random) };
  // Largest total whose split in proportion to `seen` fits what each side holds: a side that is
  // itself a subsample must not be outweighed by a complete small side.
  const total = Math.min(capacity, (a.values.length * seen) / a.seen, (b.values.length * seen) / b.seen);
  const fromA = Math.min(a.values.length, Math.round((total * a.seen) / seen));
  const fromB = Math.min(b.values.length, Math.round((total * b.seen) / seen));
  return { seen, values: [...pick(a.values, fromA, random), ...pick(b.values, fromB, random)] };
}
