/**
 * The unit of monitoring data: an `Aggregate` of observations (requests, errors, a latency sketch,
 * score and feature histograms on the version's reference bins, reservoir samples for KS tests,
 * predicted-label counts). Aggregates merge associatively, so the same type serves the isolate
 * buffer, the Durable Object time buckets, a window (merge of buckets) and the fleet (merge of
 * shards).
 */
import { DDSketch, type SketchJSON } from "../stats/sketch";
import { mergeReservoirs, type Reservoir } from "../stats/reservoir";

/** Relative error of the latency sketches (1 %). */
export const SKETCH_ALPHA = 0.01;
/**
 * Reservoir capacities: per isolate flush, per minute bucket, per hour bucket, per window. A flush
 * carries at most a quarter of what a minute bucket holds: at any traffic that fills a minute
 * bucket from several flushes nothing is lost, and each flush costs the objects a quarter as much
 * to store and merge (a single isolate sending more than 250 requests in one flush fills its
 * minute with 250 values per feature; hour buckets and windows are unaffected).
 */
export const SAMPLE_CAP = { flush: 250, minute: 1000, hour: 2000, window: 2000 } as const;

export interface NumericFeature {
  type: "numeric";
  counts: number[];
  missing: number;
  sample: Reservoir;
}
export interface CategoricalFeature {
  type: "categorical";
  counts: Record<string, number>;
  missing: number;
}
export type FeatureAggregate = NumericFeature | CategoricalFeature;

export interface Aggregate {
  /** Requests answered or failed, rows scored. */
  requests: number;
  rows: number;
  /** Failed requests by "<status> <code>", e.g. "500 internal_error". */
  errors: Record<string, number>;
  latency: SketchJSON | null;
  score: { counts: number[] | null; sample: Reservoir };
  /** Predicted class label counts (classifiers). */
  labels: Record<string, number>;
  features: Record<string, FeatureAggregate>;
}

export function emptyAggregate(): Aggregate {
  return { requests: 0, rows: 0, errors: {}, latency: null, score: { counts: null, sample: { seen: 0, values: [] } }, labels: {}, features: {} };
}

function addCounts(a: number[] | null, b: number[] | null): number[] | null {
  if (!a) return b ? b.slice() : null;
  if (!b) return a;
  if (a.length !== b.length) return a; // reference bins changed shape: keep the first (never happens within a version)
  for (let i = 0; i < a.length; i++) a[i] += b[i];
  return a;
}

function addRecord(a: Record<string, number>, b: Record<string, number>) {
  for (const [k, v] of Object.entries(b)) a[k] = (a[k] ?? 0) + v;
}

/** Merges `b` into `a` (mutating and returning `a`); samples are capped at `cap`. */
export function mergeInto(a: Aggregate, b: Aggregate, cap: number): Aggregate {
  a.requests += b.requests;
  a.rows += b.rows;
  addRecord(a.errors, b.errors);
  if (b.latency && b.latency.count > 0) a.latency = a.latency ? DDSketch.fromJSON(a.latency).merge(b.latency).toJSON() : b.latency;
  a.score = { counts: addCounts(a.score.counts, b.score.counts), sample: mergeReservoirs(a.score.sample, b.score.sample, cap) };
  addRecord(a.labels, b.labels);
  for (const [name, fb] of Object.entries(b.features)) {
    const fa = a.features[name];
    if (!fa) {
      a.features[name] = structuredClone(fb);
    } else if (fa.type === "numeric" && fb.type === "numeric") {
      fa.counts = addCounts(fa.counts, fb.counts)!;
      fa.missing += fb.missing;
      fa.sample = mergeReservoirs(fa.sample, fb.sample, cap);
    } else if (fa.type === "categorical" && fb.type === "categorical") {
      addRecord(fa.counts, fb.counts);
      fa.missing += fb.missing;
    }
  }
  return a;
}

export function mergeAll(parts: Iterable<Aggregate>, cap: number = SAMPLE_CAP.window): Aggregate {
  const out = emptyAggregate();
  for (const p of parts) mergeInto(out, p, cap);
  return out;
}

export function failures(a: Aggregate): { total: number; server: number; client: number } {
  let server = 0;
  let client = 0;
  for (const [k, v] of Object.entries(a.errors)) (Number(k.split(" ")[0]) >= 500 ? (server += v) : (client += v));
  return { total: server + client, server, client };
}

/** Latency, volume and error figures of an aggregate over a window of `seconds`. */
export function summarize(a: Aggregate, seconds: number) {
  const sketch = a.latency ? DDSketch.fromJSON(a.latency) : null;
  const q = (p: number) => (sketch && sketch.count ? round(sketch.quantile(p)) : null);
  const f = failures(a);
  return {
    requests: a.requests,
    rows: a.rows,
    requests_per_second: round(a.requests / seconds),
    errors: { total: f.total, server: f.server, client: f.client, by_code: a.errors },
    error_rate: a.requests ? round(f.server / a.requests) : 0,
    client_error_rate: a.requests ? round(f.client / a.requests) : 0,
    latency_ms: { p50: q(0.5), p95: q(0.95), p99: q(0.99), mean: sketch && sketch.count ? round(sketch.sum / sketch.count) : null, relative_error: SKETCH_ALPHA },
    predicted_labels: a.labels,
  };
}

export function round(v: number, digits = 6): number {
  return Number.isFinite(v) ? Number(v.toPrecision(digits)) : v;
}
