/**
 * MonitorShard: one Durable Object per (model version, shard), named `model@version#k`.
 *
 * Storage (SQLite): time buckets of merged Aggregates in two tiers, minute buckets (kept 3 h;
 * they answer the 1 m / 5 m / 30 m / 1 h windows) and hour buckets (kept 8 days; 6 h / 24 h / 7 d);
 * cumulative totals (the Prometheus counters); and the labelled predictions joined by /v1/feedback
 * (kept PREDICTION_LOG_DAYS) for live performance. An hourly alarm purges what is past retention,
 * so storage is bounded by time, not by traffic: at most ~180 minute and ~192 hour buckets, each
 * holding at most 1,000 (minute) / 2,000 (hour) sampled values per numeric feature, i.e. tens of MB
 * per shard for a model with a dozen features, whatever the request rate.
 *
 * Ingest is a delta log: an isolate's batch is stored as it came (cost in proportion to the batch)
 * and the totals updated, in one transaction. Compaction folds the pending deltas into their minute
 * and hour buckets, writing each touched bucket once; it runs every COMPACT_EVERY ingests and
 * before every read, so reads always see every acknowledged batch and no background job can fall
 * behind. (Rewriting a full bucket at each ingest cost ~10 ms, which capped an object at ~100
 * ingests/s; now a bucket's serialization is shared by COMPACT_EVERY ingests.) The buckets being
 * written stay parsed in memory, so compaction costs merges and one serialization, not a parse;
 * a bucket takes all its pending deltas in one merge (`mergeAllInto`: one draw per sample, not one
 * per delta).
 *
 * Windows are bucket-aligned: a window of span S covers the buckets starting at or after
 * floor((now - S) / bucket) * bucket, i.e. between S and S + one bucket; `seconds` reports the
 * covered time so rates stay right.
 *
 * Throughput: isolates send one batch per flush interval, so one object absorbs thousands of
 * isolates; MONITOR_SHARDS splits a version further when that is not enough (reads merge shards).
 */
import { DurableObject } from "cloudflare:workers";
import { DDSketch, type SketchJSON } from "../stats/sketch";
import { emptyAggregate, mergeAll, mergeAllInto, SAMPLE_CAP, SKETCH_ALPHA, windowRandom, type Aggregate } from "./aggregate";
import type { ShardBatch } from "./collector";
import { DAY, HOUR, MINUTE, monitoringConfig } from "./config";

const MINUTE_RETENTION = 3 * HOUR;
const HOUR_RETENTION = 8 * DAY;
/** Pending deltas are folded into buckets once this many have accumulated (and before any read). */
const COMPACT_EVERY = 32;
/** How long batch ids are remembered (collectors retry a failed batch once, seconds later). */
const INGESTED_RETENTION = DAY;

/** A bucket being compacted into, and the deltas it takes (merged in one draw per sample). */
interface OpenBucket {
  tier: "m" | "h";
  start: number;
  agg: Aggregate;
  deltas: Aggregate[];
}

export interface WindowResult {
  aggregate: Aggregate;
  from: number;
  to: number;
  seconds: number;
}

export interface Totals {
  requests: number;
  rows: number;
  errors: Record<string, number>;
  latency: SketchJSON | null;
  labelled: number;
}

export interface LabelRow {
  requestId: string;
  row: number;
  predictedAt: number;
  labelledAt: number;
  score: number;
  predicted: string | null;
  actual: string;
}

/** Where a span's buckets live and where they start. */
export function windowStart(span: number, now: number): { tier: "m" | "h"; from: number } {
  if (span <= MINUTE_RETENTION) return { tier: "m", from: Math.floor((now - span) / MINUTE) * MINUTE };
  return { tier: "h", from: Math.floor((now - span) / HOUR) * HOUR };
}

