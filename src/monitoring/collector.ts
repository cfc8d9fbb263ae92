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
 * failed flush (object overloaded or unreachable) is put back into the buffer once and retried
 * with the next flush; if it fails again the batch is dropped and counted in
 * `edge_ml_monitoring_dropped_total`, so the buffer stays bounded and loss stays visible.
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
import { emptyAggregate, mergeInto, SAMPLE_CAP, SKETCH_ALPHA, type Aggregate } from "./aggregate";
import { packRequests } from "./prediction-log";
import { logShardName, MINUTE, monitoringConfig, shardName, type MonitoringConfig } from "./config";

export interface LogEntry {
  requestId: string;
  row: number;
  version: string;
  deployment?: string;
  variant?: string;
  /** Positive-class probability (binary), predicted-class probability (multiclass) or regression value. */
  score: number;
  label: string | null;
  at: number;
}

/** One answered request in the prediction log: one row per request, per-row scores in arrays. */
export interface LoggedRequest {
  requestId: string;
  version: string;
  deployment?: string;
  variant?: string;
  at: number;
  scores: number[];
  labels: (string | null)[];
}

export interface ShardBatch {
  model: string;
  version: string;
  /** minute start (ms) -> aggregate */
  buckets: Record<string, Aggregate>;
}

interface FeaturePlan {
  name: string;
  index: number;
  kind: "numeric" | "categorical";
  edges?: number[];
}
interface Plan {
  features: FeaturePlan[];
  scoreEdges: number[] | null;
}

const plans = new Map<string, Plan>();

function planOf(v: ModelVersion): Plan {
  const key = `${v.modelName}@${v.version}#${v.sha256}`;
  let plan = plans.get(key);
  if (!plan) {
    const ref = v.reference;
    plan = {
      features: v.featureSchema.features.map((f, index) => {
        const r = ref?.features?.[f.name];
        const numeric = f.type === "numeric" || f.type === "integer";
        return { name: f.name, index, kind: numeric ? "numeric" : "categorical", edges: numeric && r && r.type === "numeric" ? r.edges : undefined };
      }),
      scoreEdges: ref?.score?.edges ?? null,
    };
    if (plans.size > 200) plans.delete(plans.keys().next().value!);
    plans.set(key, plan);
  }
  return plan;
}

/**
 * Folds one answered request into an aggregate (exported for tests and the benchmark).
 *
 * Feature values (and the score sample) come from at most `featureRows` rows per request: for
 * larger batches a simple random sample of k of the n rows without replacement (Floyd's algorithm,
 * so periodic structure in a batch cannot alias with it), each sampled row weighted n/k
 * (Horvitz-Thompson), so histograms and samples still estimate the distribution over all rows
 * and big batches are not under-represented against single-row requests. Folding stays cheap for
 * big batches; request, row, score-histogram and label counts take every row.
 */
export function foldPrediction(agg: Aggregate, sketch: DDSketch, event: PredictionEvent, featureRows = Infinity): LoggedRequest {
  const v = event.dispatch.version;
  const plan = planOf(v);
  agg.requests++;
  agg.rows += event.predictions.length;
  sketch.add(Math.max(0, event.latencyMs));
  const sampled = sampleRows(event.predictions.length, featureRows);
  const w = sampled ? event.predictions.length / featureRows : 1;
  const logged: LoggedRequest = { requestId: event.requestId, version: v.version, deployment: event.dispatch.deployment, variant: event.dispatch.variant, at: event.at, scores: [], labels: [] };
  event.predictions.forEach((p, row) => {
    const score = "value" in p ? p.value : p.score;
    const label = "label" in p ? String(p.label) : null;
    if (label !== null) agg.labels[label] = (agg.labels[label] ?? 0) + 1;
    if (Number.isFinite(score)) {
      if (plan.scoreEdges) {
        const counts = (agg.score.counts ??= new Array(plan.scoreEdges.length - 1).fill(0));
        counts[binIndex(plan.scoreEdges, score)]++;
      }
      if (!sampled || sampled[row]) offer(agg.score.sample, score, SAMPLE_CAP.flush, Math.random, w);
    }
    logged.scores.push(score);
    logged.labels.push(label);
    if (sampled && !sampled[row]) return; // features: a weighted random sample of the rows
    const raw = event.rows?.[row] as Record<string, unknown> | undefined;
    const resolved = event.resolved?.[row];
    if (!raw && !resolved) return;
    for (const f of plan.features) {
      const value = raw ? raw[f.name] : resolved![f.index];
      const missing = value === undefined || value === null || (typeof value === "number" && Number.isNaN(value));
      if (f.kind === "numeric") {
        let fa = agg.features[f.name];
        if (!fa) fa = agg.features[f.name] = { type: "numeric", counts: f.edges ? new Array(f.edges.length - 1).fill(0) : [], missing: 0, sample: { seen: 0, values: [] } };
        if (fa.type !== "numeric") continue;
        if (missing) fa.missing += w;
        else {
          const x = Number(value);
          if (f.edges) fa.counts[binIndex(f.edges, x)] += w;
          offer(fa.sample, x, SAMPLE_CAP.flush, Math.random, w);
        }
      } else {
        let fa = agg.features[f.name];
        if (!fa) fa = agg.features[f.name] = { type: "categorical", counts: {}, missing: 0 };
        if (fa.type !== "categorical") continue;
        if (missing) fa.missing += w;
        else fa.counts[String(value)] = (fa.counts[String(value)] ?? 0) + w;
      }
    }
  });
  return logged;
}

