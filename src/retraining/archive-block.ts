/**
 * Columnar archive blocks: what the serving isolates write to the payload archive (archive.ts).
 *
 * Serialising the buffered rows as JSON and gzipping them in the serving isolate cost ~3.4 µs of
 * CPU per archived row (Node, 2,000-row flushes), and in the bench harness the R2 put of each flush
 * costs ~3.7 ms plus ~30 µs per KiB (bench:stages' archive variants; scripts/bench-r2-put.ts). A
 * block is built in one pass over the rows with typed-array stores (~0.6 µs per row, no text per
 * row) and is small without compression: each feature is one column stored in the narrowest type
 * that holds all its values exactly (int8/16/32, float32, else float64), strings through a
 * dictionary, with one kind byte per cell only for columns whose cells are not all of one kind.
 * The credit-risk rows take ~30 bytes per row (gzip NDJSON took ~24, the Float64 columns 126).
 *
 *   bytes 0-3   "EMA1"
 *   bytes 4-7   header length H (uint32, little-endian)
 *   8..8+H      header: UTF-8 JSON {n, k, t, u, d, x, q, p, l} (below)
 *   columns     scores[n], then values[n] of each feature in k's order, each in its type t
 *   kinds       Uint8 kinds[n] of each feature whose u is null, in k's order
 *
 * n: rows in the columns; k: feature names; t: each column's type (scores first); u: a feature's
 * kind when all its cells share it, else null; d: string dictionary; x: other JSON values (booleans,
 * arrays, objects); q: requests [id, at, version, row numbers | null (0..count-1), count], whose rows
 * are the columns' rows in order; p: per-row prediction records for rows that are not feature
 * objects; l: labels. A cell's kind: 0 missing (absent, null or undefined: the feature schema treats
 * both as missing, src/inference/features.ts), 1 number (the value), 2 string (the value is its index
 * in d), 3 other (the index in x). Workers run little-endian; the typed arrays are written and read
 * in the platform's order.
 */

export type PredictionRecord = { t: "p"; id: string; row: number; at: number; v: string; f: unknown; s: number };
export type LabelRecord = { t: "l"; id: string; row: number; at: number; y: number | string };

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

export const isFeatureObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);

/** Encodes buffered requests and labels as one block (see the header). */
export function encodeBlock(requests: readonly BufferedRequest[], labels: readonly LabelRecord[]): Uint8Array {
  let n = 0;
  const objects: boolean[] = requests.map((q) => {
    const all = q.rows.every(isFeatureObject);
    if (all) n += q.rows.length;
    return all;
  });
  const keys: string[] = [];
  const index = new Map<string, number>();
  const values: Float64Array[] = [];
  const kinds: Uint8Array[] = [];
  const dict: string[] = [];
  const dictIndex = new Map<string, number>();
  const extra: unknown[] = [];
  const scores = new Float64Array(n);
  const q: BlockRequest[] = [];
  const p: PredictionRecord[] = [];
  // Rows parsed from one JSON body share their key order: the column of the key at each position is
  // remembered and reused while the same key string sits there.
  const seenKey: string[] = [];
  const seenCol: number[] = [];
  let i = 0;
  for (let r = 0; r < requests.length; r++) {
    const req = requests[r];
    if (!objects[r]) {
      for (let m = 0; m < req.rows.length; m++) p.push({ t: "p", id: req.id, row: req.keep ? req.keep[m] : m, at: req.at, v: req.v, f: req.rows[m], s: req.scores[m] });
      continue;
    }
    q.push([req.id, req.at, req.v, req.keep, req.rows.length]);
    for (let m = 0; m < req.rows.length; m++, i++) {
      const row = req.rows[m] as Record<string, unknown>;
      scores[i] = req.scores[m];
      let c = 0;
      for (const key in row) {
        let j: number;
        if (seenKey[c] === key) j = seenCol[c];
        else {
          let found = index.get(key);
          if (found === undefined) {
            found = keys.push(key) - 1;
            index.set(key, found);
            values.push(new Float64Array(n));
            kinds.push(new Uint8Array(n));
          }
          seenKey[c] = key;
          seenCol[c] = j = found;
        }
        c++;
        const value = row[key];
        if (typeof value === "number") {
          values[j][i] = value;
          kinds[j][i] = NUMBER;
        } else if (typeof value === "string") {
          let s = dictIndex.get(value);
          if (s === undefined) dictIndex.set(value, (s = dict.push(value) - 1));
          values[j][i] = s;
          kinds[j][i] = STRING;
        } else if (value !== null && value !== undefined) {
          values[j][i] = extra.push(value) - 1;
          kinds[j][i] = OTHER;
        }
      }
    }
  }
  // Each column (scores first) stored in the narrowest type that holds every one of its values
  // exactly, and its kind bytes only when its cells are not all of one kind.
  const columns = [scores, ...values].map(narrow);
  const kindOf = kinds.map((kk) => {
    const first = kk[0];
    for (let r = 1; r < n; r++) if (kk[r] !== first) return null;
    return n ? first : MISSING;
  });
  const header: BlockHeader = { n, k: keys, t: columns.map((c) => c.type), u: kindOf, d: dict, x: extra, q, p, l: labels as LabelRecord[] };
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
