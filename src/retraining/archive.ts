/**
 * Payload archive and training-data export.
 *
 * The prediction log keeps scores and labels, not features. This archive keeps, for a sampled
 * share of predicted rows (`sample_rate` in the model's retraining config; models without one are
 * not archived), the features the request carried (as validation resolved them, with the values it
 * left out marked missing), its score and version, and every delayed label (feedback) of those
 * models. Each isolate copies the archived rows of the requests' validated columns and scores into
 * a columnar block, a few dozen requests at a time (archive-block.ts `BlockBuilder`: a column per feature,
 * stored in its narrowest exact type, strings through a dictionary: compressed by encoding, no gzip
 * on top), and writes the block to R2 once it holds RETRAINING_ARCHIVE_FLUSH_ROWS rows or its oldest is
 * RETRAINING_ARCHIVE_FLUSH_MS old, inside the waitUntil of the request that crosses the bound: the
 * serving path holds the request (by reference, at most 64 requests or 2,048 rows, then copied
 * together: `PayloadArchive.held`) and never writes to R2. An
 * isolate also flushes a model's buffer when all its models' buffers together hold
 * RETRAINING_ARCHIVE_BUFFER_ROWS rows (default twice the flush rows), which bounds its memory with
 * many archived models (~120 bytes per buffered row of 13 features: its Float64 cells and kind
 * bytes); a flushed model's builder is kept for its next block while the idle builders' room stays
 * within that bound too. Records buffered in an isolate
 * that is evicted before its next flush are lost (bounded by these limits), as with monitoring's
 * collector. Flushes are 10,000 rows by default (2,000 before): in bench:r2-put a local put costs
 * ~2.4 ms of CPU plus ~22 µs per KiB, so fewer, larger objects halve the archive's put cost there.
 *
 * Blocks replaced gzip NDJSON objects after bench:stages' archive variants showed the JSON text, its
 * gzip and the R2 put of each flush costing ~600 µs of CPU per 100-row request at sample rate 1
 * (README); the export still reads objects in the earlier formats, one JSON value per line:
 *   {"t":"b","k":[feature names],"q":[[request id, at, version, row indexes | null (all rows),
 *     [[values in k's order, null when absent], ...], [scores]], ...]}   a block of predictions
 *   {"t":"l","id","row","at","y"}                                       a label
 *   {"t":"p","id","row","at","v","f","s"}                               one prediction
 * A feature that is absent and one that is null are both stored as missing and exported as absent:
 * the feature schema treats both as missing (src/inference/features.ts), so the model sees the same
 * row.
 *
 * The export (run by a job's workflow) reads the model's archive objects of the last `export.days`,
 * joins labels to predictions by (request id, row), orders by prediction time, keeps the newest
 * `max_rows`, and writes two gzip NDJSON objects: the training window and the newest `oot_fraction`
 * as the out-of-time set. Rows: {request_id, row, at, version, features, score, label}.
 */
import { v7 as uuidv7 } from "uuid";
import { intVar } from "../http/limits";
import { registryDb } from "../registry/store";
import type { FeedbackEvent, PredictionEvent } from "../serving/events";
import { BlockBuilder, decodeBlock, isBlock, type BufferedRequest, type LabelRecord, type PredictionRecord } from "./archive-block";
import { findConfig } from "./store";
import type { StoredConfig } from "./model";

type ArchiveRecord = PredictionRecord | LabelRecord | LegacyBlockRecord;
/** A gzip NDJSON block line's request (objects written before columnar blocks): id, at, version, row indexes (null: 0..n-1), value rows, scores. */
type LegacyBlockRequest = [string, number, string, number[] | null, (unknown[] | null)[], number[]];
type LegacyBlockRecord = { t: "b"; k: string[]; q: LegacyBlockRequest[] };

/** Every prediction of a gzip NDJSON block line as a per-row record (absent and null features both omitted). */
function* legacyBlockPredictions(b: LegacyBlockRecord): Generator<PredictionRecord> {
  for (const [id, at, v, keep, values, scores] of b.q) {
    for (let n = 0; n < values.length; n++) {
      const cells: [string, unknown][] = [];
      const row = values[n] ?? [];
      for (let j = 0; j < b.k.length; j++) if (row[j] !== null && row[j] !== undefined) cells.push([b.k[j], row[j]]);
      yield { t: "p", id, row: keep ? keep[n] : n, at, v, f: Object.fromEntries(cells), s: scores[n] };
    }
  }
}

export interface ExportRow {
  request_id: string;
  row: number;
  at: number;
  version: string;
  features: unknown;
  score: number;
  label: number | string;
}

const CONFIG_TTL_MS = 30_000;
const DAY = 86_400_000;

export function archivePrefix(model: string): string {
  return `retraining/archive/${model}/`;
}
export function exportKey(jobId: string, part: "train" | "oot"): string {
  return `retraining/exports/${jobId}/${part}.ndjson.gz`;
}

export async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export async function gunzip(body: ReadableStream | ArrayBuffer | Uint8Array): Promise<string> {
  const source = body instanceof ReadableStream ? body : new Blob([body as ArrayBuffer]).stream();
  return new Response(source.pipeThrough(new DecompressionStream("gzip"))).text();
}

