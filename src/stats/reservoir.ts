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

/**
 * A uniform sample of a stream into a reservoir (Li's Algorithm L): after the reservoir fills, the
 * number of values to skip before the next replacement is drawn from its exact distribution, so
 * offering a value costs one increment and one comparison, and a stream of N values costs
 * O(k (1 + log(N / k))) random draws for a reservoir of k, instead of one per value. The result
 * has the same distribution as Algorithm R: every value offered is kept with probability k / N.
 * The sampler's skip state lives here, not in the reservoir: a reservoir sampled this way merges
 * and serializes like any other.
 */
export class StreamSampler {
  private w = 0;
  /** Index (in `r.seen` terms) of the next value to take once the reservoir is full. */
  private next = 0;

  constructor(
    readonly r: Reservoir,
    readonly capacity: number,
    private readonly random: () => number = Math.random,
  ) {
    if (r.values.length >= capacity) this.start();
  }

  offer(value: number) {
    const r = this.r;
    const i = r.seen++;
    if (r.values.length < this.capacity) {
      r.values.push(value);
      if (r.values.length === this.capacity) this.start();
    } else if (i === this.next) {
      r.values[Math.floor(this.random() * this.capacity)] = value;
      this.w *= Math.exp(Math.log(1 - this.random()) / this.capacity);
      this.next = i + 1 + this.skip();
    }
  }

  private start() {
    this.w = Math.exp(Math.log(1 - this.random()) / this.capacity);
    this.next = this.r.seen + this.skip();
  }

  /** Values to pass over before the next one taken: floor(log(u) / log(1 - w)), u uniform on (0, 1]. */
  private skip(): number {
    return Math.floor(Math.log(1 - this.random()) / Math.log(1 - this.w));
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