export class MonitorShard extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private alarmSet = false;
  private touchedHour = 0;
  /** Parsed copies of the buckets being written (the current minute and hour), to skip re-parsing at each compaction. */
  private readonly hot = new Map<string, Aggregate>();
  /** Deltas not yet folded into buckets. */
  private pending = 0;
  /**
   * The name this shard is addressed by (`shardName`), which it registers under: the name its
   * batches carry (kept in `meta`), else `ctx.id.name`. Not `ctx.id.name` alone: inside an object
   * it is undefined when the object was reached by id string (`idFromString`, a stub from another
   * process) or the name is over 1,024 bytes.
   */
  private name: string | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`
        CREATE TABLE IF NOT EXISTS buckets (tier TEXT NOT NULL, start INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (tier, start));
        CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 1), requests INTEGER NOT NULL, rows INTEGER NOT NULL, errors TEXT NOT NULL, latency TEXT);
        CREATE TABLE IF NOT EXISTS labels (request_id TEXT NOT NULL, row INTEGER NOT NULL, predicted_at INTEGER NOT NULL, labelled_at INTEGER NOT NULL,
          score REAL NOT NULL, predicted TEXT, actual TEXT NOT NULL, PRIMARY KEY (request_id, row));
        CREATE INDEX IF NOT EXISTS labels_by_time ON labels (labelled_at);
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS deltas (id INTEGER PRIMARY KEY AUTOINCREMENT, minute INTEGER NOT NULL, data TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS ingested (id TEXT PRIMARY KEY, at INTEGER NOT NULL);
      `);
      this.pending = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM deltas").one().n;
      this.name = this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'name'").toArray()[0]?.value ?? ctx.id.name;
    });
  }

  /**
   * Stores a batch from one isolate as a delta and adds it to the totals; compacts every
   * COMPACT_EVERY batches. Idempotent by batch id: the id is recorded in the same transaction as
   * the data, so a batch re-sent after a failure that came after the commit (the alarm set-up or
   * the control-object call below, or a lost reply) is acknowledged without being counted again.
   * Ids are kept INGESTED_RETENTION, far longer than the collector retries.
   */
  async ingest(batch: ShardBatch): Promise<void> {
    let duplicate = false;
    this.ctx.storage.transactionSync(() => {
      if (batch.id !== undefined) {
        duplicate = this.sql.exec("INSERT OR IGNORE INTO ingested (id, at) VALUES (?, ?)", batch.id, Date.now()).rowsWritten === 0;
        if (duplicate) return;
      }
      this.sql.exec("INSERT OR IGNORE INTO meta (key, value) VALUES ('model', ?), ('version', ?)", batch.model, batch.version);
      if (batch.shard !== undefined && this.name === undefined) {
        this.sql.exec("INSERT OR IGNORE INTO meta (key, value) VALUES ('name', ?)", batch.shard);
        this.name = batch.shard;
      }
      const row = this.sql.exec<{ requests: number; rows: number; errors: string; latency: string | null }>("SELECT requests, rows, errors, latency FROM totals WHERE id = 1").toArray()[0];
      let requests = row?.requests ?? 0;
      let rows = row?.rows ?? 0;
      const errors: Record<string, number> = row ? JSON.parse(row.errors) : {};
      const latency = row?.latency ? DDSketch.fromJSON(JSON.parse(row.latency)) : new DDSketch(SKETCH_ALPHA);
      // The running totals take only counts, errors and latency: no need to merge histograms and samples.
      for (const [minuteKey, agg] of Object.entries(batch.buckets)) {
        this.sql.exec("INSERT INTO deltas (minute, data) VALUES (?, ?)", Number(minuteKey), JSON.stringify(agg));
        requests += agg.requests;
        rows += agg.rows;
        for (const [k, v] of Object.entries(agg.errors)) errors[k] = (errors[k] ?? 0) + v;
        if (agg.latency) latency.merge(agg.latency);
      }
      this.sql.exec("INSERT OR REPLACE INTO totals (id, requests, rows, errors, latency) VALUES (1, ?, ?, ?, ?)", requests, rows, JSON.stringify(errors), JSON.stringify(latency.toJSON()));
    });
    if (!duplicate) this.pending += Object.keys(batch.buckets).length; // counted once committed
    if (this.pending >= COMPACT_EVERY) this.compact();
    await this.ensureAlarm();
    await this.touchControl(batch.model, batch.version);
  }

  /** Folds every pending delta into its minute and hour buckets, writing each touched bucket once. */
  private compact() {
    if (this.pending === 0) return;
    try {
      this.ctx.storage.transactionSync(() => {
        const touched = new Map<string, OpenBucket>();
        let last = 0;
        for (const d of this.sql.exec<{ id: number; minute: number; data: string }>("SELECT id, minute, data FROM deltas ORDER BY id")) {
          const agg = JSON.parse(d.data) as Aggregate;
          this.bucket(touched, "m", d.minute).deltas.push(agg);
          this.bucket(touched, "h", Math.floor(d.minute / HOUR) * HOUR).deltas.push(agg);
          last = d.id;
        }
        for (const b of touched.values()) {
          mergeAllInto(b.agg, b.deltas, b.tier === "m" ? SAMPLE_CAP.minute : SAMPLE_CAP.hour);
          this.sql.exec("INSERT OR REPLACE INTO buckets (tier, start, data) VALUES (?, ?, ?)", b.tier, b.start, JSON.stringify(b.agg));
        }
        this.sql.exec("DELETE FROM deltas WHERE id <= ?", last);
      });
      this.pending = 0;
    } catch (error) {
      this.hot.clear(); // the transaction rolled back: cached copies may be ahead of storage
      throw error;
    }
  }

  /** The bucket being compacted into: from this pass, the in-memory copy, or storage. */
  private bucket(touched: Map<string, OpenBucket>, tier: OpenBucket["tier"], start: number): OpenBucket {
    const key = `${tier}:${start}`;
    let b = touched.get(key);
    if (b) return b;
    let agg = this.hot.get(key);
    if (!agg) {
      const existing = this.sql.exec<{ data: string }>("SELECT data FROM buckets WHERE tier = ? AND start = ?", tier, start).toArray()[0];
      agg = existing ? (JSON.parse(existing.data) as Aggregate) : emptyAggregate();
      this.hot.set(key, agg);
      if (this.hot.size > 8) this.hot.delete(this.hot.keys().next().value!);
    }
    touched.set(key, (b = { tier, start, agg, deltas: [] }));
    return b;
  }

  /**
   * Registers this version as active with the model's control object, at most once an hour, under
   * this shard's name (`name`). Reads find the shard by that name, so a shard that does not know it
   * registers nothing rather than a name that would send them elsewhere.
   */
  private async touchControl(model: string, version: string) {
    const hour = Math.floor(Date.now() / HOUR);
    if (hour === this.touchedHour) return;
    if (this.name === undefined) {
      console.error(JSON.stringify({ level: "error", msg: "monitor shard does not know its name; not registered", model, version }));
      return;
    }
    await this.env.MODEL_CONTROL.getByName(model).touch(version, this.name);
    this.touchedHour = hour;
  }

  private async ensureAlarm() {
    if (this.alarmSet) return;
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + HOUR);
    this.alarmSet = true;
  }

  /** The merged aggregate over the last `span` ms. */
  async window(span: number, now = Date.now()): Promise<WindowResult> {
    this.compact();
    const { tier, from } = windowStart(span, now);
    const rows = this.sql.exec<{ data: string }>("SELECT data FROM buckets WHERE tier = ? AND start >= ? ORDER BY start", tier, from).toArray();
    const random = windowRandom(this.name ?? this.ctx.id.toString(), tier, from, span);
    return { aggregate: mergeAll(rows.map((r) => JSON.parse(r.data) as Aggregate), SAMPLE_CAP.window, random), from, to: now, seconds: Math.max(1, (now - from) / 1000) };
  }

  /** Per-bucket aggregates over the last `span` ms (timeline charts); samples are dropped to keep it small. */
  async series(span: number, now = Date.now()): Promise<{ start: number; aggregate: Aggregate }[]> {
    this.compact();
    const { tier, from } = windowStart(span, now);
    return this.sql
      .exec<{ start: number; data: string }>("SELECT start, data FROM buckets WHERE tier = ? AND start >= ? ORDER BY start", tier, from)
      .toArray()
      .map((r) => {
        const a = JSON.parse(r.data) as Aggregate;
        a.score.sample = { seen: a.score.sample.seen, values: [] };
        delete a.score.ks;
        a.features = {};
        return { start: r.start, aggregate: a };
      });
  }

  async totals(): Promise<Totals> {
    const row = this.sql.exec<{ requests: number; rows: number; errors: string; latency: string | null }>("SELECT requests, rows, errors, latency FROM totals WHERE id = 1").toArray()[0];
    const labelled = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM labels").one().n;
    return { requests: row?.requests ?? 0, rows: row?.rows ?? 0, errors: row ? JSON.parse(row.errors) : {}, latency: row?.latency ? JSON.parse(row.latency) : null, labelled };
  }

  /** Stores joined labels (idempotent per request id and row). */
  async addLabels(rows: LabelRow[]): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      for (const r of rows) {
        this.sql.exec(
          "INSERT OR REPLACE INTO labels (request_id, row, predicted_at, labelled_at, score, predicted, actual) VALUES (?, ?, ?, ?, ?, ?, ?)",
          r.requestId, r.row, r.predictedAt, r.labelledAt, r.score, r.predicted, r.actual,
        );
      }
    });
    await this.ensureAlarm();
  }

  /** Labelled predictions whose label arrived at or after `since` (most recent `limit`). */
  async labelled(since: number, limit = 100_000): Promise<LabelRow[]> {
    return this.sql
      .exec<{ request_id: string; row: number; predicted_at: number; labelled_at: number; score: number; predicted: string | null; actual: string }>(
        "SELECT * FROM labels WHERE labelled_at >= ? ORDER BY labelled_at DESC LIMIT ?",
        since,
        limit,
      )
      .toArray()
      .map((r) => ({ requestId: r.request_id, row: r.row, predictedAt: r.predicted_at, labelledAt: r.labelled_at, score: r.score, predicted: r.predicted, actual: r.actual }));
  }

  /** Purges buckets and labels past retention; re-arms while anything is left. */
  async alarm(): Promise<void> {
    const now = Date.now();
    this.compact();
    this.hot.clear();
    const labelDays = monitoringConfig(this.env).logDays;
    this.sql.exec("DELETE FROM buckets WHERE tier = 'm' AND start < ?", now - MINUTE_RETENTION);
    this.sql.exec("DELETE FROM buckets WHERE tier = 'h' AND start < ?", now - HOUR_RETENTION);
    this.sql.exec("DELETE FROM labels WHERE labelled_at < ?", now - labelDays * DAY);
    this.sql.exec("DELETE FROM ingested WHERE at < ?", now - INGESTED_RETENTION);
    const left = this.sql.exec<{ n: number }>("SELECT (SELECT COUNT(*) FROM buckets) + (SELECT COUNT(*) FROM labels) AS n").one().n;
    this.alarmSet = left > 0;
    if (left > 0) await this.ctx.storage.setAlarm(now + HOUR);
  }

  /** For tests: bucket counts per tier. */
  async bucketCounts(): Promise<Record<string, number>> {
    this.compact();
    const rows = this.sql.exec<{ tier: string; n: number }>("SELECT tier, COUNT(*) AS n FROM buckets GROUP BY tier").toArray();
    return Object.fromEntries(rows.map((r) => [r.tier, r.n]));
  }
}
