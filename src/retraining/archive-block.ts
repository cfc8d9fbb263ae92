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
 * A buffered prediction request: its validated columns (`Resolved`, src/inference/features.ts) and
 * its schema's features, and its scores. With every row archived these are the request's own
 * arrays (nothing copied); a sampled request holds copies of its kept rows only.
 */
export interface BufferedRequest {
  id: string;
  at: number;
  v: string;
  features: readonly FeatureSpec[];
  /** The archived rows' columns, in `features` order. */
  resolved: Resolved;
  scores: ArrayLike<number>;
  /** Row numbers in the request of the archived rows; null when every row is kept. */
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

/** The rows of `resolved` at `keep` (a sampled request's archived rows), as their own columns. */
export function pickRows(resolved: Resolved, keep: readonly number[]): Resolved {
  const n = keep.length;
  return {
    n,
    columns: resolved.columns.map((c) => {
      const out = c instanceof Int32Array ? new Int32Array(n) : new Float64Array(n);
      for (let m = 0; m < n; m++) out[m] = c[keep[m]];
      return out;
    }),
    missing: resolved.missing.map((mask) => (mask ? Uint8Array.from(keep, (i) => mask[i]) : null)),
  };
}

/**
 * Encodes buffered requests and labels as one block (see the header). The features' columns are
 * copied as they are: numbers into the feature's column, categories as dictionary indexes (the
 * dictionary holds each level once, mapped once per request and feature), booleans as the two
 * `x` values false and true, values a row left out as missing. No per-value look-up or text.
 */
export function encodeBlock(requests: readonly BufferedRequest[], labels: readonly LabelRecord[]): Uint8Array {
  let n = 0;
  for (const q of requests) n += q.resolved.n;
  const keys: string[] = [];
  const index = new Map<string, number>();
  const values: Float64Array[] = [];
  const kinds: Uint8Array[] = [];
  const dict: string[] = [];
  const dictIndex = new Map<string, number>();
  /** Per levels list (a schema's categories), the dictionary index of each level. */
  const dictOfLevels = new Map<readonly string[], Float64Array>();
  const extra: unknown[] = [false, true];
  const scores = new Float64Array(n);
  const q: BlockRequest[] = [];
  let i0 = 0;
  for (const req of requests) {
    const { resolved, features } = req;
    const count = resolved.n;
    q.push([req.id, req.at, req.v, req.keep, count]);
    for (let m = 0; m < count; m++) scores[i0 + m] = req.scores[m];
    for (let j = 0; j < features.length; j++) {
      const f = features[j];
      let c = index.get(f.name);
      if (c === undefined) {
        c = keys.push(f.name) - 1;
        index.set(f.name, c);
        values.push(new Float64Array(n));
        kinds.push(new Uint8Array(n)); // MISSING until written
      }
      const column = resolved.columns[j];
      const absent = resolved.missing[j];
      const out = values[c];
      const kind = kinds[c];
      if (isLevelColumn(f)) {
        const levels = levelsOf(f);
        let map = dictOfLevels.get(levels);
        if (!map) {
          dictOfLevels.set(levels, (map = new Float64Array(levels.length)));
          if (f.type === "boolean") map.set([0, 1]); // extra[0] false, extra[1] true
          else
            levels.forEach((level, k) => {
              let s = dictIndex.get(level);
              if (s === undefined) dictIndex.set(level, (s = dict.push(level) - 1));
              map![k] = s;
            });
        }
        const present = f.type === "boolean" ? OTHER : STRING;
        for (let m = 0; m < count; m++) {
          const k = column[m];
          if ((absent !== null && absent[m] === 1) || k < 0) continue;
          out[i0 + m] = map[k];
          kind[i0 + m] = present;
        }
      } else {
        out.set(column, i0);
        kind.fill(NUMBER, i0, i0 + count);
        if (absent !== null)
          for (let m = 0; m < count; m++)
            if (absent[m] === 1) {
              out[i0 + m] = 0;
              kind[i0 + m] = MISSING;
            }
      }
    }
    i0 += count;
  }
  // Each column (scores first) stored in the narrowest type that holds every one of its values
  // exactly, and its kind bytes only when its cells are not all of one kind.
  const columns = [scores, ...values].map(narrow);
  const kindOf = kinds.map((kk) => {
    const first = kk[0];
    for (let r = 1; r < n; r++) if (kk[r] !== first) return null;
    return n ? first : MISSING;
  });
  const header: BlockHeader = { n, k: keys, t: columns.map((c) => c.type), u: kindOf, d: dict, x: extra, q, p: [], l: labels as LabelRecord[] };
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
  for (let j = 0; j < keys.length; j++) {
    if (kindOf[j] !== null) continue;
    out.set(kinds[j], at);
    at += n;
  }
  return out;
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
