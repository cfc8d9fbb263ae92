/**
 * Columnar archive blocks: what the serving isolates write to the payload archive (archive.ts).
 *
 * Serialising the buffered rows as JSON and gzipping them in the serving isolate cost ~6 µs of CPU
 * per archived row (bench:stages' archive variants, README), which is most of a 100-row request's
 * budget under the < 3% monitoring goal. A block stores each feature as one Float64 column plus one
 * byte per cell saying what the cell holds, strings through a dictionary, and is not compressed: the
 * writer does one pass over the rows with typed-array stores, and no text is built per row.
 *
 *   bytes 0-3   "EMA1"
 *   bytes 4-7   header length H (uint32, little-endian)
 *   8..8+H      header: UTF-8 JSON {n, k, d, x, q, p, l} (below), padded with spaces to 8 bytes
 *   Float64     scores[n], then values[n] of each feature, in k's order
 *   Uint8       kinds[n] of each feature, in k's order
 *
 * n: rows in the columns; k: feature names; d: string dictionary; x: other JSON values (booleans,
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
  const header: BlockHeader = { n, k: keys, d: dict, x: extra, q, p, l: labels as LabelRecord[] };
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  if (padded !== json.length) {
    const spaced = new Uint8Array(padded).fill(0x20);
    spaced.set(json);
    json = spaced;
  }
  const floatsAt = 8 + json.length;
  const kindsAt = floatsAt + 8 * n * (1 + keys.length);
  const out = new Uint8Array(kindsAt + n * keys.length);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(4, json.length, true);
  out.set(json, 8);
  const floats = new Float64Array(out.buffer, floatsAt, n * (1 + keys.length));
  floats.set(scores, 0);
  for (let j = 0; j < keys.length; j++) {
    floats.set(values[j], n * (1 + j));
    out.set(kinds[j], kindsAt + n * j);
  }
  return out;
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
  const { n, k, d, x } = header;
  const floatsAt = 8 + h;
  const kindsAt = floatsAt + 8 * n * (1 + k.length);
  if (kindsAt + n * k.length !== bytes.length) throw new Error(`archive block: ${bytes.length} bytes, expected ${kindsAt + n * k.length}`);
  // Copy to an aligned buffer (a Uint8Array's offset need not be a multiple of 8).
  const floats = new Float64Array(bytes.slice(floatsAt, kindsAt).buffer);
  const kinds = bytes.subarray(kindsAt);
  const predictions: PredictionRecord[] = [];
  let i = 0;
  for (const [id, at, v, keep, count] of header.q) {
    for (let m = 0; m < count; m++, i++) {
      const cells: [string, unknown][] = [];
      for (let j = 0; j < k.length; j++) {
        const kind = kinds[n * j + i];
        if (kind === MISSING) continue;
        const value = floats[n * (1 + j) + i];
        cells.push([k[j], kind === NUMBER ? value : kind === STRING ? d[value] : x[value]]);
      }
      // fromEntries defines own properties (a feature named "__proto__" stays a feature).
      predictions.push({ t: "p", id, row: keep ? keep[m] : m, at, v, f: Object.fromEntries(cells), s: floats[i] });
    }
  }
  if (i !== n) throw new Error(`archive block: requests hold ${i} rows, columns ${n}`);
  return { predictions: [...predictions, ...header.p], labels: header.l };
}