/** Requests and rows held before they are copied into their blocks (see `PayloadArchive.held`). */
const HOLD_REQUESTS = 64;
const HOLD_ROWS = 2048;

/** RETRAINING_ARCHIVE_FLUSH_ROWS (default 10,000), RETRAINING_ARCHIVE_BUFFER_ROWS (default twice the flush rows), RETRAINING_ARCHIVE_FLUSH_MS (60 s): see the header. */
function archiveLimits(env: Env): { flushRows: number; bufferRows: number; flushMs: number } {
  const vars = env as unknown as Record<string, string | undefined>;
  const flushRows = intVar(vars.RETRAINING_ARCHIVE_FLUSH_ROWS, 10_000);
  return { flushRows, bufferRows: intVar(vars.RETRAINING_ARCHIVE_BUFFER_ROWS, 2 * flushRows), flushMs: intVar(vars.RETRAINING_ARCHIVE_FLUSH_MS, 60_000) };
}

/** The per-isolate archive buffer (isolate configuration and buffered records, no request state). */
export class PayloadArchive {
  private buffers = new Map<string, { labels: LabelRecord[]; rows: number; since: number }>();
  /**
   * Per model, the block being built: held requests are copied into it (`copyHeld`, see
   * BlockBuilder), and it is reused by the model's next block.
   */
  private builders = new Map<string, BlockBuilder>();
  private configs = new Map<string, { config: StoredConfig | null; at: number }>();
  flushes = 0;

  private async configOf(env: Env, model: string): Promise<StoredConfig | null> {
    const cached = this.configs.get(model);
    if (cached && Date.now() - cached.at < CONFIG_TTL_MS) return cached.config;
    const found = await findConfig(registryDb(env.DB), model);
    this.configs.set(model, { config: found?.config ?? null, at: Date.now() });
    return found?.config ?? null;
  }

  /** Forgets cached sample rates (after a config change in this isolate). */
  forget(model?: string) {
    if (model) this.configs.delete(model);
    else this.configs.clear();
  }

  async recordPrediction(env: Env, e: PredictionEvent): Promise<void> {
    const resolved = e.resolved;
    if (!resolved?.n) return; // raw-tensor v2 requests carry no validated rows
    const model = e.dispatch.version.modelName;
    const cfg = await this.configOf(env, model);
    const rate = cfg?.sample_rate ?? 0;
    if (rate <= 0) return;
    let keep: number[] | null = null;
    if (rate < 1) {
      // Sampled: only the chosen rows are copied.
      keep = [];
      for (let i = 0; i < resolved.n; i++) if (Math.random() < rate) keep.push(i);
      if (!keep.length) return;
    }
    const rows = keep ? keep.length : resolved.n;
    this.held.push({ model, request: { id: e.requestId, at: e.at, v: e.dispatch.version.version, features: e.dispatch.version.featureSchema.features, resolved, scores: e.columns.scores, keep } });
    this.heldRows += rows;
    if (this.heldRows >= HOLD_ROWS || this.held.length >= HOLD_REQUESTS) this.copyHeld();
    const buffer = this.bufferOf(model);
    buffer.rows += rows;
    await this.maybeFlush(env, model);
  }

  /**
   * Requests recorded but not yet copied into their model's block. Copying each request on its own
   * put the builder's columns and tables, out of cache after the request's other work, on the
   * response path: ~10 µs more latency per 1-row request than holding references until the flush
   * (`bench:monitoring` latency pairs, BENCH_COMPARE=archive); holding every request until the
   * flush kept its arrays alive long enough for the garbage collector to copy and promote them.
   * So requests are held by reference (their arrays are their own: validation and the decoder make
   * them fresh for each request) for at most HOLD_REQUESTS requests or HOLD_ROWS rows, then copied
   * together; every flush copies what is held first.
   */
  private held: { model: string; request: BufferedRequest }[] = [];
  private heldRows = 0;

  private copyHeld() {
    const held = this.held;
    this.held = [];
    this.heldRows = 0;
    for (const { model, request } of held) {
      let builder = this.builders.get(model);
      if (!builder) this.builders.set(model, (builder = new BlockBuilder()));
      builder.add(request);
    }
  }

  async recordFeedback(env: Env, e: FeedbackEvent): Promise<void> {
    const cfg = await this.configOf(env, e.model);
    if (!cfg || cfg.sample_rate <= 0) return;
    const buffer = this.bufferOf(e.model);
    buffer.labels.push({ t: "l", id: e.requestId, row: e.row, at: e.at, y: e.actual });
    buffer.rows++;
    await this.maybeFlush(env, e.model);
  }

  private bufferOf(model: string) {
    let buffer = this.buffers.get(model);
    if (!buffer) this.buffers.set(model, (buffer = { labels: [], rows: 0, since: Date.now() }));
    return buffer;
  }

