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
 * Prediction-log appends are idempotent (by request id) and stats ingests too (by batch id), so a
 * retry after a lost reply, or after a failure that came after the object committed, cannot
 * count twice.
 *
 * Shard choice: each isolate picks one stats shard per version at start (MONITOR_SHARDS), so a
 * version's load spreads over shards; log entries go to the log shard of their request id
 * (PREDICTION_LOG_SHARDS), which is where /v1/feedback finds them.
 */
import type { FailureEvent, PredictionEvent } from "../serving/events";
import type { ModelVersion } from "../registry/store";
import { binIndex } from "../stats/drift";
import { isLevelColumn, levelsOf } from "../inference/features";
import { StreamSampler } from "../stats/reservoir";
import { KsGrid } from "../stats/tests";
import { DDSketch } from "../stats/sketch";
import { emptyAggregate, emptyFeature, SAMPLE_CAP, SKETCH_ALPHA, type Aggregate, type FeatureAggregate } from "./aggregate";
import { RequestPacker, type PackedRequests } from "./prediction-log";
import { logShardNameAt, logShardOf, MINUTE, monitoringConfig, shardName, type MonitoringConfig } from "./config";

export interface ShardBatch {
  /**
   * Unique per batch (a retry re-sends the same id): MonitorShard.ingest counts a batch once
   * however often it arrives, since a send can fail after the object committed it.
   */
  id?: string;
  /** The name the batch was sent to (`shardName`): the shard registers under it (see MonitorShard.touchControl). */
  shard?: string;
  model: string;
  version: string;
  /** minute start (ms) -> aggregate */
  buckets: Record<string, Aggregate>;
}

interface FeaturePlan {
  name: string;
  kind: "numeric" | "categorical";
  /** The reference's bin edges (numeric features with a reference). */
  edges?: Float64Array;
  /** The cells of the reference sample for exact KS (numeric features whose reference has a sample). */
  grid?: KsGrid;
  /** With both edges and a grid: the bin of each grid cell (-1: look the value up in `edges`). One byte per cell when the bins allow. */
  cellBins?: CellBins;
  /** Categorical and boolean features: what their columns' indexes name (`levelsOf`); counts are kept dense by index while a request is folded. */
  levels?: string[];
}
interface Plan {
  features: FeaturePlan[];
  scoreEdges: Float64Array | null;
  scoreGrid: KsGrid | null;
  scoreCellBins: CellBins | null;
}

/** Bins by KS cell (`KsGrid.binsOfCells`), in bytes when there are at most 127 bins: the fold reads it for every value, so smaller is fewer cache lines. */
type CellBins = Int8Array | Int32Array;
const compactBins = (table: Int32Array, edges: ArrayLike<number>): CellBins => (edges.length - 1 <= 127 ? Int8Array.from(table) : table);

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
      features: v.featureSchema.features.map((f): FeaturePlan => {
        const r = ref?.features?.[f.name];
        const numeric = !isLevelColumn(f);
        const nr = numeric && r && r.type === "numeric" ? r : undefined;
        const edges = nr ? Float64Array.from(nr.edges) : undefined;
        const grid = nr?.sample?.length ? new KsGrid(nr.sample) : undefined;
        return {
          name: f.name,
          kind: numeric ? "numeric" : "categorical",
          edges,
          grid,
          cellBins: edges && grid ? compactBins(grid.binsOfCells(edges), edges) : undefined,
          levels: numeric ? undefined : levelsOf(f),
        };
      }),
      scoreEdges: ref?.score?.edges ? Float64Array.from(ref.score.edges) : null,
      scoreGrid: ref?.score?.sample?.length ? new KsGrid(ref.score.sample) : null,
      scoreCellBins: null,
    };
    if (plan.scoreEdges && plan.scoreGrid) plan.scoreCellBins = compactBins(plan.scoreGrid.binsOfCells(plan.scoreEdges), plan.scoreEdges);
    if (plans.size > 200) plans.delete(plans.keys().next().value!);
    plans.set(key, plan);
  }
  planOfObject.set(v, plan);
  return plan;
}

/** A feature's entry in the aggregate being folded, and (numeric) its KS cell counts, or without a reference sample the sampler of its reservoir. */
interface FeatureSlot {
  fa: FeatureAggregate;
  sampler: StreamSampler | null;
  /**
   * Dense counts per KsGrid cell while folding; written to `fa.ks` (sparse) by `sealTarget`, which
   * also adds them to the histogram bins (`cellBins`) of the cells no bin edge splits.
   */
  cells: Uint32Array | null;
  cellBins: CellBins | null;
}

