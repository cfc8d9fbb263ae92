/**
 * Training-data export: a retraining job's training and out-of-time sets, built from the model's
 * payload archive in R2 (archive.ts writes it).
 *
 * Rows: {request_id, row, at, version, features, score, label}: archived predictions joined to
 * their delayed labels by (request id, row). The export keeps the newest `export.max_rows`
 * labelled predictions of the last `export.days` (by prediction time), the newest `oot_fraction`
 * of them as the out-of-time set, and writes each set as one gzip NDJSON object, rows in
 * prediction-time order (ties by request id, then row).
 *
 * Memory is bounded by what the export keeps, not by what the archive holds: a busy model archives
 * millions of rows in 30 days, and holding each as an object (the first version of this export)
 * would run out of a Worker's 128 MB after a few hundred thousand (by estimate, ~0.5 KB per row
 * object; not measured). Two passes:
 * - Pass 1 chooses the rows. It reads the archive's objects newest first (by `bound`, an upper
 *   bound on the times of the records an object holds: the flush time in its key's UUIDv7, taken
 *   by the clock that timed its records, else its upload time). A label is recorded after its prediction, so once every object with a bound at
 *   or after a prediction's time (less CLOCK_SKEW_MS between machines' clocks) has been read, the
 *   prediction's label, if it has one, has been read too. Pass 1 keeps the labels read, a min-heap
 *   of the newest `max_rows` labelled predictions found (time, object, position: no row data) and
 *   the predictions still waiting for objects that may hold their label; it stops once the heap is
 *   full and no unread object can hold a newer prediction.
 * - Pass 2 writes the chosen rows in time order, SLICE_ROWS at a time: it re-reads the objects
 *   holding the slice's rows, builds their lines and streams them through gzip.
 * What stays in memory: the labels of the objects read (one map entry each), the heap (up to
 * `max_rows` entries: 20 bytes, a reference to the request id, shared by a request's rows, and the
 * label), the predictions waiting for a label (those of the objects read that are within a flush
 * interval and the clock allowance of the unread ones), one decoded object and one slice of lines.
 *
 * Archive objects are columnar blocks (archive-block.ts) or, written before blocks, gzip NDJSON,
 * one JSON value per line:
 *   {"t":"b","k":[feature names],"q":[[request id, at, version, row indexes | null (all rows),
 *     [[values in k's order, null when absent], ...], [scores]], ...]}   a block of predictions
 *   {"t":"l","id","row","at","y"}                                       a label
 *   {"t":"p","id","row","at","v","f","s"}                               one prediction
 * A feature that is absent and one that is null are both stored as missing and exported as absent:
 * the feature schema treats both as missing (src/inference/features.ts), so the model sees the
 * same row. When one (request id, row) has several labels, the one in the newest object wins (the
 * last within an object); when it has several predictions (a client reusing request ids), the
 * first joined wins.
 */
import { archivePrefix } from "./archive";
import { decodeBlock, isBlock, type LabelRecord, type PredictionRecord } from "./archive-block";
import type { StoredConfig } from "./model";

export interface ExportRow {
  request_id: string;
  row: number;
  at: number;
  version: string;
  features: unknown;
  score: number;
  label: number | string;
}

export interface ExportSummary {
  train_rows: number;
  oot_rows: number;
  /** Labelled predictions in the window found in the objects read (the newest `max_rows` are kept). */
  labelled_rows: number;
  /** Archived predictions in the window in the objects read. */
  archived_predictions: number;
  /** Archive objects read to choose the rows. */
  objects: number;
  from: string | null;
  oot_from: string | null;
  to: string | null;
}

const DAY = 86_400_000;
/** Allowance for clocks of different machines (prediction, label, R2) disagreeing. */
const CLOCK_SKEW_MS = 30_000;
/** Rows built into lines at a time when writing the sets. */
const SLICE_ROWS = 20_000;

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

interface ArchiveObject {
  key: string;
  /** No record in the object is newer (ms). */
  bound: number;
}
type Decoded = { predictions: PredictionRecord[]; labels: LabelRecord[] };

/** The predictions and labels of one archive object, in the object's order (null: gone since listed). */
async function readArchiveObject(env: Env, key: string): Promise<Decoded | null> {
  const body = await env.ARTIFACTS.get(key);
  if (!body) return null;
  const bytes = new Uint8Array(await body.arrayBuffer());
  if (isBlock(bytes)) return decodeBlock(bytes);
  const predictions: PredictionRecord[] = [];
  const labels: LabelRecord[] = [];
  for (const line of (await gunzip(bytes)).split("\n")) {
    if (!line) continue;
    const r = JSON.parse(line) as ArchiveRecord;
    if (r.t === "b") predictions.push(...legacyBlockPredictions(r));
    else if (r.t === "p") predictions.push(r);
    else labels.push(r);
  }
  return { predictions, labels };
}

