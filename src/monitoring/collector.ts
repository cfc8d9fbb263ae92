/**
 * Per-isolate collection: prediction and failure events are folded into small aggregates (one per
 * model version and minute) and prediction-log entries, and shipped to the Durable Objects in
 * batches from `ctx.waitUntil`, never on the response path.
 *
 * Flushing: when the buffer holds `MONITORING_FLUSH_EVENTS` requests or `MONITORING_FLUSH_ROWS`
 * logged rows, the event that filled it flushes; otherwise the first event into an empty buffer
 * keeps its own waitUntil open for `MONITORING_FLUSH_MS` (default 2 s, far below the 30 s
 * waitUntil limit) and then flushes. So every observation leaves the isolate within
 * MONITORING_FLUSH_MS of being made, even if no further request arrives.
 *
 * Loss bound: what can be lost is what sits in the buffer when the isolate dies without running
 * its waitUntil (crash, memory limit, forced eviction): at most one flush interval's worth
 * (<= MONITORING_FLUSH_EVENTS requests, <= MONITORING_FLUSH_MS of this isolate's traffic). A
 * flush is one RPC per object; an RPC that fails (object overloaded or unreachable) is kept and
 * sent again with the next flush, and if that fails too its requests are dropped and counted in
 * `edge_ml_monitoring_dropped_total`, so the buffer stays bounded and loss stays visible.
 * Prediction-log appends are idempotent, so a retry after a lost reply cannot duplicate.
 *
 * Shard choice: each isolate picks one stats shard per version at start (MONITOR_SHARDS), so a
 * version's load spreads over shards; log entries go to the log shard of their request id
 * (PREDICTION_LOG_SHARDS), which is where /v1/feedback finds them.
 */
import type { FailureEvent, PredictionEvent } from "../serving/events";
import type { ModelVersion } from "../registry/store";
import { binIndex } from "../stats/drift";
import { offer } from "../stats/reservoir";
import { DDSketch } from "../stats/sketch";
import { emptyAggregate, emptyFeature, SAMPLE_CAP, SKETCH_ALPHA, type Aggregate, type FeatureAggregate } from "./aggregate";
import { RequestPacker, type PackedRequests } from "./prediction-log";
import { logShardNameAt, logShardOf, MINUTE, monitoringConfig, shardName, type MonitoringConfig } from "./config";

export interface ShardBatch {
  model: string;
  version: string;
  /** minute start (ms) -> aggregate */
  buckets: Record<string, Aggregate>;
}

interface FeaturePlan {
  name: string;
  kind: "numeric" | "categorical";
  edges?: number[];
  /** Missing values are imputed by validation, so only the raw row shows them as missing. */
  imputed: boolean;
}
interface Plan {
  features: FeaturePlan[];
  scoreEdges: number[] | null;
}

const plans = new Map<string, Plan>();
/** By version object too: the resolver hands out the same object for seconds at a time. */
const planOfObject = new WeakMap<ModelVersion, Plan>();

function planOf(v: ModelVersion): Plan {
  const cached = planOfObject.get(v);
  if (cached) return cached;
  const key = `${v.modelName}@${v.version}#${v.sha256}`;
  let plan = plans.get(key);
  if (!plan) {
    const ref = v.reference;
    plan = {
      features: v.featureSchema.features.map((f) => {
        const r = ref?.features?.[f.name];
        const numeric = f.type === "numeric" || f.type === "integer";
        return { name: f.name, kind: numeric ? "numeric" : "categorical", edges: numeric && r && r.type === "numeric" ? r.edges : undefined, imputed: f.missing.policy === "impute" };
      }),
      scoreEdges: ref?.score?.edges ?? null,
    };
    if (plans.size > 200) plans.delete(plans.keys().next().value!);
    plans.set(key, plan);
  }
  planOfObject.set(v, plan);
  return plan;
}

/**
 * Where observations of one version and minute are folded: the aggregate, its live latency sketch
 * (serialized into the aggregate at flush) and, once features were folded, the aggregate's entry
 * per planned feature.
 */
export interface FoldTarget {
  agg: Aggregate;
  sketch: DDSketch;
  slots?: (FeatureAggregate | null)[];
}