  private async maybeFlush(env: Env, model: string) {
    const buffer = this.buffers.get(model)!;
    const { flushRows, bufferRows, flushMs } = archiveLimits(env);
    const full = buffer.rows >= flushRows || this.bufferedRows() >= bufferRows;
    if (full || Date.now() - buffer.since >= flushMs) await this.flush(env, model);
  }

  /** Rows buffered in this isolate across models. */
  bufferedRows(): number {
    let total = 0;
    for (const b of this.buffers.values()) total += b.rows;
    return total;
  }

  async flush(env: Env, model: string): Promise<void> {
    const buffer = this.buffers.get(model);
    if (!buffer?.rows) return;
    this.buffers.delete(model);
    const day = new Date().toISOString().slice(0, 10);
    // Encoded now, before the put's await: requests recorded meanwhile go into the next block.
    this.copyHeld();
    const builder = this.builders.get(model) ?? new BlockBuilder();
    const body = builder.finish(buffer.labels);
    // Kept for the model's next block while the idle builders together stay within the buffer bound.
    let idle = 0;
    for (const b of this.builders.values()) idle += b.capacity;
    if (idle > archiveLimits(env).bufferRows) this.builders.delete(model);
    await env.ARTIFACTS.put(`${archivePrefix(model)}${day}/${uuidv7()}.block`, body, { httpMetadata: { contentType: "application/octet-stream" }, customMetadata: { records: String(buffer.rows) } });
    this.flushes++;
  }
}

export type { BufferedRequest, LabelRecord } from "./archive-block";
export const payloadArchive = new PayloadArchive();

export interface ExportSummary {
  train_rows: number;
  oot_rows: number;
  labelled_rows: number;
  archived_predictions: number;
  objects: number;
  from: string | null;
  oot_from: string | null;
  to: string | null;
}

/** Builds a job's training and out-of-time export from the model's archive (see the header). */
export async function exportTrainingData(env: Env, model: string, jobId: string, cfg: StoredConfig, now = Date.now()): Promise<ExportSummary> {
  const since = now - cfg.export.days * DAY;
  const firstDay = new Date(since).toISOString().slice(0, 10);
  const predictions = new Map<string, PredictionRecord>();
  const labels = new Map<string, LabelRecord>();
  let objects = 0;
  let cursor: string | undefined;
  do {
    const page = await env.ARTIFACTS.list({ prefix: archivePrefix(model), cursor, limit: 1000 });
    for (const o of page.objects) {
      const day = o.key.slice(archivePrefix(model).length, archivePrefix(model).length + 10);
      if (day < firstDay) continue;
      const body = await env.ARTIFACTS.get(o.key);
      if (!body) continue;
      objects++;
      const bytes = new Uint8Array(await body.arrayBuffer());
      if (isBlock(bytes)) {
        const block = decodeBlock(bytes);
        for (const p of block.predictions) if (p.at >= since) predictions.set(`${p.id}#${p.row}`, p);
        for (const l of block.labels) labels.set(`${l.id}#${l.row}`, l);
        continue;
      }
      for (const line of (await gunzip(bytes)).split("\n")) {
        if (!line) continue;
        const r = JSON.parse(line) as ArchiveRecord;
        if (r.t === "b") {
          for (const p of legacyBlockPredictions(r)) if (p.at >= since) predictions.set(`${p.id}#${p.row}`, p);
        } else if (r.t === "p") {
          if (r.at >= since) predictions.set(`${r.id}#${r.row}`, r);
        } else labels.set(`${r.id}#${r.row}`, r);
      }
    }
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  const joined: ExportRow[] = [];
  for (const [key, p] of predictions) {
    const l = labels.get(key);
    if (l) joined.push({ request_id: p.id, row: p.row, at: p.at, version: p.v, features: p.f, score: p.s, label: l.y });
  }
  joined.sort((a, b) => a.at - b.at || (a.request_id < b.request_id ? -1 : 1) || a.row - b.row);
  const kept = joined.slice(Math.max(0, joined.length - cfg.export.max_rows));
  const cut = kept.length - Math.round(kept.length * cfg.export.oot_fraction);
  const train = kept.slice(0, cut);
  const oot = kept.slice(cut);
  const write = (rows: ExportRow[], part: "train" | "oot") =>
    gzip(rows.map((r) => JSON.stringify(r)).join("\n") + (rows.length ? "\n" : "")).then((b) => env.ARTIFACTS.put(exportKey(jobId, part), b, { httpMetadata: { contentType: "application/gzip" } }));
  await Promise.all([write(train, "train"), write(oot, "oot")]);
  const iso = (t?: number) => (t === undefined ? null : new Date(t).toISOString());
  return { train_rows: train.length, oot_rows: oot.length, labelled_rows: joined.length, archived_predictions: predictions.size, objects, from: iso(kept[0]?.at), oot_from: iso(oot[0]?.at), to: iso(kept.at(-1)?.at) };
}

export async function readExport(env: Env, jobId: string, part: "train" | "oot"): Promise<ExportRow[]> {
  const o = await env.ARTIFACTS.get(exportKey(jobId, part));
  if (!o) return [];
  return (await gunzip(o.body)).split("\n").filter(Boolean).map((l) => JSON.parse(l) as ExportRow);
}