/**
 * Where observations of one version and minute are folded: the aggregate, its live latency sketch
 * (serialized into the aggregate at flush) and, once features were folded, the aggregate's entry
 * per planned feature and the stream samplers of its reservoirs.
 */
export interface FoldTarget {
  agg: Aggregate;
  sketch: DDSketch;
  slots?: (FeatureSlot | null)[];
  scoreSampler?: StreamSampler;
  scoreCells?: Uint32Array | null;
  scoreCellBins?: CellBins | null;
}

/**
 * Writes the dense KS cell counts of a target into its aggregate (sparse) and their histogram bins,
 * before it is shipped (the aggregate's counts are complete only after this).
 */
export function sealTarget(target: FoldTarget) {
  target.agg.latency = target.sketch.toJSON();
  if (target.scoreCells) target.agg.score.ks = seal(target.scoreCells, target.scoreCellBins ?? null, target.agg.score.counts, target.agg.score.ks);
  for (const slot of target.slots ?? []) if (slot?.cells && slot.fa.type === "numeric") slot.fa.ks = seal(slot.cells, slot.cellBins, slot.fa.counts, slot.fa.ks);
}

/** Adds dense cell counts to sparse KS counts and, for cells with a bin, to the histogram; zeroes them. */
function seal(cells: Uint32Array, cellBins: CellBins | null, counts: number[] | null | undefined, into: Record<string, number> = {}): Record<string, number> {
  for (let i = 0; i < cells.length; i++) {
    const c = cells[i];
    if (c === 0) continue;
    into[i] = (into[i] ?? 0) + c;
    if (cellBins !== null && counts != null && cellBins[i] >= 0) counts[cellBins[i]] += c;
  }
  cells.fill(0);
  return into;
}

/** What the fold reads of a prediction event (all of it fresh per request: validation's columns and the decoder's score arrays are never reused). */
export type FoldInput = Pick<PredictionEvent, "route" | "resolved" | "columns" | "latencyMs"> & { dispatch: { version: ModelVersion } };

/**
 * Folds one answered request into an aggregate (exported for tests and the benchmark).
 *
 * Every row counts, whatever the batching: the score histogram and label counts come from the
 * request's columns (`PredictionColumns`, two typed arrays), and every row's feature values go
 * into the feature histograms (numeric: a binary search of the reference edges, a handful of
 * comparisons; categorical: one count by category) and missing counts, so PSI, chi-square,
 * Jensen-Shannon and missing rates are exact counts over all rows: the same data sent as 1-row or
 * 1,000-row requests gives the same statistics. KS takes every row too: each value is counted in
 * its cell of the reference sample (`KsGrid`, one binary search), which gives the exact two-sample
 * statistic against all rows. Only the reservoirs sample, with a uniform stream sampler (Algorithm
 * L: one comparison per value, a random draw only for the few values it keeps): the score sample
 * (canary analysis compares raw scores) and, for a numeric feature whose reference has no sample
 * (so no KS cells), its feature sample. A feature with KS cells keeps no values, only the count of
 * rows (`sample.seen`): the cells already give KS on every row, and values kept beside them were
 * never read, yet were shipped, stored, merged and parsed with every flush, compaction and window
 * read. Values come from validation's columns (`Resolved`: numbers, or
 * category indexes, schema order), never from the request's row objects; a value the request left
 * out counts as missing (validation marks it), whatever its policy filled in. No allocation per
 * row.
 */