/** The flush time of a key ending in a UUIDv7 (`<day>/<uuid>.<ext>`), else 0. */
function keyTime(key: string): number {
  const name = key.slice(key.lastIndexOf("/") + 1);
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7/i.test(name)) return 0;
  return parseInt(name.slice(0, 8) + name.slice(9, 13), 16);
}

/** The model's archive objects in day folders from `firstDay` on, newest bound first. */
async function listArchive(env: Env, model: string, firstDay: string): Promise<ArchiveObject[]> {
  const prefix = archivePrefix(model);
  const found: ArchiveObject[] = [];
  let cursor: string | undefined;
  do {
    const page = await env.ARTIFACTS.list({ prefix, cursor, limit: 1000 });
    for (const o of page.objects) {
      if (o.key.slice(prefix.length, prefix.length + 10) < firstDay) continue;
      found.push({ key: o.key, bound: keyTime(o.key) || o.uploaded.getTime() });
    }
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return found.sort((a, b) => b.bound - a.bound || (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
}

/**
 * The newest `capacity` labelled predictions found, newest by (prediction time, request id, row):
 * a binary min-heap over parallel arrays (time; object index, position in the object and row
 * number; request id; label).
 */
class NewestRows {
  size = 0;
  at = new Float64Array(1024);
  ref = new Uint32Array(3 * 1024);
  id: string[] = [];
  label: (number | string)[] = [];
  constructor(readonly capacity: number) {}

  get full(): boolean {
    return this.size >= this.capacity;
  }
  /** The oldest kept time (meaningful when full). */
  get oldest(): number {
    return this.at[0];
  }
  object(n: number): number {
    return this.ref[3 * n];
  }
  position(n: number): number {
    return this.ref[3 * n + 1];
  }
  row(n: number): number {
    return this.ref[3 * n + 2];
  }

  /** Keeps the row if it is among the newest `capacity` offered so far. */
  offer(at: number, object: number, position: number, id: string, row: number, label: number | string) {
    if (this.full) {
      if (at < this.at[0] || (at === this.at[0] && (id < this.id[0] || (id === this.id[0] && row <= this.row(0))))) return;
      this.set(0, at, object, position, id, row, label);
      this.down(0);
      return;
    }
    if (this.size === this.at.length) {
      const at2 = new Float64Array(this.at.length * 2);
      at2.set(this.at);
      this.at = at2;
      const ref2 = new Uint32Array(this.ref.length * 2);
      ref2.set(this.ref);
      this.ref = ref2;
    }
    this.set(this.size, at, object, position, id, row, label);
    this.up(this.size++);
  }

  private set(i: number, at: number, object: number, position: number, id: string, row: number, label: number | string) {
    this.at[i] = at;
    this.ref[3 * i] = object;
    this.ref[3 * i + 1] = position;
    this.ref[3 * i + 2] = row;
    this.id[i] = id;
    this.label[i] = label;
  }
  private swap(i: number, j: number) {
    const { at, ref, id, label } = this;
    [at[i], at[j]] = [at[j], at[i]];
    for (let k = 0; k < 3; k++) [ref[3 * i + k], ref[3 * j + k]] = [ref[3 * j + k], ref[3 * i + k]];
    [id[i], id[j]] = [id[j], id[i]];
    [label[i], label[j]] = [label[j], label[i]];
  }
  /** Whether row i is older than row j (time, then request id, then row). */
  private older(i: number, j: number): boolean {
    const { at, id } = this;
    return at[i] < at[j] || (at[i] === at[j] && (id[i] < id[j] || (id[i] === id[j] && this.row(i) < this.row(j))));
  }
  private up(i: number) {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.older(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }
  private down(i: number) {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let least = i;
      if (l < this.size && this.older(l, least)) least = l;
      if (r < this.size && this.older(r, least)) least = r;
      if (least === i) return;
      this.swap(i, least);
      i = least;
    }
  }
}

/** Streams text through gzip into memory (the compressed bytes only). */
class GzipSink {
  private readonly stream = new CompressionStream("gzip");
  private readonly writer = this.stream.writable.getWriter();
  private readonly bytes = new Response(this.stream.readable).arrayBuffer();
  private readonly encoder = new TextEncoder();
  write(text: string): Promise<void> {
    return this.writer.write(this.encoder.encode(text));
  }
  async close(): Promise<ArrayBuffer> {
    await this.writer.close();
    return this.bytes;
  }
}

/** A prediction read in pass 1: its time, join key, request id and row, and where it is (object index, position). */
interface Waiting {
  at: number;
  key: string;
  id: string;
  row: number;
  object: number;
  position: number;
}

/** Builds a job's training and out-of-time export from the model's archive (see the header). */
export async function exportTrainingData(env: Env, model: string, jobId: string, cfg: StoredConfig, now = Date.now(), sliceRows = SLICE_ROWS): Promise<ExportSummary> {
  const since = now - cfg.export.days * DAY;
  const objects = await listArchive(env, model, new Date(since).toISOString().slice(0, 10));

  // Pass 1: choose the rows.
  const newest = new NewestRows(cfg.export.max_rows);
  const labels = new Map<string, number | string>();
  /** Predictions read that may still have a label in an unread object. */
  let waiting: Waiting[] = [];
  let labelled = 0;
  let archived = 0;
  let read = 0;
  const join = (p: Waiting): boolean => {
    const y = labels.get(p.key);
    if (y === undefined) return false;
    labels.delete(p.key);
    labelled++;
    newest.offer(p.at, p.object, p.position, p.id, p.row, y);
    return true;
  };
  /** Resolves the waiting predictions newer than `unreadBound` + the clock allowance: every object that may hold their label is read. */
  const resolve = (unreadBound: number) => {
    const still: typeof waiting = [];
    for (const p of waiting) if (p.at - CLOCK_SKEW_MS <= unreadBound) still.push(p);
    else join(p);
    waiting = still;
  };
  for (let i = 0; i < objects.length; i++) {
    const bound = objects[i].bound;
    resolve(bound);
    // No unread object holds a prediction newer than `bound`, nor a label of one in the window.
    if (newest.full && bound + CLOCK_SKEW_MS < newest.oldest) break;
    if (bound + CLOCK_SKEW_MS < since) break;
    const decoded = await readArchiveObject(env, objects[i].key);
    if (!decoded) continue;
    read++;
    // Newest object first, and within an object the last label wins: keep a key's first label seen from the end.
    for (let j = decoded.labels.length - 1; j >= 0; j--) {
      const l = decoded.labels[j];
      const key = `${l.id}#${l.row}`;
      if (!labels.has(key)) labels.set(key, l.y);
    }
    decoded.predictions.forEach((p, position) => {
      if (p.at < since) return;
      archived++;
      if (newest.full && p.at < newest.oldest) return;
      const w: Waiting = { at: p.at, key: `${p.id}#${p.row}`, id: p.id, row: p.row, object: i, position };
      if (!join(w)) waiting.push(w);
    });
  }
  resolve(-Infinity);

  // The chosen rows in time order (ties: request id, then row) and the out-of-time cut.
  const order = Array.from({ length: newest.size }, (_, n) => n);
  const { at, id } = newest;
  order.sort((a, b) => at[a] - at[b] || (id[a] < id[b] ? -1 : id[a] > id[b] ? 1 : newest.row(a) - newest.row(b)));
  const cut = order.length - Math.round(order.length * cfg.export.oot_fraction);

  // Pass 2: write each set, a slice of rows at a time.
  let cached: { object: number; decoded: Decoded | null } | null = null;
  const decodedOf = async (object: number) => {
    if (cached?.object !== object) cached = { object, decoded: await readArchiveObject(env, objects[object].key) };
    return cached.decoded;
  };
  let lost = 0;
  const write = async (part: "train" | "oot", from: number, to: number) => {
    const sink = new GzipSink();
    for (let start = from; start < to; start += sliceRows) {
      const end = Math.min(to, start + sliceRows);
      const slice = order.slice(start, end);
      // Each object of the slice read once: its rows of the slice by object, then placed by rank.
      const byObject = slice.map((n, rank) => rank).sort((x, y) => newest.object(slice[x]) - newest.object(slice[y]) || x - y);
      const lines: string[] = new Array(slice.length).fill("");
      for (const rank of byObject) {
        const n = slice[rank];
        const p = (await decodedOf(newest.object(n)))?.predictions[newest.position(n)];
        if (!p) {
          lost++; // the object was deleted between the passes
          continue;
        }
        const row: ExportRow = { request_id: p.id, row: p.row, at: p.at, version: p.v, features: p.f, score: p.s, label: newest.label[n] };
        lines[rank] = JSON.stringify(row) + "\n";
      }
      await sink.write(lines.join(""));
    }
    await env.ARTIFACTS.put(exportKey(jobId, part), await sink.close(), { httpMetadata: { contentType: "application/gzip" } });
  };
  await write("train", 0, cut);
  await write("oot", cut, order.length);
  if (lost) throw new Error(`${lost} archived rows were deleted while the export read them; run the export again`);
  const iso = (n?: number) => (n === undefined ? null : new Date(at[n]).toISOString());
  return { train_rows: cut, oot_rows: order.length - cut, labelled_rows: labelled, archived_predictions: archived, objects: read, from: iso(order[0]), oot_from: iso(order[cut]), to: iso(order.at(-1)) };
}

export async function readExport(env: Env, jobId: string, part: "train" | "oot"): Promise<ExportRow[]> {
  const o = await env.ARTIFACTS.get(exportKey(jobId, part));
  if (!o) return [];
  return (await gunzip(o.body)).split("\n").filter(Boolean).map((l) => JSON.parse(l) as ExportRow);
}