/**
 * Folds one answered request into an aggregate (exported for tests and the benchmark).
 *
 * Scores and predicted labels come from the request's columns (`PredictionColumns`), so the
 * per-row work is one pass over two typed arrays: every row counts in the score histogram and
 * the label counts.
 *
 * Feature values (and the score sample) come from at most `featureRows` rows per request: for
 * larger batches a simple random sample of k of the n rows without replacement (Floyd's algorithm,
 * so periodic structure in a batch cannot alias with it), each sampled row weighted n/k
 * (Horvitz-Thompson), so histograms and samples still estimate the distribution over all rows
 * and big batches are not under-represented against single-row requests. Values come from the
 * validated row (schema order); a feature the request left out and validation imputed counts as
 * missing, as the raw row shows it. `share` is the probability with which the caller chose to
 * fold this request's features at all (see `Collector`): sampled rows are weighted n/k/share, so
 * the estimates stay unbiased over requests too. Returns the number of rows sampled.
 */
export function foldPrediction(target: FoldTarget, event: PredictionEvent, featureRows = Infinity, share = 1): number {
  const { agg, sketch } = target;
  const plan = planOf(event.dispatch.version);
  const { rows, resolved } = event;
  const { scores, labels, classes } = event.columns;
  const n = scores.length;
  agg.requests++;
  agg.rows += n;
  sketch.add(Math.max(0, event.latencyMs));

  const scoreEdges = plan.scoreEdges;
  const scoreCounts = scoreEdges ? (agg.score.counts ??= new Array(scoreEdges.length - 1).fill(0)) : null;
  if (scoreCounts) {
    for (let row = 0; row < n; row++) {
      const x = scores[row];
      if (x - x === 0) scoreCounts[binIndex(scoreEdges!, x)]++; // finite
    }
  }
  if (classes.length) {
    if (perClass.length < classes.length) perClass = new Float64Array(classes.length);
    for (let row = 0; row < n; row++) perClass[labels[row]]++;
    for (let c = 0; c < classes.length; c++) {
      if (perClass[c] === 0) continue;
      agg.labels[classes[c]] = (agg.labels[classes[c]] ?? 0) + perClass[c];
      perClass[c] = 0;
    }
  }

  // Features and the score sample: a weighted random sample of the rows.
  const picked = sampleRows(n, featureRows);
  const count = picked ? picked.length : n;
  const w = (picked ? n / count : 1) / share;
  for (let i = 0; i < count; i++) {
    const row = picked ? picked[i] : i;
    const score = scores[row];
    if (score - score === 0) offer(agg.score.sample, score, SAMPLE_CAP.flush, Math.random, w);
    const raw = rows?.[row] as Record<string, unknown> | undefined;
    const values = resolved?.[row];
    if (!raw && !values) continue;
    const slots = (target.slots ??= featureSlots(agg, plan));
    for (let j = 0; j < slots.length; j++) {
      const fa = slots[j];
      if (!fa) continue;
      const f = plan.features[j];
      let value: unknown = values ? values[j] : raw![f.name];
      if (f.imputed && raw && raw[f.name] == null) value = undefined;
      if (value === undefined || value === null || (typeof value === "number" && Number.isNaN(value))) fa.missing += w;
      else if (fa.type === "numeric") {
        const x = Number(value);
        if (f.edges) fa.counts[binIndex(f.edges, x)] += w;
        offer(fa.sample, x, SAMPLE_CAP.flush, Math.random, w);
      } else {
        const key = String(value);
        fa.counts[key] = (fa.counts[key] ?? 0) + w;
      }
    }
  }
  return count;
}

/** Scratch label counts per class index (zero between calls). */
let perClass = new Float64Array(16);

/** The aggregate's entry for each planned feature, created on first use (null if its kind changed). */
function featureSlots(agg: Aggregate, plan: Plan): (FeatureAggregate | null)[] {
  return plan.features.map((f) => {
    const fa = (agg.features[f.name] ??= emptyFeature(f.kind, f.edges ? f.edges.length - 1 : 0));
    return fa.type === f.kind ? fa : null;
  });
}

