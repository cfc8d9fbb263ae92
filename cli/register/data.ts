/**
 * Training (and holdout) data as columns of raw cells, from CSV, NDJSON or Parquet. A cell is a
 * string, a number, a boolean or null (missing); CSV cells stay strings until the feature's type is
 * decided, so "007" is not silently a number. Empty CSV cells, JSON nulls and Parquet nulls are
 * missing; in a column otherwise numeric, "NaN"/"nan" (pandas' CSV) and a NaN float are missing too.
 *
 * Parquet is read by hyparquet (pure JS; snappy built in, gzip/zstd/brotli/lz4 from
 * hyparquet-compressors), so the files pandas and pyarrow write by default are read without a
 * native module. Its values are mapped to what the same data as CSV yields: INT64 (BigInt) to a
 * number (refused past 2^53, which a float32 tensor could not hold anyway), floats as they are with
 * NaN as missing, booleans as booleans, UTF-8 text as strings, dates/timestamps as ISO-8601 text.
 * Nested columns (lists, structs, maps) and raw binary are refused naming the column.
 */
import { readFileSync } from "node:fs";
import { parquetMetadata, parquetReadObjects, parquetSchema } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { parseCsv } from "../../scripts/lib/csv.ts";

export type Cell = string | number | boolean | null;

export interface Table {
  file: string;
  header: string[];
  rows: Cell[][];
}

/** Reads a .csv, .ndjson/.jsonl or .parquet (.pq) file by its extension. */
export async function readTable(file: string): Promise<Table> {
  const lower = file.toLowerCase();
  if (lower.endsWith(".parquet") || lower.endsWith(".pq")) return readParquet(file);
  const text = readFileSync(file, "utf8");
  if (lower.endsWith(".ndjson") || lower.endsWith(".jsonl")) {
    const objects = text.split("\n").filter((l) => l.trim()).map((l, i) => {
      try {
        return JSON.parse(l) as Record<string, Cell>;
      } catch {
        throw new Error(`${file}: line ${i + 1} is not JSON`);
      }
    });
    const header = [...new Set(objects.flatMap((o) => Object.keys(o)))];
    return { file, header, rows: objects.map((o) => header.map((h) => (o[h] === undefined ? null : o[h]))) };
  }
  const { header, rows } = parseCsv(text);
  return { file, header, rows: rows.map((r) => r.map((c) => (c === "" ? null : c))) };
}

/** One Parquet value as the cell the same value written to CSV would become. */
function parquetCell(file: string, name: string, v: unknown): Cell {
  if (v === null || v === undefined) return null;
  if (typeof v === "number") return Number.isNaN(v) ? null : v;
  if (typeof v === "bigint") {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new Error(`${file}: column '${name}' holds ${v}, beyond the integers a double (and so the API's JSON) represents exactly`);
    return Number(v);
  }
  if (typeof v === "boolean" || typeof v === "string") return v;
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
  const what = v instanceof Uint8Array ? "raw binary (not UTF-8 text)" : Array.isArray(v) ? "a list" : "a nested value";
  throw new Error(`${file}: column '${name}' holds ${what}; register reads flat columns of numbers, booleans and text`);
}

async function readParquet(file: string): Promise<Table> {
  const bytes = readFileSync(file);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  let header: string[];
  let objects: Record<string, unknown>[];
  try {
    const metadata = parquetMetadata(buffer);
    const top = parquetSchema(metadata).children;
    const nested = top.find((c) => c.children.length > 0);
    if (nested) throw new Error(`column '${nested.element.name}' is nested (a list, struct or map); register reads flat columns`);
    header = top.map((c) => c.element.name);
    objects = (await parquetReadObjects({ file: buffer, metadata, compressors })) as Record<string, unknown>[];
  } catch (error) {
    throw new Error(`${file}: not a Parquet file register can read (${(error as Error).message})`);
  }
  return { file, header, rows: objects.map((o) => header.map((h) => parquetCell(file, h, o[h]))) };
}

export function column(table: Table, name: string): Cell[] {
  const i = table.header.indexOf(name);
  if (i < 0) throw new Error(`${table.file}: no column '${name}' (columns: ${table.header.join(", ")})`);
  return table.rows.map((r) => r[i]);
}

const NAN = new Set(["NaN", "nan"]);

/** The column as numbers (missing = NaN), or undefined when some present cell is not a number. */
export function asNumbers(cells: Cell[]): number[] | undefined {
  const out: number[] = [];
  for (const c of cells) {
    if (c === null || (typeof c === "string" && NAN.has(c))) out.push(Number.NaN);
    else if (typeof c === "number") out.push(c);
    else if (typeof c === "string" && c.trim() !== "" && Number.isFinite(Number(c))) out.push(Number(c));
    else return undefined;
  }
  return out;
}

/** The column as booleans (missing = null), or undefined when some present cell is not true/false. */
export function asBooleans(cells: Cell[]): (boolean | null)[] | undefined {
  const out: (boolean | null)[] = [];
  for (const c of cells) {
    if (c === null) out.push(null);
    else if (typeof c === "boolean") out.push(c);
    else if (c === "true" || c === "True" || c === "TRUE") out.push(true);
    else if (c === "false" || c === "False" || c === "FALSE") out.push(false);
    else return undefined;
  }
  return out;
}

export function asStrings(cells: Cell[]): (string | null)[] {
  return cells.map((c) => (c === null ? null : String(c)));
}
