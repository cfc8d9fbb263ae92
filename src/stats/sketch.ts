/**
 * A mergeable quantile sketch for latencies: DDSketch (Masson, Rim, Lee, VLDB 2019) with a
 * logarithmic index and unbounded bucket map.
 *
 * Guarantee: every quantile it returns is within relative error `alpha` of a value of the
 * exact sample at that rank (default alpha = 1%). Sketches merge by adding bucket counts, so
 * isolates can sketch locally and Durable Objects can merge windows. Values <= `minValue` (default
 * 1 microsecond, in ms) are counted in a zero bucket and reported as 0.
 */
export interface SketchJSON {
  alpha: number;
  zero: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  /** bucket index -> count */
  buckets: Record<string, number>;
}

export class DDSketch {
  readonly alpha: number;
  private readonly gamma: number;
  private readonly logGamma: number;
  private readonly minValue: number;
  private buckets = new Map<number, number>();
  private zero = 0;
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;

  constructor(alpha = 0.01, minValue = 1e-3) {
    if (!(alpha > 0 && alpha < 1)) throw new RangeError("alpha must be in (0, 1)");
    this.alpha = alpha;
    this.gamma = (1 + alpha) / (1 - alpha);
    this.logGamma = Math.log(this.gamma);
    this.minValue = minValue;
  }

  add(value: number, weight = 1) {
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`sketch values must be finite and >= 0, got ${value}`);
    this.count += weight;
    this.sum += value * weight;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    if (value <= this.minValue) {
      this.zero += weight;
      return;
    }
    const index = Math.ceil(Math.log(value) / this.logGamma);
    this.buckets.set(index, (this.buckets.get(index) ?? 0) + weight);
  }

  /** The q-quantile (0 <= q <= 1), using the lower rank convention rank = q * (count - 1). */
  quantile(q: number): number {
    if (this.count === 0) return Number.NaN;
    if (q <= 0) return this.min;
    if (q >= 1) return this.max;
    const rank = q * (this.count - 1);
    let seen = this.zero;
    if (rank < seen) return 0;
    const keys = [...this.buckets.keys()].sort((a, b) => a - b);
    for (const k of keys) {
      seen += this.buckets.get(k)!;
      if (seen > rank) {
        // Bucket k holds (gamma^(k-1), gamma^k]; this estimate is within alpha of any value in it.
        const estimate = (2 * Math.pow(this.gamma, k)) / (this.gamma + 1);
        return Math.min(Math.max(estimate, this.min), this.max);
      }
    }
    return this.max;
  }

  /**
   * Estimated share of values above `threshold` (for latency SLOs): buckets whose range lies above
   * the threshold's bucket count as above; the threshold's own bucket counts as below, so the
   * estimate is exact up to values within relative error alpha of the threshold.
   */
  fractionAbove(threshold: number): number {
    if (this.count === 0) return Number.NaN;
    if (threshold <= this.minValue) return (this.count - this.zero) / this.count;
    const limit = Math.ceil(Math.log(threshold) / this.logGamma);
    let above = 0;
    for (const [k, v] of this.buckets) if (k > limit) above += v;
    return above / this.count;
  }

  merge(other: DDSketch | SketchJSON) {
    const o = other instanceof DDSketch ? other.toJSON() : other;
    if (Math.abs(o.alpha - this.alpha) > 1e-12) throw new RangeError("cannot merge sketches with different alpha");
    if (o.count === 0) return this;
    this.zero += o.zero;
    this.count += o.count;
    this.sum += o.sum;
    this.min = Math.min(this.min, o.min);
    this.max = Math.max(this.max, o.max);
    for (const [k, v] of Object.entries(o.buckets)) this.buckets.set(Number(k), (this.buckets.get(Number(k)) ?? 0) + v);
    return this;
  }

  toJSON(): SketchJSON {
    return { alpha: this.alpha, zero: this.zero, count: this.count, sum: this.sum, min: this.min, max: this.max, buckets: Object.fromEntries(this.buckets) };
  }

  static fromJSON(json: SketchJSON): DDSketch {
    return new DDSketch(json.alpha).merge(json);
  }
}
