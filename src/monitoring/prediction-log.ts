/**
 * PredictionLog: the log of answered predictions that delayed labels are joined to, one Durable
 * Object per (model, shard) named `model#k`, k = FNV-1a(request id) mod PREDICTION_LOG_SHARDS, so
 * /v1/feedback finds a request's entries without an index.
 *
 * One SQLite row per request, so a 1,000-row batch costs one row: per-row scores as a BLOB of
 * Float32 (when every score of the flush is exactly a float32, as ONNX float outputs are) or
 * Float64, per-row predicted labels as a BLOB of Uint8 (<= 256 classes in every request) or
 * Uint32 indexes into the request's distinct labels (`classes`, JSON); `score_bytes` and
 * `label_bytes` record the widths. An isolate packs a whole flush (`RequestPacker`) into one JSON
 * list of request metadata and two buffers, and one statement stores it; joined labels go to a
 * second table keyed by (request id, row).
 * Storage: `predictions` is a WITHOUT ROWID table keyed by request id, with no other index, so
 * logging a request writes one row (SQLite-backed Durable Objects bill rows written, and every
 * index a write touches is one more: the table this replaces, `logged_requests`, a rowid table with
 * an index on the id and one on the time, wrote three per request). Retention therefore purges by
 * id range: a UUIDv7 starts with its time, so every id below the cutoff's prefix is older than the
 * cutoff. Only UUIDv7 ids (the ones app.ts generates) are logged; any other id is skipped at
 * append, since a range purge could not tell its age. A shard written by an older version keeps
 * its `logged_requests` table readable (look-ups fall back to it) until its last entry ages out,
 * then drops it.
 * Entries are kept PREDICTION_LOG_DAYS (default 30) after the prediction, labelled or not; no
 * other purge exists, so a logged prediction is never dropped while its label can still arrive.
 * Appends are idempotent (INSERT OR IGNORE on request id), so a retried flush cannot duplicate.
 * Labels that arrive before their prediction (a caller labelling faster than the isolate's flush
 * interval) are kept in `pending_outcomes` for PENDING_LABEL_MS and joined by the append that
 * logs their request, which forwards them to the version's stats shard and the feedback listeners
 * as /v1/feedback would have; the feedback answer lists them as `pending`. At most
 * MAX_PENDING_LABELS wait per shard (beyond that a label is `not_found`, so the caller retries).
 * Every logged request id is one the worker generated (app.ts), a UUIDv7 that carries its time, so
 * a label waits only for an id that could still be logged: a UUIDv7 at most PENDING_LABEL_MS old.
 * A label for an older UUIDv7, or for any id that is not a UUIDv7 (a caller's own `x-request-id`,
 * a typo), can never join and is `not_found` at once.
 * Capacity: ~100 bytes + 5 bytes a row (float32 scores), so one shard holds ~100 M single-row
 * requests within the 10 GB object limit; raise PREDICTION_LOG_SHARDS for more (changing it
 * re-homes future entries). Request ids key the table: generated ids are UUIDv7 (app.ts), so
 * the table grows at its end rather than at random pages.
 */
import { DurableObject } from "cloudflare:workers";
import type { PredictionColumns } from "../inference/outputs";
import { notifyFeedback } from "../serving/events";
import { DAY, MINUTE, monitoringConfig, shardName } from "./config";
import type { LabelRow } from "./shard";

/** How long a label may wait for its prediction to reach the log (far above the 2 s flush interval and a retried flush). */
export const PENDING_LABEL_MS = 10 * MINUTE;
/** Labels waiting per log shard, at most. */
export const MAX_PENDING_LABELS = 100_000;

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/**
 * Whether a prediction with this request id could still reach the log: only a UUIDv7 (the ids the
 * worker generates) at most PENDING_LABEL_MS old. Ids that are not UUIDv7 are never logged.
 */
function couldStillArrive(requestId: string, now: number): boolean {
  if (!UUID_V7.test(requestId)) return false;
  const at = parseInt(requestId.slice(0, 8) + requestId.slice(9, 13), 16);
  return at >= now - PENDING_LABEL_MS;
}

