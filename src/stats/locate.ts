/**
 * Where a value falls among sorted numbers, fast enough to run for every feature of every row the
 * monitoring fold counts (src/monitoring/collector.ts).
 *
 * A plain binary search over m values takes log2(m) data-dependent branches, most of them
 * mispredicted (about 10 for a 1,000-value reference sample): that search was most of the fold's
 * time. `SortedIndex` adds a guide table (bucket sort's lookup table, as in the "index table" of
 * Knuth's searching chapter): the range [min, max] of the values is cut into B equal buckets and
 * guide[b] is the first position whose value falls in bucket b or later. A value's bucket then
 * bounds its position to guide[b]..guide[b + 1], usually zero to two values, which a binary search
 * finishes.
 *
 * Exactness does not depend on rounding: a value's bucket is computed by one monotone function
 * (subtract, multiply by a positive constant, floor, clamp; each step is monotone in IEEE
 * arithmetic), and the guide is built with that same function from the values themselves. If
 * bucket(x) = b, every value in an earlier bucket is < x and every value in a later bucket is > x
 * (monotonicity), so lowerBound(x) and upperBound(x) lie in [guide[b], guide[b + 1]]: the answers
 * are those of a plain binary search for every double, including values equal to a stored one,
 * out of range, infinite or -0. Values that are not all finite, or all equal, get no guide (plain
 * binary search).
 */
export class SortedIndex {
  /** Integer values get a direct cell table when their span is at most this many integers per value (Uint16 entries: 32 bytes per value). */
  private static readonly DIRECT_SPAN_PER_VALUE = 16;
  /** Buckets (0 without a guide). */
  private readonly buckets: number;
  private readonly min: number;
  private readonly scale: number;
  /** guide[b]: first position whose value's bucket is >= b (length buckets + 1); 16-bit while positions fit (reference samples hold at most 5,000 values). */
  private readonly guide: Uint16Array | Int32Array;
  /**
   * When every value is an integer and they span at most DIRECT_SPAN_PER_VALUE integers per value (counts,
   * ages, amounts in whole units: most tabular features): direct[k] is the cell of the integer
   * values[0] + k, so an integer x finds its cell with one subtraction and one read.
   */
  private readonly direct: Uint16Array | Int32Array | null = null;

  /** `values` ascending (not NaN); not copied, not to be changed. */
  constructor(
    readonly values: Float64Array,
    bucketsPerValue = 4,
  ) {
    const m = values.length;
    const min = m ? values[0] : 0;
    const max = m ? values[m - 1] : 0;
    const span = max - min;
    this.min = min;
    if (m < 8 || !(span > 0 && span < Infinity)) {
      this.buckets = 0;
      this.scale = 0;
      this.guide = new Uint16Array(0);
    } else {
      let b = 16;
      while (b < bucketsPerValue * m && b < 1 << 16) b *= 2;
      this.buckets = b;
      this.scale = b / span;
      const guide = m <= 0xffff ? new Uint16Array(b + 1) : new Int32Array(b + 1);
      let i = 0;
      for (let k = 0; k <= b; k++) {
        while (i < m && this.bucketOf(values[i]) < k) i++;
        guide[k] = i;
      }
      this.guide = guide;
    }
    if (m > 0 && span <= SortedIndex.DIRECT_SPAN_PER_VALUE * m && values.every((v) => Number.isInteger(v))) {
      // Built with the search cellOf (this.direct is still null), one entry per integer in range.
      const direct = 2 * m + 1 <= 0xffff ? new Uint16Array(span + 1) : new Int32Array(span + 1);
      for (let k = 0; k <= span; k++) direct[k] = this.cellOf(min + k);
      this.direct = direct;
    }
  }

  /** The bucket of x: floor((x - min) * scale) clamped to [0, buckets - 1]; monotone in x. */
  private bucketOf(x: number): number {
    const t = (x - this.min) * this.scale;
    return t > 0 ? (t < this.buckets ? t | 0 : this.buckets - 1) : 0;
  }

  /**
   * The cell of x among the values (not NaN), as KsGrid numbers them: 2i + 1 when x equals
   * values[i], 2i when it lies strictly between values[i - 1] and values[i] (2m past the last).
   * A bucket holding at most one value (most of them: there are ~4 buckets per value) needs no
   * search and no data-dependent branch: with g = guide[b] and u = values[g] (NaN past the end,
   * which compares false), the cell is 2g + (x >= u) + (x > u), since every value before g is < x
   * and every value after g is > x. Fuller buckets take the search.
   */
  cellOf(x: number): number {
    const direct = this.direct;
    // An integer x (or ±Infinity): x - values[0] is exact (a difference of two integers, exact below
    // 2^53; above, it is far outside the table with its sign kept), so the table read is the cell
    // a search would give. A fraction takes the guide.
    if (direct !== null && x === Math.trunc(x)) {
      const d = x - this.min;
      if (d < 0) return 0;
      if (d >= direct.length) return 2 * this.values.length;
      return direct[d];
    }
    if (this.buckets) {
      const b = this.bucketOf(x);
      const g = this.guide[b];
      if (this.guide[b + 1] - g <= 1) {
        const u = g < this.values.length ? this.values[g] : Number.NaN;
        return 2 * g + (x >= u ? 1 : 0) + (x > u ? 1 : 0);
      }
    }
    const lo = this.lowerBound(x);
    return lo < this.values.length && this.values[lo] === x ? 2 * lo + 1 : 2 * lo;
  }

  /** The first position whose value is >= x (values.length if none); x not NaN. */
  lowerBound(x: number): number {
    const u = this.values;
    let lo = 0;
    let hi = u.length;
    if (this.buckets) {
      const b = this.bucketOf(x);
      lo = this.guide[b];
      hi = this.guide[b + 1];
    }
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (u[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The first position whose value is > x (values.length if none); x not NaN. */
  upperBound(x: number): number {
    const u = this.values;
    let lo = 0;
    let hi = u.length;
    if (this.buckets) {
      const b = this.bucketOf(x);
      lo = this.guide[b];
      hi = this.guide[b + 1];
    }
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (u[mid] <= x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
