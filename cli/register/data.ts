/**
 * Training (and holdout) data as columns of raw cells, from CSV or NDJSON. A cell is a string, a
 * number, a boolean or null (missing); CSV cells stay strings until the feature's type is decided,
 * so "007" is not silently a number. Empty CSV cells and JSON nulls are missing; in a column
 * otherwise numeric, "NaN"/"nan" (pandas) are missing too. Parquet is not read: export with
 * `df.to_csv(index=False)`.
 */
import { readFileSync } from "node:fs";
import { parseCsv } from "../../scripts/lib/csv.ts";

export type Cell = string | number | boolean | null;

export interface Table {
  file: string;
  header: string[];
  rows: Cell[][];
}

export function readTable(file: string): Table {
  const lower = file.toLowerCase();
  if (lower.endsWith(".parquet")) throw new Error(`${file}: Parquet is not read yet; export it as CSV (pandas: df.to_csv("train.csv", index=False)) or NDJSON`);
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