export function foldPrediction(target: FoldTarget, event: FoldInput): void {
  const { agg, sketch } = target;
  const plan = planOf(event.dispatch.version);
  const { resolved } = event;
  const { scores, labels, classes } = event.columns;
  const n = scores.length;
  // Batch chunks (route "batch") are rows, not requests: their volume and scores count, but not
  // in request counts or latency, which SLAs and alerts read for online traffic.
  if (event.route !== "batch") {
    agg.requests++;
    sketch.add(Math.max(0, event.latencyMs));
  }
  agg.rows += n;

  const scoreEdges = plan.scoreEdges;
  const scoreCounts = scoreEdges ? (agg.score.counts ??= new Array(scoreEdges.length - 1).fill(0)) : null;
  const scoreSampler = (target.scoreSampler ??= new StreamSampler(agg.score.sample, SAMPLE_CAP.flush));
  const scoreGrid = plan.scoreGrid;
  const scoreCellBins = plan.scoreCellBins;
  if (target.scoreCells === undefined) {
    target.scoreCells = scoreGrid ? new Uint32Array(scoreGrid.cells) : null;
    target.scoreCellBins = scoreCounts ? scoreCellBins : null;
  }
  const scoreCells = target.scoreCells;
  for (let row = 0; row < n; row++) {
    const x = scores[row];
    if (x - x !== 0) continue; // not finite
    if (scoreCells) {
      // The cell's count reaches its bin at seal; a value in a cell an edge splits is binned now.
      const cell = scoreGrid!.cellOf(x);
      scoreCells[cell]++;
      if (scoreCounts && scoreCellBins![cell] < 0) scoreCounts[binIndex(scoreEdges!, x)]++;
    } else if (scoreCounts) scoreCounts[binIndex(scoreEdges!, x)]++;
    scoreSampler.offer(x);
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

  if (!resolved) return;
  const slots = (target.slots ??= featureSlots(agg, plan));
  for (let j = 0; j < slots.length; j++) {
    const slot = slots[j];
    if (!slot) continue;
    const f = plan.features[j];
    const fa = slot.fa;
    // Validation's record of the rows that left this value out: they count as missing whatever
    // the policy filled in (the model saw the impute value; the data had nothing).
    const absent = resolved.missing[j];
    let missing = 0;
    if (fa.type === "numeric") {
      const column = resolved.columns[j] as Float64Array;
      const edges = f.edges;
      const counts = fa.counts;
      const sampler = slot.sampler;
      let counted = 0;
      const grid = f.grid;
      const cells = slot.cells;
      const cellBins = f.cellBins;
      for (let row = 0; row < n; row++) {
        const x = column[row];
        if ((absent !== null && absent[row] === 1) || x !== x) {
          missing++;
          continue;
        }
        if (cells) {
          // One lookup gives the KS cell, whose count reaches its histogram bin at seal (binIndex
          // now only for a value in one of the few cells an edge splits).
          const cell = grid!.cellOf(x);
          cells[cell]++;
          if (edges && cellBins![cell] < 0) counts[binIndex(edges, x)]++;
        } else if (edges) counts[binIndex(edges, x)]++;
        if (sampler) sampler.offer(x);
        else counted++;
      }
      if (!sampler) fa.sample.seen += counted;
    } else {
      // Levels are counted in a dense scratch array while the request is folded and added to the
      // aggregate's counts after it, in order of first appearance (so the counts object is the one
      // per-row increments would build).
      const column = resolved.columns[j] as Int32Array;
      const levels = f.levels!;
      if (scratch.length < levels.length) {
        scratch = new Float64Array(levels.length);
        order = new Int32Array(levels.length);
      }
      let seen = 0;
      for (let row = 0; row < n; row++) {
        const k = column[row];
        if ((absent !== null && absent[row] === 1) || k < 0) {
          missing++;
          continue;
        }
        if (scratch[k]++ === 0) order[seen++] = k;
      }
      writeLevels(fa.counts, levels, seen);
    }
    fa.missing += missing;
  }
}

/** Scratch label counts per class index (zero between calls). */
let perClass = new Float64Array(16);
/** Scratch counts per level index of the feature being folded (zero between features), and the indexes in order of first appearance. */
let scratch = new Float64Array(16);
let order = new Int32Array(16);

/** Adds the first `seen` scratch counts (in `order`) to a categorical aggregate's counts and zeroes them. */
function writeLevels(counts: Record<string, number>, levels: string[], seen: number): void {
  for (let i = 0; i < seen; i++) {
    const k = order[i];
    const key = levels[k];
    counts[key] = (counts[key] ?? 0) + scratch[k];
    scratch[k] = 0;
  }
}

/** The aggregate's entry for each planned feature, created on first use (null if its kind changed). */
function featureSlots(agg: Aggregate, plan: Plan): (FeatureSlot | null)[] {
  return plan.features.map((f) => {
    const fa = (agg.features[f.name] ??= emptyFeature(f.kind, f.edges ? f.edges.length - 1 : 0));
    if (fa.type !== f.kind) return null;
    const numeric = fa.type === "numeric";
    const cells = numeric && f.grid ? new Uint32Array(f.grid.cells) : null;
    return { fa, sampler: numeric && !cells ? new StreamSampler(fa.sample, SAMPLE_CAP.flush) : null, cells, cellBins: cells && f.edges ? f.cellBins! : null };
  });
}

export function foldFailure({ agg, sketch }: FoldTarget, event: FailureEvent) {
  agg.requests++;
  const key = `${event.status} ${event.code}`;
  agg.errors[key] = (agg.errors[key] ?? 0) + 1;
  sketch.add(Math.max(0, event.latencyMs));
}

/** A buffered aggregate. */
type Bucket = FoldTarget;

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

async function deliver(env: Env, s: Send): Promise<void> {
  if (s.to === "shard") await env.MONITOR_SHARD.getByName(s.name).ingest(s.batch);
  else await env.PREDICTION_LOG.getByName(s.name).append(s.model, s.packed);
}

/** Predictions held before they are logged and folded together (see `Collector.foldHeld`): rows, and requests. */
const HOLD_ROWS = 4096;
const HOLD_REQUESTS = 128;

/** A prediction held for `Collector.foldHeld`: its aggregate, what the fold reads, and what its log entry records. */
interface Held {
  bucket: Bucket;
  event: FoldInput;
  requestId: string;
  at: number;
  deployment: string | undefined;
  variant: string | undefined;
  features: PredictionEvent["features"];
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

  /** The bucket of the previous event: consecutive events mostly share version and minute. */
  private last: { pending: Pending; model: string; version: string; minute: number; bucket: Bucket } | null = null;

  private bucketOf(cfg: MonitoringConfig, model: string, version: string, at: number): Bucket {
    const minute = Math.floor(at / MINUTE) * MINUTE;
    const last = this.last;
    if (last && last.pending === this.pending && last.minute === minute && last.model === model && last.version === version) return last.bucket;
    const name = shardName(model, version, this.shardSeed % cfg.statsShards);
    let batch = this.pending.batches.get(name);
    if (!batch) this.pending.batches.set(name, (batch = { id: crypto.randomUUID(), shard: name, model, version, buckets: {} }));
    const agg = (batch.buckets[String(minute)] ??= emptyAggregate());
    let bucket = this.pending.buckets.get(agg);
    if (!bucket) this.pending.buckets.set(agg, (bucket = { agg, sketch: new DDSketch(SKETCH_ALPHA) }));
    this.last = { pending: this.pending, model, version, minute, bucket };
    return bucket;
  }

  async recordPrediction(env: Env, event: PredictionEvent): Promise<void> {
    const cfg = monitoringConfig(env);
    const { version: v, deployment, variant } = event.dispatch;
    if (!cfg.enabled || cfg.excluded.has(v.modelName)) return;
    // Held, then logged and folded with others (`foldHeld`): only what those read, not the request's rows.
    this.held.push({
      bucket: this.bucketOf(cfg, v.modelName, v.version, event.at),
      event: { route: event.route, resolved: event.resolved, columns: event.columns, latencyMs: event.latencyMs, dispatch: { version: v } },
      requestId: event.requestId,
      at: event.at,
      deployment,
      variant,
      features: event.features,
    });
    this.heldRows += event.columns.scores.length;
    if (this.heldRows >= HOLD_ROWS || this.held.length >= HOLD_REQUESTS) this.foldHeld(cfg);
    this.pending.rows += event.columns.scores.length;
    return this.afterRecord(env, cfg);
  }

  private logRequest(cfg: MonitoringConfig, h: Held) {
    const v = h.event.dispatch.version;
    let logs = this.pending.logs.get(v.modelName);
    if (!logs) this.pending.logs.set(v.modelName, (logs = []));
    const shard = logShardOf(h.requestId, cfg.logShards);
    const packer = (logs[shard] ??= this.packers.get(logShardNameAt(v.modelName, shard)) ?? new RequestPacker());
    packer.add({ requestId: h.requestId, version: v.version, deployment: h.deployment, variant: h.variant, at: h.at, features: h.features && JSON.stringify(h.features) }, h.event.columns);
  }

  async recordFailure(env: Env, event: FailureEvent): Promise<void> {
    const cfg = monitoringConfig(env);
    if (!cfg.enabled || !event.version || cfg.excluded.has(event.model)) return; // failures before a version was chosen belong to no shard
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

  /**
   * Predictions are logged and folded in batches, not one by one: a request handled on its own
   * finds the fold's tables (reference cells and bins, counts) and the log's buffers out of the
   * CPU's caches after parsing, inference and serialization, and measured in the worker that costs
   * several times what handling the same requests back to back does (`bench:monitoring`'s latency
   * pairs; `bench:fold` folds back to back). What is held is each request's id, version and
   * validation's and the decoder's typed arrays, at most HOLD_ROWS rows or HOLD_REQUESTS requests;
   * every flush takes what is held first, so what ships and when is unchanged.
   */
  private held: Held[] = [];
  private heldRows = 0;

  private foldHeld(cfg: MonitoringConfig): void {
    const held = this.held;
    this.held = [];
    this.heldRows = 0;
    // Batch rows are not logged for delayed feedback: the job's output file holds them.
    for (const h of held) if (h.event.route !== "batch") this.logRequest(cfg, h);
    for (const h of held) foldPrediction(h.bucket, h.event);
  }

  /** Ships everything buffered now, and retries what failed last time. Called from waitUntil (and by tests). */
  async flush(env: Env): Promise<void> {
    this.foldHeld(monitoringConfig(env));
    const batch = this.pending;
    this.pending = emptyPending();
    for (const b of batch.buckets.values()) sealTarget(b);
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
