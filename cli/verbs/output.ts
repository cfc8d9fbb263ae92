/**
 * What the day-to-day verbs share: readable tables, --json for scripts, durations and sizes, and
 * reading a JSON body from a file or an inline --body. Kept free of I/O beyond the `log` it is given
 * so the tests can read what a verb printed.
 */
import { existsSync, readFileSync } from "node:fs";

export type Log = (line: string) => void;
/** A column: a field name (its header), or a header and how to read the cell from a row. */
export type Column<T> = [header: string, value: (row: T) => unknown] | string;

function cell(v: unknown): string {
  if (v === null || v === undefined) return "-";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Math.round(v * 10000) / 10000);
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/**
 * The CLI's one table printer: left-aligned, a header row, "(none)" when there are no rows; cells
 * longer than `maxWidth` are cut with "…" (the full values are in --json).
 */
export function table<T>(rows: T[], columns: Column<T>[], maxWidth = Infinity): string {
  if (!rows.length) return "(none)";
  const cols = columns.map((c): [string, (row: T) => unknown] => (typeof c === "string" ? [c, (r) => (r as Record<string, unknown>)[c]] : c));
  const cut = (s: string) => (s.length > maxWidth ? `${s.slice(0, maxWidth - 1)}…` : s);
  const cells = rows.map((r) => cols.map(([, f]) => cut(cell(f(r)))));
  const widths = cols.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (values: string[]) => values.map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]))).join("  ").trimEnd();
  return [line(cols.map(([h]) => h.toUpperCase())), ...cells.map(line)].join("\n");
}

/** Key/value lines for one object's chosen fields. */
export function fields(pairs: [string, unknown][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${cell(v)}`).join("\n");
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** A JSON body: --body is inline JSON, or a path to a JSON file (a positional FILE works the same). */
export function jsonArg(value: string | undefined, what: string): unknown {
  if (value === undefined) throw new Error(`${what}: give the JSON inline (--body '{…}') or as a file`);
  const text = existsSync(value) ? readFileSync(value, "utf8") : value;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${what}: not JSON (${(error as Error).message})${existsSync(value) ? ` in ${value}` : ""}`);
  }
}

export function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${flag} takes a non-negative integer, got '${value}'`);
  return n;
}

/** The content type of a data file from its extension: .csv or .ndjson/.jsonl. */
export function dataType(file: string): { format: "csv" | "ndjson"; contentType: string } {
  if (/\.csv$/i.test(file)) return { format: "csv", contentType: "text/csv" };
  if (/\.(ndjson|jsonl)$/i.test(file)) return { format: "ndjson", contentType: "application/x-ndjson" };
  throw new Error(`${file}: name a .csv or .ndjson (.jsonl) file`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