/** k of the n row indexes, chosen uniformly without replacement (Floyd), or undefined when k >= n. */
function sampleRows(n: number, k: number): number[] | undefined {
  if (k >= n) return undefined;
  const picked: number[] = [];
  for (let j = n - k; j < n; j++) {
    const t = Math.floor(Math.random() * (j + 1));
    picked.push(picked.includes(t) ? j : t);
  }
  return picked;
}

export function foldFailure({ agg, sketch }: FoldTarget, event: FailureEvent) {
  agg.requests++;
  const key = `${event.status} ${event.code}`;
  agg.errors[key] = (agg.errors[key] ?? 0) + 1;
  sketch.add(Math.max(0, event.latencyMs));
}

/**
 * Rows whose features an isolate folded for one version in one minute, across flushes: the
 * sampling budget `MONITORING_FEATURE_ROWS_PER_MINUTE`.
 */
interface Budget {
  minute: number;
  rows: number;
}

/**
 * Once the minute's budget is spent, a request's features are folded with this probability (one
 * row, weighted n/share): at that traffic the minute already has far more rows than its reservoirs
 * keep, and the other requests cost only their score and label counts.
 */
export const LATE_FEATURE_SHARE = 1 / 16;

/** A buffered aggregate, and its version's sampling budget for the minute. */
interface Bucket extends FoldTarget {
  budget: Budget;
}

interface Pending {
  batches: Map<string, ShardBatch>;
  /** Per model, the packer of each log shard (by index) that received entries. */
  logs: Map<string, (RequestPacker | undefined)[]>;
  buckets: Map<Aggregate, Bucket>;
  events: number;
  rows: number;
}

function emptyPending(): Pending {
  return { batches: new Map(), logs: new Map(), buckets: new Map(), events: 0, rows: 0 };
}

/**
 * One RPC of a flush: a stats batch for a MonitorShard or packed requests for a PredictionLog,
 * with the observations it carries (requests) and whether it already failed once.
 */
type Send = { name: string; observations: number; retried: boolean } & (
  | { to: "shard"; batch: ShardBatch }
  | { to: "log"; model: string; packed: PackedRequests }
);

function deliver(env: Env, s: Send): Promise<void> {
  return s.to === "shard" ? env.MONITOR_SHARD.getByName(s.name).ingest(s.batch) : env.PREDICTION_LOG.getByName(s.name).append(s.model, s.packed);
}

/**
 * The isolate's buffer. Isolate-scoped by design (like isolate metrics): it holds observations of
 * past requests, never state a request depends on.
 */
export class Collector {
  private pending = emptyPending();
  private timerArmed = false;
  /**
   * Packers of the log shards the last flush wrote to, emptied and reused: their buffers have grown
   * to this isolate's flush size, so the next flush does not grow (and discard) them again.
   */
  private packers = new Map<string, RequestPacker>();
  /** Sends that failed once: retried with the next flush, dropped if they fail again. */
  private retry: Send[] = [];
  /** Observations dropped after a failed retry (exported at /metrics). */
  dropped = 0;
  flushes = 0;
  /** This isolate's stats shard index (before modulo MONITOR_SHARDS). */
  readonly shardSeed = Math.floor(Math.random() * 65536);

  /** Sampling budgets by `model@version`. */
  private budgets = new Map<string, Budget>();

  /** The bucket of the previous event: consecutive events mostly share version and minute. */
  private last: { pending: Pending; model: string; version: string; minute: number; bucket: Bucket } | null = null;

  private bucketOf(cfg: MonitoringConfig, model: string, version: string, at: number): Bucket {
    const minute = Math.floor(at / MINUTE) * MINUTE;
    const last = this.last;
    if (last && last.pending === this.pending && last.minute === minute && last.model === model && last.version === version) return last.bucket;
    const name = shardName(model, version, this.shardSeed % cfg.statsShards);
    let batch = this.pending.batches.get(name);
    if (!batch) this.pending.batches.set(name, (batch = { model, version, buckets: {} }));
    const agg = (batch.buckets[String(minute)] ??= emptyAggregate());
    let bucket = this.pending.buckets.get(agg);
    if (!bucket) this.pending.buckets.set(agg, (bucket = { agg, sketch: new DDSketch(SKETCH_ALPHA), budget: this.budgetOf(`${model}@${version}`, minute) }));
    this.last = { pending: this.pending, model, version, minute, bucket };
    return bucket;
  }

