/**
 * Payload archive: the features, scores and labels of predictions, kept in R2 for retraining.
 *
 * The prediction log keeps scores and labels, not features. This archive keeps, for a sampled
 * share of predicted rows (`sample_rate` in the model's retraining config; models without one are
 * not archived), the features the request carried (as validation resolved them, with the values it
 * left out marked missing), its score and version, and the delayed labels (feedback) of those rows.
 * A row is sampled by a draw keyed by its request id and row number (`archived`), so its label is
 * kept exactly when the prediction was, whichever isolates the two reach. Each isolate copies the
 * archived rows of the requests' validated columns and scores into a columnar block, a few dozen
 * requests at a time (archive-block.ts `BlockBuilder`: a column per feature, stored in its
 * narrowest exact type, strings through a dictionary: compressed by encoding, no gzip on top), and
 * writes the block to R2 once it holds RETRAINING_ARCHIVE_FLUSH_ROWS rows or its oldest is
 * RETRAINING_ARCHIVE_FLUSH_MS old, inside the waitUntil of the request that crosses the bound: the
 * serving path holds the request (by reference, at most 64 requests or 2,048 rows, then copied
 * together: `PayloadArchive.held`) and never writes to R2. An isolate also flushes a model's
 * buffer when all its models' buffers together hold RETRAINING_ARCHIVE_BUFFER_ROWS rows (default
 * twice the flush rows), which bounds its memory with many archived models (~120 bytes per
 * buffered row of 13 features: its Float64 cells and kind bytes); a flushed model's builder is kept
 * for its next block while the idle builders' room stays within that bound too. Records buffered
 * in an isolate that is evicted before its next flush are lost (bounded by these limits), as with
 * monitoring's collector. Flushes are 10,000 rows by default (2,000 before): in bench:r2-put a local put costs
 * ~2.4 ms of CPU plus ~22 µs per KiB, so fewer, larger objects halve the archive's put cost there.
 *
 * Blocks replaced gzip NDJSON objects after bench:stages' archive variants showed the JSON text, its
 * gzip and the R2 put of each flush costing ~600 µs of CPU per 100-row request at sample rate 1
 * (README). A job's export (export.ts) reads these objects back, and objects in the earlier formats.
 */
import { v7 as uuidv7 } from "uuid";
import { intVar } from "../http/limits";
import { registryDb } from "../registry/store";
import { hash32, rowDraw } from "../stats/random";
import type { FeedbackEvent, PredictionEvent } from "../serving/events";
import { BlockBuilder, type BufferedRequest, type LabelRecord } from "./archive-block";
import { findConfig } from "./store";
import type { StoredConfig } from "./model";

const CONFIG_TTL_MS = 30_000;

export function archivePrefix(model: string): string {
  return `retraining/archive/${model}/`;
}

/**
 * Whether row `row` of request `requestId` is archived at `rate`: a draw keyed by the two
 * (`rowDraw`), so a label is archived exactly when its prediction was, in whichever isolate each
 * arrives. Labels of predictions that were not archived could never join, and would only grow the
 * archive and what the export holds.
 */
export function archived(requestId: string, row: number, rate: number): boolean {
  return sampledRow(hash32(requestId), row, rate);
}

/** `archived` with the request's hash computed once (a request's rows are drawn in a loop). */
function sampledRow(requestHash: number, row: number, rate: number): boolean {
  return rate >= 1 || (rate > 0 && rowDraw(requestHash, row) < rate);
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
      // Sampled: only the chosen rows are copied; the draw is the row's own (see `archived`).
      keep = [];
      const h = hash32(e.requestId);
      for (let i = 0; i < resolved.n; i++) if (sampledRow(h, i, rate)) keep.push(i);
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
    if (!cfg || !archived(e.requestId, e.row, cfg.sample_rate)) return;
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
