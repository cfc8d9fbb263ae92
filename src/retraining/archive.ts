/**
 * Payload archive and training-data export.
 *
 * The prediction log keeps scores and labels, not features. This archive keeps, for a sampled
 * share of predicted rows (`sample_rate` in the model's retraining config; models without one are
 * not archived), the features the request carried, its score and version, and every delayed label
 * (feedback) of those models. Each isolate buffers references to the requests' rows and scores and
 * writes them to R2 as one gzip NDJSON object (CompressionStream) once it holds
 * RETRAINING_ARCHIVE_FLUSH_ROWS rows or its oldest is RETRAINING_ARCHIVE_FLUSH_MS old, inside the
 * waitUntil of the request that crosses the bound: the serving path pays a buffer push (no copy, no
 * JSON), never an R2 write. Records buffered in an isolate that is evicted before its next flush are
 * lost (bounded by the two limits), as with monitoring's collector.
 *
 * Object lines (each one JSON value):
 *   {"t":"b","k":[feature names],"q":[[request id, at, version, row indexes | null (all rows),
 *     [[values in k's order, null when absent], ...], [scores]], ...]}   a block of predictions
 *   {"t":"l","id","row","at","y"}                                       a label
 *   {"t":"p","id","row","at","v","f","s"}    one prediction per line: written before blocks existed,
 *                                            and still for rows that are not feature objects
 * Blocks name each feature once per object instead of once per row: serialising and compressing
 * the archive costs about half as much CPU (bench:archive, README). A feature that is absent and one
 * that is null are both stored as null and exported as absent: the feature schema treats both as
 * missing (src/inference/features.ts), so the model sees the same row.
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
import { findConfig } from "./store";
import type { StoredConfig } from "./model";

type PredictionRecord = { t: "p"; id: string; row: number; at: number; v: string; f: unknown; s: number };
export type LabelRecord = { t: "l"; id: string; row: number; at: number; y: number | string };
/** A block line's request: id, at, version, row indexes (null: 0..n-1), value rows, scores. */
type BlockRequest = [string, number, string, number[] | null, (unknown[] | null)[], number[]];
type BlockRecord = { t: "b"; k: string[]; q: BlockRequest[] };
type ArchiveRecord = PredictionRecord | LabelRecord | BlockRecord;

/** A buffered prediction request: references to the event's rows and scores (nothing copied). */
export interface BufferedRequest {
  id: string;
  at: number;
  v: string;
  /** The archived rows and their scores: the event's own arrays when every row is kept. */
  rows: readonly unknown[];
  scores: ArrayLike<number>;
  /** Row numbers in the request of the sampled rows; null when every row is kept. */
  keep: number[] | null;
}

const isFeatureObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);

/** The object's lines: one block for the feature-object requests, per-row lines for the rest, then labels. */
export function archiveLines(requests: readonly BufferedRequest[], labels: readonly LabelRecord[]): string {
  const keys: string[] = [];
  const index = new Map<string, number>();
  const block: BlockRequest[] = [];
  const lines: string[] = [];
  for (const q of requests) {
    if (!q.rows.every(isFeatureObject)) {
      q.rows.forEach((f, n) => lines.push(JSON.stringify({ t: "p", id: q.id, row: q.keep ? q.keep[n] : n, at: q.at, v: q.v, f, s: q.scores[n] })));
      continue;
    }
    const values: unknown[][] = [];
    const scores: number[] = [];
    for (let i = 0; i < q.rows.length; i++) {
      const row = q.rows[i] as Record<string, unknown>;
      const out: unknown[] = [];
      for (const k in row) {
        let j = index.get(k);
        if (j === undefined) index.set(k, (j = keys.push(k) - 1));
        out[j] = row[k];
      }
      values.push(out);
      scores.push(q.scores[i]);
    }
    block.push([q.id, q.at, q.v, q.keep, values, scores]);
  }
  // Holes (absent features) and undefined serialise as null in arrays.
  if (block.length) lines.unshift(JSON.stringify({ t: "b", k: keys, q: block }));
  for (const l of labels) lines.push(JSON.stringify(l));
  return lines.join("\n") + "\n";
}

/** Every prediction of a block line as a per-row record (absent and null features both omitted). */
function* blockPredictions(b: BlockRecord): Generator<PredictionRecord> {
  for (const [id, at, v, keep, values, scores] of b.q) {
    for (let n = 0; n < values.length; n++) {
      const f: Record<string, unknown> = {};
      const row = values[n] ?? [];
      for (let j = 0; j < b.k.length; j++) if (row[j] !== null && row[j] !== undefined) f[b.k[j]] = row[j];
      yield { t: "p", id, row: keep ? keep[n] : n, at, v, f, s: scores[n] };
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

/** The per-isolate archive buffer (isolate configuration and buffered records, no request state). */
class PayloadArchive {
  private buffers = new Map<string, { requests: BufferedRequest[]; labels: LabelRecord[]; rows: number; since: number }>();
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
    if (!e.rows?.length) return; // raw-tensor v2 requests carry no feature objects
    const model = e.dispatch.version.modelName;
    const cfg = await this.configOf(env, model);
    const rate = cfg?.sample_rate ?? 0;
    if (rate <= 0) return;
    const request: BufferedRequest = { id: e.requestId, at: e.at, v: e.dispatch.version.version, rows: e.rows, scores: e.columns.scores, keep: null };
    if (rate < 1) {
      // Sampled: keep copies of the chosen rows only, not references to the whole request.
      const keep: number[] = [];
      for (let i = 0; i < e.rows.length; i++) if (Math.random() < rate) keep.push(i);
      if (!keep.length) return;
      Object.assign(request, { keep, rows: keep.map((i) => e.rows![i]), scores: keep.map((i) => e.columns.scores[i]) });
    }
    const buffer = this.bufferOf(model);
    buffer.requests.push(request);
    buffer.rows += request.rows.length;
    await this.maybeFlush(env, model);
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
    if (!buffer) this.buffers.set(model, (buffer = { requests: [], labels: [], rows: 0, since: Date.now() }));
    return buffer;
  }

  private async maybeFlush(env: Env, model: string) {
    const buffer = this.buffers.get(model)!;
    const vars = env as unknown as Record<string, string | undefined>;
    if (buffer.rows >= intVar(vars.RETRAINING_ARCHIVE_FLUSH_ROWS, 2000) || Date.now() - buffer.since >= intVar(vars.RETRAINING_ARCHIVE_FLUSH_MS, 60_000)) await this.flush(env, model);
  }

  async flush(env: Env, model: string): Promise<void> {
    const buffer = this.buffers.get(model);
    if (!buffer?.rows) return;
    this.buffers.delete(model);
    const day = new Date().toISOString().slice(0, 10);
    const body = await gzip(archiveLines(buffer.requests, buffer.labels));
    await env.ARTIFACTS.put(`${archivePrefix(model)}${day}/${uuidv7()}.ndjson.gz`, body, { httpMetadata: { contentType: "application/gzip" }, customMetadata: { records: String(buffer.rows) } });
    this.flushes++;
  }
}

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
      for (const line of (await gunzip(body.body)).split("\n")) {
        if (!line) continue;
        const r = JSON.parse(line) as ArchiveRecord;
        if (r.t === "b") {
          for (const p of blockPredictions(r)) if (p.at >= since) predictions.set(`${p.id}#${p.row}`, p);
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