  /** The budget of a version for a minute (a later minute starts a new one; a late event shares the current one). */
  private budgetOf(key: string, minute: number): Budget {
    let budget = this.budgets.get(key);
    if (!budget) {
      if (this.budgets.size > 200) this.budgets.delete(this.budgets.keys().next().value!);
      this.budgets.set(key, (budget = { minute, rows: 0 }));
    } else if (minute > budget.minute) {
      budget.minute = minute;
      budget.rows = 0;
    }
    return budget;
  }

  async recordPrediction(env: Env, event: PredictionEvent): Promise<void> {
    const cfg = monitoringConfig(env);
    if (!cfg.enabled) return;
    const { version: v, deployment, variant } = event.dispatch;
    let logs = this.pending.logs.get(v.modelName);
    if (!logs) this.pending.logs.set(v.modelName, (logs = []));
    const shard = logShardOf(event.requestId, cfg.logShards);
    const packer = (logs[shard] ??= this.packers.get(logShardNameAt(v.modelName, shard)) ?? new RequestPacker());
    packer.add({ requestId: event.requestId, version: v.version, deployment, variant, at: event.at, features: event.features && JSON.stringify(event.features) }, event.columns);
    const b = this.bucketOf(cfg, v.modelName, v.version, event.at);
    const budget = b.budget;
    if (budget.rows < cfg.featureRowsPerMinute) budget.rows += foldPrediction(b, event, cfg.featureRowsPerRequest);
    else budget.rows += foldPrediction(b, event, Math.random() < LATE_FEATURE_SHARE ? 1 : 0, LATE_FEATURE_SHARE);
    this.pending.rows += event.columns.scores.length;
    return this.afterRecord(env, cfg);
  }

  async recordFailure(env: Env, event: FailureEvent): Promise<void> {
    const cfg = monitoringConfig(env);
    if (!cfg.enabled || !event.version) return; // failures before a version was chosen belong to no shard
    foldFailure(this.bucketOf(cfg, event.model, event.version, event.at), event);
    return this.afterRecord(env, cfg);
  }

  private async afterRecord(env: Env, cfg: MonitoringConfig): Promise<void> {
    this.pending.events++;
    if (this.pending.events >= cfg.flushEvents || this.pending.rows >= cfg.flushRows) return this.flush(env);
    if (this.timerArmed) return;
    this.timerArmed = true;
    await new Promise((resolve) => setTimeout(resolve, cfg.flushMs));
    this.timerArmed = false;
    if (this.pending.events > 0) await this.flush(env);
  }

  /** Ships everything buffered now, and retries what failed last time. Called from waitUntil (and by tests). */
  async flush(env: Env): Promise<void> {
    const batch = this.pending;
    this.pending = emptyPending();
    for (const b of batch.buckets.values()) b.agg.latency = b.sketch.toJSON();
    const sends: Send[] = this.retry;
    this.retry = [];
    for (const [name, b] of batch.batches) {
      sends.push({ to: "shard", name, batch: b, observations: Object.values(b.buckets).reduce((n, a) => n + a.requests, 0), retried: false });
    }
    this.packers = new Map(); // those used in this flush are kept for the next
    for (const [model, packers] of batch.logs) {
      packers.forEach((packer, shard) => {
        if (!packer) return;
        const name = logShardNameAt(model, shard);
        sends.push({ to: "log", name, model, packed: packer.pack(), observations: packer.requests, retried: false });
        packer.reset();
        this.packers.set(name, packer);
      });
    }
    if (sends.length === 0) return;
    this.flushes++;
    await Promise.all(
      sends.map(async (s) => {
        try {
          await deliver(env, s);
        } catch (error) {
          if (s.retried) this.dropped += s.observations;
          else this.retry.push({ ...s, retried: true });
          console.error(JSON.stringify({ level: "warn", msg: `monitoring flush to ${s.to} failed`, shard: s.name, retried: s.retried, error: String(error) }));
        }
      }),
    );
  }
}

export const collector = new Collector();
