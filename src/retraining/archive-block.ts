/**
 * Columnar archive blocks: what the serving isolates write to the payload archive (archive.ts).
 *
 * Serialising the buffered rows as JSON and gzipping them in the serving isolate cost ~3.4 µs of
 * CPU per archived row (Node, 2,000-row flushes), and in the bench harness the R2 put of each flush
 * costs ~3.7 ms plus ~30 µs per KiB (bench:stages' archive variants; scripts/bench-r2-put.ts). A
 * block is small without compression: each feature is one column stored in the narrowest type
 * that holds all its values exactly (int8/16/32, float32, else float64), strings through a
 * dictionary, with one kind byte per cell only for columns whose cells are not all of one kind.
 * The credit-risk rows take ~30 bytes per row (gzip NDJSON took ~24, the Float64 columns 126).
 * It is built from validation's columns (`Resolved`), not from the request's row objects: numbers
 * are copied column by column and categories mapped through one small table per schema, so the
 * build does no per-value look-up (reading row objects and looking each string up in the
 * dictionary cost ~0.6 µs per row).
 *
 *   bytes 0-3   "EMA1"
 *   bytes 4-7   header length H (uint32, little-endian)
 *   8..8+H      header: UTF-8 JSON {n, k, t, u, d, x, q, p, l} (below)
 *   columns     scores[n], then values[n] of each feature in k's order, each in its type t
 *   kinds       Uint8 kinds[n] of each feature whose u is null, in k's order
 *
 * n: rows in the columns; k: feature names; t: each column's type (scores first); u: a feature's
 * kind when all its cells share it, else null; d: string dictionary; x: other JSON values (booleans:
 * [false, true]; blocks written from raw rows also held arrays and objects); q: requests [id, at,
 * version, row numbers | null (0..count-1), count], whose rows are the columns' rows in order; p:
 * per-row prediction records for rows that were not feature objects (written empty now that rows are
 * validated; read for blocks written before); l: labels. A cell's kind: 0 missing (absent, null or undefined: the feature schema treats
 * both as missing, src/inference/features.ts), 1 number (the value), 2 string (the value is its index
 * in d), 3 other (the index in x). Workers run little-endian; the typed arrays are written and read
 * in the platform's order.
 */

import { isLevelColumn, levelsOf, type Resolved } from "../inference/features";
import type { FeatureSpec } from "../registry/manifest";

export type PredictionRecord = { t: "p"; id: string; row: number; at: number; v: string; f: unknown; s: number };
export type LabelRecord = { t: "l"; id: string; row: number; at: number; y: number | string };

/**
 * A prediction request to archive: its validated columns (`Resolved`, src/inference/features.ts),
 * its schema's features and its scores, all of the request's rows; `keep` names the rows archived.
 * `BlockBuilder.add` copies them at once and keeps no reference.
 */
export interface BufferedRequest {
  id: string;
  at: number;
  v: string;
  features: readonly FeatureSpec[];
  /** The request's columns, in `features` order. */
  resolved: Resolved;
  /** The request's scores, one per row. */
  scores: ArrayLike<number>;
  /** Row numbers in the request of the archived rows (a sampled request); null when every row is archived. */
  keep: number[] | null;
}

type BlockRequest = [id: string, at: number, v: string, keep: number[] | null, count: number];
interface BlockHeader {
  n: number;
  k: string[];
  /** Storage type of each column: the scores, then each feature in k's order. */
  t: ColumnType[];
  /** Each feature's kind when all its cells have that kind (no kind bytes stored), else null. */
  u: (number | null)[];
  d: string[];
  x: unknown[];
  q: BlockRequest[];
  p: PredictionRecord[];
  l: LabelRecord[];
}

const MAGIC = [0x45, 0x4d, 0x41, 0x31]; // "EMA1"
const MISSING = 0;
const NUMBER = 1;
const STRING = 2;
const OTHER = 3;

/**
 * Encodes requests and labels as one block (see the header): a `BlockBuilder` used once.
 */
export function encodeBlock(requests: readonly BufferedRequest[], labels: readonly LabelRecord[]): Uint8Array {
  const builder = new BlockBuilder();
  for (const r of requests) builder.add(r);
  return builder.finish(labels);
}

/**
 * Builds a block as requests arrive: `add` copies a request's archived rows into the builder's
 * columns at once (numbers into the feature's column, categories as dictionary indexes: the
 * dictionary holds each level once, mapped once per levels list; booleans as the two `x` values
 * false and true; values a row left out as missing), so nothing of the request is kept after it.
 * `finish` encodes the rows added since the last `finish` and empties the builder; its columns are
 * reused by the next block.
 *
 * Why copy rather than keep requests until the flush: holding each request's validated arrays for a
 * whole flush (10,000 rows by default) kept them alive across the garbage collector's
 * young-generation passes, which then copied and promoted them; with every row of 100-row requests
 * archived that was the archive's largest cost in the serving isolate after the block itself (the
 * CPU profile's garbage collector share, `npm run profile` with PROFILE_ARCHIVE=1). The archive
 * (archive.ts `PayloadArchive.held`) holds requests only briefly and adds them in batches. The
 * builder's columns are allocated once and grow to the isolate's flush size.
 */