/** The first 13 characters of a UUIDv7 made at `at` ms: every UUIDv7 made earlier sorts below it (lowercase hex, as app.ts writes them). */
export function uuidV7Prefix(at: number): string {
  const hex = Math.max(0, Math.floor(at)).toString(16).padStart(12, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}`;
}

/** SQL condition: `column` is shaped as a lowercase UUIDv7 (the only ids the log keeps; see the header). Short patterns: workerd caps GLOB pattern length. */
const isUuidV7Sql = (c: string) => `(length(${c}) = 36 AND substr(${c}, 9, 1) = '-' AND substr(${c}, 14, 2) = '-7' AND NOT substr(${c}, 1, 8) || substr(${c}, 10, 4) GLOB '*[^0-9a-f]*')`;

/** One logged row of a request, as /v1/feedback joins it. */
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
  /** Prediction by entity id: the entity, the tier that served each feature, and which fell back. */
  features?: { entity_id: string; sources: Record<string, string>; fell_back: string[] };
}

/** The request a logged prediction answered. */
export interface LoggedRequest {
  requestId: string;
  version: string;
  deployment?: string;
  variant?: string;
  at: number;
  /** Prediction by entity id: its feature provenance as compact JSON (entity_id, sources, fell_back); absent otherwise. */
  features?: string;
}

/** What `RequestPacker.pack` produces and `PredictionLog.append` stores (see RequestPacker). */
export interface PackedRequests {
  /** JSON list of `PackedMeta` tuples. */
  meta: string;
  /** One score per row, all requests back to back: Float32 or Float64 (`scoreBytes`). */
  scores: ArrayBuffer;
  scoreBytes: 4 | 8;
  /** One label per row, an index into the row's request's `classes` (none for regressors): Uint8 or Uint32 (`labelBytes`). */
  labels: ArrayBuffer;
  labelBytes: 1 | 4;
}

/** [request id, version, deployment, variant, at, first row in the buffers, rows, classes, feature provenance JSON or null] (a tuple: shorter to write and parse than an object). */
type PackedMeta = [string, string, string | undefined, string | undefined, number, number, number, string[], string | null];

/**
 * Packs answered requests for one `append`. Scores never pass through JSON: formatting and
 * parsing 100 doubles per request cost ~35 us of CPU in the isolate and SQLite together; as
 * buffers sliced by substr() in the INSERT, a 100-row request costs ~8 us, and ~4.4 us with
 * float32 scores, uint8 labels and metadata as tuples (measured in workerd).
 *
 * What an isolate holds between flushes is kept small and allocation-free per request, since it
 * lives long enough to be promoted by the garbage collector:
 * - rows are written at their stored width as they arrive: Float32 scores and Uint8 labels,
 *   widened once (to Float64 / Uint32) when a score that is not exactly a float32, or a request
 *   using more than 256 classes, arrives; 5 bytes a row in the usual case, and packing is a copy;
 * - request metadata is columnar: ids, times and row counts, and indexes into the distinct
 *   (version, deployment, variant) contexts and class lists of the flush (a handful each). The
 *   JSON tuples `append` reads are built once, at `pack`.
 */
export class RequestPacker {
  private scores: Float32Array | Float64Array = new Float32Array(256);
  private labels: Uint8Array | Uint32Array = new Uint8Array(256);
  private ids: string[] = [];
  /** Feature provenance per request (null for requests that sent their features). */
  private provenance: (string | null)[] = [];
  private at = new Float64Array(64);
  private counts = new Uint32Array(64);
  private contextOf = new Uint32Array(64);
  private classesOf = new Uint32Array(64);
  private contexts: [string, string | undefined, string | undefined][] = [];
  private classLists: string[][] = [];
  /** Model class index -> index into the current request's classes (-1: not used yet). */
  private remap = new Int32Array(0);
  /** The current request's classes, in order of first use (scratch). */
  private used: number[] = [];
  private names: string[] = [];
  /** Rows packed so far. */
  rows = 0;

  get requests(): number {
    return this.ids.length;
  }

  /**
   * Packs one request: its scores are copied as they are, its labels re-indexed into the classes
   * the request used (in order of first use), so the stored width depends on what a request used,
   * not on how many classes the model has.
   */
  add(request: LoggedRequest, columns: PredictionColumns) {
    const n = columns.scores.length;
    const first = this.rows;
    if (first + n > this.scores.length) this.grow(first + n);
    const src = columns.scores;
    this.scores.set(src, first);
    if (this.scores instanceof Float32Array && src instanceof Float64Array) {
      // Stored narrow: widen once if a score did not survive the float32 round trip (float32
      // columns, what float model outputs give, always do).
      const scores = this.scores;
      for (let i = 0; i < n; i++) {
        const x = src[i];
        if (scores[first + i] !== x && x === x) {
          this.scores = Float64Array.from(scores);
          this.scores.set(src, first);
          break;
        }
      }
    }
    const names = this.names;
    if (!columns.classes.length) this.labels.fill(0, first, first + n); // regressors: no label
    else {
      if (this.remap.length < columns.classes.length) this.remap = new Int32Array(columns.classes.length).fill(-1);
      const { remap, used } = this;
      const codes = columns.labels;
      let labels = this.labels;
      for (let i = 0; i < n; i++) {
        const c = codes[i];
        let k = remap[c];
        if (k < 0) {
          k = remap[c] = used.push(c) - 1;
          names.push(columns.classes[c]);
          if (k === 256 && labels instanceof Uint8Array) labels = this.labels = Uint32Array.from(labels);
        }
        labels[first + i] = k;
      }
      for (const c of used) remap[c] = -1;
      used.length = 0;
    }
    const r = this.ids.length;
    if (r === this.at.length) this.growRequests();
    this.ids.push(request.requestId);
    this.provenance.push(request.features ?? null);
    this.at[r] = request.at;
    this.counts[r] = n;
    this.contextOf[r] = this.contextIndex(request);
    this.classesOf[r] = this.classesIndex(names);
    names.length = 0;
    this.rows += n;
  }

  /** Index of the request's (version, deployment, variant) among this flush's. */
  private contextIndex({ version, deployment, variant }: LoggedRequest): number {
    const { contexts } = this;
    for (let i = contexts.length - 1; i >= 0; i--) {
      const c = contexts[i];
      if (c[0] === version && c[1] === deployment && c[2] === variant) return i;
    }
    return contexts.push([version, deployment, variant]) - 1;
  }

  /** Index of a class list among this flush's (the scratch list is copied only when new). */
  private classesIndex(names: string[]): number {
    const { classLists } = this;
    search: for (let i = classLists.length - 1; i >= Math.max(0, classLists.length - 64); i--) {
      const c = classLists[i];
      if (c.length !== names.length) continue;
      for (let j = 0; j < c.length; j++) if (c[j] !== names[j]) continue search;
      return i;
    }
    return classLists.push(names.slice()) - 1;
  }

  /** The flush as `append` takes it; the metadata as JSON tuples (`PackedMeta`). */
  pack(): PackedRequests {
    const meta: PackedMeta[] = new Array(this.ids.length);
    let first = 0;
    for (let r = 0; r < meta.length; r++) {
      const [version, deployment, variant] = this.contexts[this.contextOf[r]];
      meta[r] = [this.ids[r], version, deployment, variant, this.at[r], first, this.counts[r], this.classLists[this.classesOf[r]], this.provenance[r]];
      first += this.counts[r];
    }
    return {
      meta: JSON.stringify(meta),
      scores: this.scores.slice(0, this.rows).buffer,
      scoreBytes: this.scores instanceof Float32Array ? 4 : 8,
      labels: this.labels.slice(0, this.rows).buffer,
      labelBytes: this.labels instanceof Uint8Array ? 1 : 4,
    };
  }

  /** Empties the packer for the next flush, keeping its buffers (they grew to this isolate's flush size) at the narrow widths. */
  reset() {
    this.ids.length = 0;
    this.provenance.length = 0;
    this.contexts.length = 0;
    this.classLists.length = 0;
    this.rows = 0;
    if (this.scores instanceof Float64Array) this.scores = new Float32Array(this.scores.length);
    if (this.labels instanceof Uint32Array) this.labels = new Uint8Array(this.labels.length);
  }

  private grow(min: number) {
    const size = Math.max(min, this.scores.length * 2);
    this.scores = resized(this.scores, size);
    this.labels = resized(this.labels, size);
  }

  private growRequests() {
    const size = this.at.length * 2;
    this.at = resized(this.at, size);
    this.counts = resized(this.counts, size);
    this.contextOf = resized(this.contextOf, size);
    this.classesOf = resized(this.classesOf, size);
  }
}

/** A copy of `a`, of the same element type, with room for `size` elements. */
function resized<T extends Float32Array | Float64Array | Uint8Array | Uint32Array>(a: T, size: number): T {
  const b = new (a.constructor as new (length: number) => T)(size);
  b.set(a);
  return b;
}

export interface FeedbackItem {
  requestId: string;
  row: number;
  actual: string;
}

export type JoinResult =
  | { status: "joined"; item: FeedbackItem; entry: LogEntry }
  | { status: "duplicate"; item: FeedbackItem; entry: LogEntry }
  | { status: "not_found"; item: FeedbackItem }
  /** Kept until its prediction is logged (at most PENDING_LABEL_MS), then joined. */
  | { status: "pending"; item: FeedbackItem };

type RequestRow = {
  request_id: string;
  version: string;
  deployment: string | null;
  variant: string | null;
  at: number;
  scores: ArrayBuffer;
  score_bytes: number;
  classes: string;
  labels: ArrayBuffer;
  label_bytes: number;
  features: string | null;
};

/** A stored request, its rows decoded. */
interface StoredRequest {
  r: RequestRow;
  scores: Float32Array | Float64Array;
  labels: Uint8Array | Uint32Array;
  classes: string[];
}

const decode = (r: RequestRow): StoredRequest => ({
  r,
  scores: r.score_bytes === 4 ? new Float32Array(r.scores) : new Float64Array(r.scores),
  labels: r.label_bytes === 1 ? new Uint8Array(r.labels) : new Uint32Array(r.labels),
  classes: JSON.parse(r.classes),
});

/**
 * Creates the tables. Returns whether the shard still has the older `logged_requests` table (a
 * rowid table with id and time indexes, from before `predictions`), which is then brought up to
 * date: tables from before the width columns hold Float64 scores and Uint32 labels, which is what
 * the columns' defaults say.
 */
export function migrateLog(sql: SqlStorage): boolean {
  sql.exec(`
    CREATE TABLE IF NOT EXISTS predictions (request_id TEXT PRIMARY KEY, version TEXT NOT NULL, deployment TEXT, variant TEXT, at INTEGER NOT NULL,
      scores BLOB NOT NULL, classes TEXT NOT NULL, labels BLOB NOT NULL, score_bytes INTEGER NOT NULL, label_bytes INTEGER NOT NULL, features TEXT) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS outcomes (request_id TEXT NOT NULL, row INTEGER NOT NULL, actual TEXT NOT NULL, labelled_at INTEGER NOT NULL, PRIMARY KEY (request_id, row));
    CREATE TABLE IF NOT EXISTS pending_outcomes (request_id TEXT NOT NULL, row INTEGER NOT NULL, actual TEXT NOT NULL, received_at INTEGER NOT NULL, PRIMARY KEY (request_id, row));
    CREATE INDEX IF NOT EXISTS pending_outcomes_by_time ON pending_outcomes (received_at);
  `);
  if (sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'logged_requests'").toArray().length === 0) return false;
  const columns = new Set(sql.exec<{ name: string }>("SELECT name FROM pragma_table_info('logged_requests')").toArray().map((c) => c.name));
  if (!columns.has("score_bytes")) sql.exec("ALTER TABLE logged_requests ADD COLUMN score_bytes INTEGER NOT NULL DEFAULT 8");
  if (!columns.has("label_bytes")) sql.exec("ALTER TABLE logged_requests ADD COLUMN label_bytes INTEGER NOT NULL DEFAULT 4");
  if (!columns.has("features")) sql.exec("ALTER TABLE logged_requests ADD COLUMN features TEXT");
  return true;
}

function entryOf({ r, scores, labels, classes }: StoredRequest, row: number): LogEntry {
  return { requestId: r.request_id, row, version: r.version, deployment: r.deployment ?? undefined, variant: r.variant ?? undefined, score: scores[row], label: classes[labels[row]] ?? null, at: r.at, ...(r.features ? { features: JSON.parse(r.features) } : {}) };
}

export class PredictionLog extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private alarmSet = false;
  /** Labels waiting for their prediction (so appends skip the pending join when there are none). */
  private pending = 0;
  /** Whether the older `logged_requests` table is still there (read as a fallback until it empties). */
  private legacy = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => {
      this.legacy = migrateLog(this.sql);
      this.pending = this.countPending();
    });
  }

  private countPending(): number {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM pending_outcomes").one().n;
  }

  private async ensureAlarm() {
    if (this.alarmSet) return;
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + DAY);
    this.alarmSet = true;
  }

  /**
   * Joins waiting labels whose prediction is now logged (rows out of range are dropped), in one
   * transaction, then hands them on as /v1/feedback does: to the version's stats shard (live
   * performance) and to the feedback listeners.
   */
  private async joinPending(model: string, now: number) {
    if (this.pending === 0) return;
    const joined: { entry: LogEntry; actual: string; labelledAt: number }[] = [];
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("DELETE FROM pending_outcomes WHERE received_at < ?", now - PENDING_LABEL_MS);
      const waiting = this.sql
        .exec<{ request_id: string; row: number; actual: string; received_at: number }>(
          `SELECT p.request_id, p.row, p.actual, p.received_at FROM pending_outcomes p WHERE EXISTS (SELECT 1 FROM predictions l WHERE l.request_id = p.request_id)${this.legacy ? " OR EXISTS (SELECT 1 FROM logged_requests l WHERE l.request_id = p.request_id)" : ""}`,
        )
        .toArray();
      const stored = new Map<string, StoredRequest | null>();
      for (const w of waiting) {
        if (!stored.has(w.request_id)) stored.set(w.request_id, this.request(w.request_id));
        const req = stored.get(w.request_id);
        this.sql.exec("DELETE FROM pending_outcomes WHERE request_id = ? AND row = ?", w.request_id, w.row);
        if (!req || w.row >= req.scores.length) continue;
        const inserted = this.sql.exec("INSERT OR IGNORE INTO outcomes (request_id, row, actual, labelled_at) VALUES (?, ?, ?, ?)", w.request_id, w.row, w.actual, w.received_at).rowsWritten;
        if (inserted > 0) joined.push({ entry: entryOf(req, w.row), actual: w.actual, labelledAt: w.received_at });
      }
    });
    this.pending = this.countPending();
    if (!joined.length) return;
    const byVersion = new Map<string, LabelRow[]>();
    for (const { entry, actual, labelledAt } of joined) {
      const rows = byVersion.get(entry.version) ?? [];
      rows.push({ requestId: entry.requestId, row: entry.row, predictedAt: entry.at, labelledAt, score: entry.score, predicted: entry.label, actual });
      byVersion.set(entry.version, rows);
    }
    await Promise.all([...byVersion].map(([version, rows]) => this.env.MONITOR_SHARD.getByName(shardName(model, version, 0)).addLabels(rows)));
    for (const { entry, actual, labelledAt } of joined) {
      const numeric = actual.trim() !== "" && Number.isFinite(Number(actual));
      notifyFeedback(this.env, (p) => this.ctx.waitUntil(p), {
        requestId: entry.requestId,
        row: entry.row,
        model,
        version: entry.version,
        deployment: entry.deployment,
        variant: entry.variant,
        score: entry.score,
        actual: numeric ? Number(actual) : actual,
        predictedAt: entry.at,
        at: labelledAt,
      });
    }
  }

  /**
   * Logs answered requests, packed by `RequestPacker`: one statement unpacks the metadata with
   * jsonb_each (the list is parsed once into SQLite's binary JSON, so reading a tuple's fields
   * does not parse its text again; ~25% less CPU than json_each here) and slices each request's
   * rows out of the two buffers, so a flush costs one RPC and one statement whatever its size.
   * Requests whose id is not a UUIDv7 are skipped (see the header). Returns the rows written: one
   * per newly logged request.
   */
  async append(model: string, batch: PackedRequests): Promise<number> {
    const written = this.sql.exec(
      `INSERT OR IGNORE INTO predictions (request_id, version, deployment, variant, at, scores, score_bytes, classes, labels, label_bytes, features)
       SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,
         substr(?2, (value ->> 5) * ?3 + 1, (value ->> 6) * ?3), ?3, json(value -> 7), substr(?4, (value ->> 5) * ?5 + 1, (value ->> 6) * ?5), ?5, value ->> 8
       FROM jsonb_each(jsonb(?1))
       WHERE ${isUuidV7Sql("value ->> 0")}${this.legacy ? " AND NOT EXISTS (SELECT 1 FROM logged_requests l WHERE l.request_id = value ->> 0)" : ""}`,
      batch.meta,
      batch.scores,
      batch.scoreBytes,
      batch.labels,
      batch.labelBytes,
    ).rowsWritten;
    await this.joinPending(model, Date.now());
    await this.ensureAlarm();
    return written;
  }

  private request(requestId: string): StoredRequest | null {
    const r =
      this.sql.exec<RequestRow>("SELECT * FROM predictions WHERE request_id = ?", requestId).toArray()[0] ??
      (this.legacy ? this.sql.exec<RequestRow>("SELECT * FROM logged_requests WHERE request_id = ?", requestId).toArray()[0] : undefined);
    return r ? decode(r) : null;
  }


  /**
   * Attaches outcomes to logged predictions. A second label for the same row is reported as a
   * duplicate and ignored. A label whose request is not logged yet waits (`pending`) if its
   * prediction could still arrive and there is room; otherwise it is `not_found`.
   */
  async join(items: FeedbackItem[], now = Date.now()): Promise<JoinResult[]> {
    const out: JoinResult[] = [];
    const stored = new Map<string, StoredRequest | null>();
    this.ctx.storage.transactionSync(() => {
      if (this.pending > 0) this.sql.exec("DELETE FROM pending_outcomes WHERE received_at < ?", now - PENDING_LABEL_MS);
      let room = MAX_PENDING_LABELS - (this.pending > 0 ? this.countPending() : 0);
      for (const item of items) {
        if (!stored.has(item.requestId)) stored.set(item.requestId, this.request(item.requestId));
        const req = stored.get(item.requestId);
        if (!req && room > 0 && couldStillArrive(item.requestId, now)) {
          room -= this.sql.exec("INSERT OR IGNORE INTO pending_outcomes (request_id, row, actual, received_at) VALUES (?, ?, ?, ?)", item.requestId, item.row, item.actual, now).rowsWritten > 0 ? 1 : 0;
          out.push({ status: "pending", item });
          continue;
        }
        if (!req || item.row >= req.scores.length) {
          out.push({ status: "not_found", item });
          continue;
        }
        const entry = entryOf(req, item.row);
        const done = this.sql.exec("SELECT 1 FROM outcomes WHERE request_id = ? AND row = ?", item.requestId, item.row).toArray().length > 0;
        if (done) {
          out.push({ status: "duplicate", item, entry });
          continue;
        }
        this.sql.exec("INSERT INTO outcomes (request_id, row, actual, labelled_at) VALUES (?, ?, ?, ?)", item.requestId, item.row, item.actual, now);
        out.push({ status: "joined", item, entry });
      }
    });
    this.pending = this.countPending();
    if (this.pending > 0) await this.ensureAlarm();
    return out;
  }

  /** Rows of one request (tests, support). */
  async entries(requestId: string): Promise<LogEntry[]> {
    const req = this.request(requestId);
    return req ? Array.from(req.scores, (_, row) => entryOf(req, row)) : [];
  }

  /** Logged requests. */
  async count(): Promise<number> {
    const n = this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM predictions").one().n;
    return this.legacy ? n + this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM logged_requests").one().n : n;
  }

  async alarm(): Promise<void> {
    const now = Date.now();
    const cutoff = now - monitoringConfig(this.env).logDays * DAY;
    const below = uuidV7Prefix(cutoff);
    // Range deletes on the keys: UUIDv7 ids below the cutoff's prefix are older than the cutoff.
    this.sql.exec(`DELETE FROM outcomes WHERE request_id < ? AND ${isUuidV7Sql("request_id")}`, below);
    this.sql.exec("DELETE FROM predictions WHERE request_id < ?", below);
    if (this.legacy) {
      this.sql.exec("DELETE FROM outcomes WHERE request_id IN (SELECT request_id FROM logged_requests WHERE at < ?)", cutoff);
      this.sql.exec("DELETE FROM logged_requests WHERE at < ?", cutoff);
      if (this.sql.exec("SELECT 1 FROM logged_requests LIMIT 1").toArray().length === 0) {
        this.sql.exec("DROP TABLE logged_requests"); // and its indexes
        this.legacy = false;
      }
    }
    this.sql.exec("DELETE FROM pending_outcomes WHERE received_at < ?", now - PENDING_LABEL_MS);
    this.pending = this.countPending();
    // Anything left to purge later? An older table still there holds rows (it is dropped once
    // empty, above); otherwise one row of `predictions` answers it: no COUNT over the whole log.
    const left = this.pending > 0 || this.legacy || this.sql.exec("SELECT 1 FROM predictions LIMIT 1").toArray().length > 0;
    this.alarmSet = left;
    if (left) await this.ctx.storage.setAlarm(now + DAY);
  }
}
