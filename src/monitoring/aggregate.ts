/**
 * The unit of monitoring data: an `Aggregate` of observations (requests, errors, a latency sketch,
 * score and feature histograms on the version's reference bins, reservoir samples for KS tests,
 * predicted-label counts). Aggregates merge associatively, so the same type serves the isolate
 * buffer, the Durable Object time buckets, a window (merge of buckets) and the fleet (merge of
 * shards).
 */
import { DDSketch, type SketchJSON } from "../stats/sketch";
import { hash32, mulberry32 } from "../stats/random";
import { mergeManyReservoirs, type Reservoir } from "../stats/reservoir";

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

/**
 * Counts of every row's value by cell of the reference sample (`KsGrid`), sparse: cell index ->
 * count. The KS test runs on these, so it takes every row and does not depend on batching.
 */
export type KsCells = Record<string, number>;

export interface NumericFeature {
  type: "numeric";
  counts: number[];
  missing: number;
  sample: Reservoir;
  ks?: KsCells;
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
  score: { counts: number[] | null; sample: Reservoir; ks?: KsCells };
  /** Predicted class label counts (classifiers). */
  labels: Record<string, number>;
  features: Record<string, FeatureAggregate>;
}

/** A feature's empty aggregate; numeric ones with `bins` zero counts (the reference bins, if any). */
export function emptyFeature(kind: FeatureAggregate["type"], bins = 0): FeatureAggregate {
  return kind === "numeric" ? { type: "numeric", counts: new Array(bins).fill(0), missing: 0, sample: { seen: 0, values: [] } } : { type: "categorical", counts: {}, missing: 0 };
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
  return mergeAllInto(a, [b], cap);
}

/**
 * Merges every part into `a` at once (mutating and returning `a`): counts add up, latency sketches
 * merge into one, and each sample is drawn once from `a` and all parts (`mergeManyReservoirs`), so
 * folding many deltas into a bucket costs one draw per sample rather than one per delta.
 */
export function mergeAllInto(a: Aggregate, parts: readonly Aggregate[], cap: number, random: () => number = Math.random): Aggregate {
  let latency: DDSketch | null = null;
  const scoreSamples = [a.score.sample];
  const featureSamples = new Map<string, Reservoir[]>();
  let scoreCounts = a.score.counts;
  let scoreKs = a.score.ks;
  for (const b of parts) {
    a.requests += b.requests;
    a.rows += b.rows;
    addRecord(a.errors, b.errors);
    if (b.latency && b.latency.count > 0) {
      if (latency) latency.merge(b.latency);
      else latency = a.latency ? DDSketch.fromJSON(a.latency).merge(b.latency) : DDSketch.fromJSON(b.latency);
    }
    scoreCounts = addCounts(scoreCounts, b.score.counts);
    if (b.score.ks) addRecord((scoreKs ??= {}), b.score.ks);
    scoreSamples.push(b.score.sample);
    addRecord(a.labels, b.labels);
    for (const [name, fb] of Object.entries(b.features)) {
      const fa = (a.features[name] ??= emptyFeature(fb.type));
      if (fa.type === "numeric" && fb.type === "numeric") {
        fa.counts = fa.counts.length ? addCounts(fa.counts, fb.counts)! : fb.counts.slice();
        fa.missing += fb.missing;
        if (fb.ks) addRecord((fa.ks ??= {}), fb.ks);
        let samples = featureSamples.get(name);
        if (!samples) featureSamples.set(name, (samples = [fa.sample]));
        samples.push(fb.sample);
      } else if (fa.type === "categorical" && fb.type === "categorical") {
        addRecord(fa.counts, fb.counts);
        fa.missing += fb.missing;
      }
    }
  }
  if (latency) a.latency = latency.toJSON();
  a.score = { counts: scoreCounts, sample: mergeManyReservoirs(scoreSamples, cap, random), ...(scoreKs ? { ks: scoreKs } : {}) };
  for (const [name, samples] of featureSamples) (a.features[name] as NumericFeature).sample = mergeManyReservoirs(samples, cap, random);
  return a;
}

/**
 * Merges parts into a new aggregate. Reads pass `random` seeded from the window (`windowRandom`),
 * so the sample a KS test sees, and hence its result, is the same on every read of unchanged data.
 */
export function mergeAll(parts: Iterable<Aggregate>, cap: number = SAMPLE_CAP.window, random: () => number = Math.random): Aggregate {
  return mergeAllInto(emptyAggregate(), [...parts], cap, random);
}

/** A generator seeded from what identifies a window (object name, tier, start, span): reads of the same data draw the same sample. */
export function windowRandom(...key: (string | number)[]): () => number {
  return mulberry32(hash32(key.join("|")));
}

export function failures(a: Aggregate): { total: number; server: number; client: number } {
  let server = 0;
  let client = 0;
  for (const [k, v] of Object.entries(a.errors)) (Number(k.split(" ")[0]) >= 500 ? (server += v) : (client += v));
  return { total: server + client, server, client };
}

/** Latency, volume and error figures of an aggregate over a window of `seconds` (full precision: round only for display). */
export function summarize(a: Aggregate, seconds: number) {
  const sketch = a.latency ? DDSketch.fromJSON(a.latency) : null;
  const q = (p: number) => (sketch && sketch.count ? sketch.quantile(p) : null);
  const f = failures(a);
  return {
    requests: a.requests,
    rows: a.rows,
    requests_per_second: a.requests / seconds,
    errors: { total: f.total, server: f.server, client: f.client, by_code: a.errors },
    error_rate: a.requests ? f.server / a.requests : 0,
    client_error_rate: a.requests ? f.client / a.requests : 0,
    latency_ms: { p50: q(0.5), p95: q(0.95), p99: q(0.99), mean: sketch && sketch.count ? sketch.sum / sketch.count : null, relative_error: SKETCH_ALPHA },
    predicted_labels: a.labels,
  };
}

/** `v` to `digits` significant digits, for display (messages, reports); JSON answers carry full precision. */
export function round(v: number, digits = 6): number {
  return Number.isFinite(v) ? Number(v.toPrecision(digits)) : v;
}