export class BlockBuilder {
  /** Rows added since the last `finish`. */
  rows = 0;
  /** Rows its columns hold room for (what it costs in memory while idle: ~9 bytes a row per feature). */
  capacity = 0;
  private scores = new Float64Array(0);
  /** Every feature column this builder has held, by name; `used` lists this block's, in order of first use. */
  private index = new Map<string, number>();
  private keys: string[] = [];
  private values: Float64Array[] = [];
  private kinds: Uint8Array[] = [];
  private used: number[] = [];
  private inBlock: boolean[] = [];
  private dict: string[] = [];
  private dictIndex = new Map<string, number>();
  /** Per levels list (a schema's categories), the dictionary index of each level. */
  private dictOfLevels = new Map<readonly string[], Float64Array>();
  private q: BlockRequest[] = [];

  /** Copies the request's archived rows (all, or those `keep` names) into the block being built. */
  add(req: BufferedRequest): void {
    const { resolved, features, keep } = req;
    const count = keep ? keep.length : resolved.n;
    const i0 = this.rows;
    this.reserve(i0 + count);
    this.q.push([req.id, req.at, req.v, keep, count]);
    const scores = this.scores;
    if (keep) for (let m = 0; m < count; m++) scores[i0 + m] = req.scores[keep[m]];
    else for (let m = 0; m < count; m++) scores[i0 + m] = req.scores[m];
    for (let j = 0; j < features.length; j++) {
      const f = features[j];
      const c = this.column(f.name);
      const column = resolved.columns[j];
      const absent = resolved.missing[j];
      const out = this.values[c];
      const kind = this.kinds[c];
      if (isLevelColumn(f)) {
        const map = this.levelsMap(f);
        const present = f.type === "boolean" ? OTHER : STRING;
        for (let m = 0; m < count; m++) {
          const r = keep ? keep[m] : m;
          const k = column[r];
          if ((absent !== null && absent[r] === 1) || k < 0) continue;
          out[i0 + m] = map[k];
          kind[i0 + m] = present;
        }
      } else if (keep) {
        for (let m = 0; m < count; m++) {
          const r = keep[m];
          if (absent !== null && absent[r] === 1) continue;
          out[i0 + m] = column[r];
          kind[i0 + m] = NUMBER;
        }
      } else {
        out.set(column.subarray(0, count), i0);
        kind.fill(NUMBER, i0, i0 + count);
        if (absent !== null)
          for (let m = 0; m < count; m++)
            if (absent[m] === 1) {
              out[i0 + m] = 0;
              kind[i0 + m] = MISSING;
            }
      }
    }
    this.rows += count;
  }

  /** The block of every row added since the last `finish`, with `labels`; empties the builder. */
  finish(labels: readonly LabelRecord[]): Uint8Array {
    const n = this.rows;
    const used = this.used;
    // Each column (scores first) stored in the narrowest type that holds every one of its values
    // exactly, and its kind bytes only when its cells are not all of one kind.
    const columns = [this.scores.subarray(0, n), ...used.map((c) => this.values[c].subarray(0, n))].map(narrow);
    const kinds = used.map((c) => this.kinds[c].subarray(0, n));
    const kindOf = kinds.map((kk) => {
      const first = kk[0];
      for (let r = 1; r < n; r++) if (kk[r] !== first) return null;
      return n ? first : MISSING;
    });
    const header: BlockHeader = { n, k: used.map((c) => this.keys[c]), t: columns.map((c) => c.type), u: kindOf, d: this.dict, x: [false, true], q: this.q, p: [], l: labels as LabelRecord[] };
    const json = new TextEncoder().encode(JSON.stringify(header));
    let size = 8 + json.length;
    for (const c of columns) size += c.array.byteLength;
    for (const u of kindOf) if (u === null) size += n;
    const out = new Uint8Array(size);
    out.set(MAGIC, 0);
    new DataView(out.buffer).setUint32(4, json.length, true);
    out.set(json, 8);
    let at = 8 + json.length;
    for (const c of columns) {
      out.set(new Uint8Array(c.array.buffer, c.array.byteOffset, c.array.byteLength), at);
      at += c.array.byteLength;
    }
    for (let j = 0; j < used.length; j++) {
      if (kindOf[j] !== null) continue;
      out.set(kinds[j], at);
      at += n;
    }
    this.clear();
    return out;
  }

  /** Drops every row added since the last `finish`: this block's cells back to 0 and missing (what a column a request did not fill reads), no requests, a new dictionary. */
  clear() {
    for (const c of this.used) {
      this.values[c].fill(0, 0, this.rows);
      this.kinds[c].fill(MISSING, 0, this.rows);
      this.inBlock[c] = false;
    }
    this.used = [];
    this.rows = 0;
    this.q = [];
    this.dict = [];
    this.dictIndex.clear();
    this.dictOfLevels.clear();
  }