/** Marks k of n rows chosen uniformly without replacement (Floyd), or undefined when k >= n. */
function sampleRows(n: number, k: number): Uint8Array | undefined {
  if (k >= n) return undefined;
  const mask = new Uint8Array(n);
  for (let j = n - k; j < n; j++) {
    const t = Math.floor(Math.random() * (j + 1));
    mask[mask[t] ? j : t] = 1;
  }
  return mask;
}

export function foldFailure(agg: Aggregate, sketch: DDSketch, event: FailureEvent) {
  agg.requests++;
  const key = `${event.status} ${event.code}`;
  agg.errors[key] = (agg.errors[key] ?? 0) + 1;
  sketch.add(Math.max(0, event.latencyMs));
}

interface Pending {
  batches: Map<string, ShardBatch>;
  logs: Map<string, { model: string; entries: LoggedRequest[] }>;
  /** Live latency sketches of the buffered aggregates (serialized into them at flush). */
  sketches: Map<Aggregate, DDSketch>;
  events: number;
  rows: number;
  retried?: boolean;
}

function emptyPending(): Pending {
  return { batches: new Map(), logs: new Map(), sketches: new Map(), events: 0, rows: 0 };
}

/**
 * The isolate's buffer. Isolate-scoped by design (like isolate metrics): it holds observations of
 * past requests, never state a request depends on.
 */
export class Collector {
  private pending = emptyPending();
  private timerArmed = false;
  private retry: Pending | null = null;
  /** Observations dropped after a failed retry (exported at /metrics). */
  dropped = 0;
  flushes = 0;
  /** This isolate's stats shard index (before modulo MONITOR_SHARDS). */
  readonly shardSeed = Math.floor(Math.random() * 65536);

  private bucketOf(cfg: MonitoringConfig, model: string, version: string, at: number): [Aggregate, DDSketch] {
    const name = shardName(model, version, this.shardSeed % cfg.statsShards);
    let batch = this.pending.batches.get(name);
    if (!batch) this.pending.batches.set(name, (batch = { model, version, buckets: {} }));
    const minute = String(Math.floor(at / MINUTE) * MINUTE);
    const agg = (batch.buckets[minute] ??= emptyAggregate());
    let sketch = this.pending.sketches.get(agg);
    if (!sketch) this.pending.sketches.set(agg, (sketch = new DDSketch(SKETCH_ALPHA)));
    return [agg, sketch];
  }

  async recordPrediction(env: Env, event: PredictionEvent): Promise<void> {
    const cfg = monitoringConfig(env);
    if (!cfg.enabled) return;
    const v = event.dispatch.version;
    const logged = foldPrediction(...this.bucketOf(cfg, v.modelName, v.version, event.at), event, cfg.featureRowsPerRequest);
    const name = logShardName(v.modelName, logged.requestId, cfg.logShards);
    let log = this.pending.logs.get(name);
    if (!log) this.pending.logs.set(name, (log = { model: v.modelName, entries: [] }));
    log.entries.push(logged);
    this.pending.rows += logged.scores.length;
    return this.afterRecord(env, cfg);
  }

  async recordFailure(env: Env, event: FailureEvent): Promise<void> {
    const cfg = monitoringConfig(env);
    if (!cfg.enabled || !event.version) return; // failures before a version was chosen belong to no shard
    foldFailure(...this.bucketOf(cfg, event.model, event.version, event.at), event);
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

  /** Ships everything buffered now. Called from waitUntil (and by tests). */
  async flush(env: Env): Promise<void> {
    const batch = this.pending;
    this.pending = emptyPending();
    for (const [agg, sketch] of batch.sketches) agg.latency = sketch.toJSON();
    batch.sketches.clear();
    if (this.retry) {
      mergePending(batch, this.retry);
      this.retry = null;
    }
    if (batch.events === 0 && batch.logs.size === 0) return;
    this.flushes++;
    const failed = emptyPending();
    const stats = [...batch.batches].map(async ([name, b]) => {
      try {
        await env.MONITOR_SHARD.getByName(name).ingest(b);
      } catch (error) {
        failed.batches.set(name, b);
        failed.events += Object.values(b.buckets).reduce((s, a) => s + a.requests, 0);
        console.error(JSON.stringify({ level: "warn", msg: "monitoring flush failed", shard: name, error: String(error) }));
      }
    });
    const logs = [...batch.logs].map(async ([name, l]) => {
      try {
        await env.PREDICTION_LOG.getByName(name).append(l.model, packRequests(l.entries));
      } catch (error) {
        failed.logs.set(name, l);
        failed.rows += l.entries.length;
        console.error(JSON.stringify({ level: "warn", msg: "prediction log flush failed", shard: name, error: String(error) }));
      }
    });
    await Promise.all([...stats, ...logs]);
    if (failed.batches.size || failed.logs.size) {
      if (batch.retried) this.dropped += failed.events + failed.rows;
      else this.retry = { ...failed, retried: true };
    }
  }
}

function mergePending(into: Pending & { retried?: boolean }, from: Pending) {
  into.retried = true;
  for (const [name, b] of from.batches) {
    const mine = into.batches.get(name);
    if (!mine) into.batches.set(name, b);
    else for (const [minute, agg] of Object.entries(b.buckets)) mine.buckets[minute] = mine.buckets[minute] ? mergeInto(mine.buckets[minute], agg, SAMPLE_CAP.minute) : agg;
  }
  for (const [name, l] of from.logs) {
    const mine = into.logs.get(name);
    if (!mine) into.logs.set(name, l);
    else mine.entries.push(...l.entries);
  }
  into.events += from.events;
  into.rows += from.rows;
}

export const collector = new Collector();