  /** The column of feature `name`, entered in this block's columns on first use (its earlier rows missing). */
  private column(name: string): number {
    let c = this.index.get(name);
    if (c === undefined) {
      c = this.keys.push(name) - 1;
      this.index.set(name, c);
      this.values.push(new Float64Array(this.capacity));
      this.kinds.push(new Uint8Array(this.capacity)); // MISSING until written
      this.inBlock.push(false);
    }
    if (!this.inBlock[c]) {
      this.inBlock[c] = true;
      this.used.push(c);
    }
    return c;
  }

  /** The dictionary index of each of a level column's levels (booleans: `x` indexes false 0, true 1). */
  private levelsMap(f: FeatureSpec): Float64Array {
    const levels = levelsOf(f);
    let map = this.dictOfLevels.get(levels);
    if (map) return map;
    this.dictOfLevels.set(levels, (map = new Float64Array(levels.length)));
    if (f.type === "boolean") map.set([0, 1]); // extra[0] false, extra[1] true
    else
      levels.forEach((level, k) => {
        let s = this.dictIndex.get(level);
        if (s === undefined) this.dictIndex.set(level, (s = this.dict.push(level) - 1));
        map![k] = s;
      });
    return map;
  }

  /** Room for `rows` rows in every column (doubling, so a builder grows to its flush size a few times and then stays). */
  private reserve(rows: number) {
    if (rows <= this.capacity) return;
    const capacity = Math.max(rows, 2 * this.capacity, 1024);
    const grow = <T extends Float64Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(capacity);
      b.set(a.subarray(0, this.rows));
      return b;
    };
    this.scores = grow(this.scores, (k) => new Float64Array(k));
    this.values = this.values.map((v) => grow(v, (k) => new Float64Array(k)));
    this.kinds = this.kinds.map((v) => grow(v, (k) => new Uint8Array(k)));
    this.capacity = capacity;
  }
}

type ColumnType = "i8" | "i16" | "i32" | "f32" | "f64";
const ARRAYS = { i8: Int8Array, i16: Int16Array, i32: Int32Array, f32: Float32Array, f64: Float64Array } as const;

/** A Float64 column in the narrowest type that holds each value exactly (-0 only in a float type). */
function narrow(values: Float64Array): { type: ColumnType; array: ArrayBufferView & ArrayLike<number> } {
  let min = 0;
  let max = 0;
  let r = 0;
  // Integers first (the common case: counts, amounts, dictionary indexes), then float32.
  for (; r < values.length; r++) {
    const v = values[r];
    if (!Number.isInteger(v) || (v === 0 && 1 / v < 0)) break;
    if (v < min) min = v;
    else if (v > max) max = v;
  }
  let type: ColumnType;
  if (r === values.length && min >= -2147483648 && max <= 2147483647) type = min >= -128 && max <= 127 ? "i8" : min >= -32768 && max <= 32767 ? "i16" : "i32";
  else {
    let s = 0;
    while (s < values.length && Math.fround(values[s]) === values[s]) s++;
    type = s === values.length ? "f32" : "f64";
  }
  if (type === "f64") return { type, array: values };
  const array = new ARRAYS[type](values.length);
  array.set(values);
  return { type, array };
}

export function isBlock(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && MAGIC.every((b, i) => bytes[i] === b);
}

/** The predictions and labels of a block; features as objects with missing cells omitted. */
export function decodeBlock(bytes: Uint8Array): { predictions: PredictionRecord[]; labels: LabelRecord[] } {
  if (!isBlock(bytes)) throw new Error("not an archive block");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = view.getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + h))) as BlockHeader;
  const { n, k, t, u, d, x } = header;
  if (t.length !== k.length + 1 || u.length !== k.length || t.some((type) => !(type in ARRAYS))) throw new Error("archive block: header does not describe its columns");
  let at = 8 + h;
  // Each column copied to an aligned array of its type (its offset in the block need not be aligned).
  const columns = t.map((type) => {
    const Array = ARRAYS[type];
    const end = at + n * Array.BYTES_PER_ELEMENT;
    const array = new Array(bytes.slice(at, end).buffer);
    at = end;
    return array;
  });
  const kinds = u.map((kind) => {
    if (kind !== null) return null;
    at += n;
    return bytes.subarray(at - n, at);
  });
  if (at !== bytes.length) throw new Error(`archive block: ${bytes.length} bytes, expected ${at}`);
  const floats = columns[0];
  const predictions: PredictionRecord[] = [];
  let i = 0;
  for (const [id, at, v, keep, count] of header.q) {
    for (let m = 0; m < count; m++, i++) {
      const cells: [string, unknown][] = [];
      for (let j = 0; j < k.length; j++) {
        const kind = kinds[j]?.[i] ?? u[j]!;
        if (kind === MISSING) continue;
        const value = columns[1 + j][i];
        cells.push([k[j], kind === NUMBER ? value : kind === STRING ? d[value] : x[value]]);
      }
      // fromEntries defines own properties (a feature named "__proto__" stays a feature).
      predictions.push({ t: "p", id, row: keep ? keep[m] : m, at, v, f: Object.fromEntries(cells), s: floats[i] });
    }
  }
  if (i !== n) throw new Error(`archive block: requests hold ${i} rows, columns ${n}`);
  return { predictions: [...predictions, ...header.p], labels: header.l };
}
