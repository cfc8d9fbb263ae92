/**
 * Rows of an offline load file: CSV (RFC 4180 quoting, one record per line: a quoted field may not
 * span lines, so a chunk boundary is always a newline) or NDJSON (one JSON object per line). Each
 * row becomes (entity id, event time, typed values) or a rejection naming the row and the problem;
 * a value of the wrong type rejects its row rather than being coerced or zeroed. Empty cells and
 * JSON nulls are absent values (the feature's fallback applies when served).
 */
import { ApiError } from "../http/errors";
import { parseJsonText } from "../http/limits";
import type { Dtype } from "./definitions";

export type Scalar = number | string | boolean;

export interface LoadRow {
  entity: string;
  t: number;
  values: Record<string, Scalar>;
}

export interface RowSpec {
  format: "csv" | "ndjson";
  columns: string[] | null;
  entityColumn: string;
  timeColumn: string | null;
  /** dtype of each loadable feature column. */
  dtypes: Map<string, Dtype>;
  /** Event time for rows without a time column. */
  defaultTime: number;
}

/** Splits one CSV record; undefined when its quoting is malformed. */
export function splitCsv(line: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let value = "";
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) return undefined;
        value += line.slice(i, q);
        if (line[q + 1] === '"') {
          value += '"';
          i = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      out.push(value);
      if (i === line.length) return out;
      if (line[i] !== ",") return undefined;
      i++;
    } else {
      const comma = line.indexOf(",", i);
      if (comma < 0) {
        out.push(line.slice(i));
        return out;
      }
      out.push(line.slice(i, comma));
      i = comma + 1;
    }
  }
}

function typed(raw: unknown, dtype: Dtype, fromCsv: boolean): Scalar | null | Error {
  if (raw === null || raw === undefined || (fromCsv && raw === "")) return null;
  switch (dtype) {
    case "numeric":
    case "integer": {
      const n = fromCsv && typeof raw === "string" ? Number(raw.trim()) : raw;
      if (typeof n !== "number" || !Number.isFinite(n) || (fromCsv && (raw as string).trim() === "")) return new Error(`expected a number, got ${JSON.stringify(raw)}`);
      if (dtype === "integer" && !Number.isInteger(n)) return new Error(`expected an integer, got ${JSON.stringify(raw)}`);
      return n;
    }
    case "boolean":
      if (typeof raw === "boolean") return raw;
      if (fromCsv && /^(true|1)$/i.test(raw as string)) return true;
      if (fromCsv && /^(false|0)$/i.test(raw as string)) return false;
      return new Error(`expected true or false, got ${JSON.stringify(raw)}`);
    case "categorical":
      if (typeof raw === "string") return raw;
      return new Error(`expected a string, got ${JSON.stringify(raw)}`);
  }
}

export function parseTime(raw: unknown): number | undefined {
  if (typeof raw === "number") return Number.isFinite(raw) && raw >= 0 ? raw : undefined;
  if (typeof raw !== "string" || !raw) return undefined;
  if (/^\d+$/.test(raw)) return Number(raw);
  // ISO 8601 with an explicit zone (Z or +hh:mm) or a plain date (UTC).
  if (!/^\d{4}-\d{2}-\d{2}(?:$|T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})$)/.test(raw)) return undefined;
  const t = Date.parse(raw);
  return Number.isNaN(t) ? undefined : t;
}

/**
 * Parses one line into a row, or returns the reason it is rejected. NDJSON lines go through the
 * request paths' parser (nesting bound MAX_JSON_DEPTH); `lineNumber` names the line in its message.
 */
export function parseRow(line: string, spec: RowSpec, lineNumber?: number): LoadRow | string {
  let record: Record<string, unknown>;
  const fromCsv = spec.format === "csv";
  if (fromCsv) {
    const cells = splitCsv(line);
    if (!cells) return "malformed CSV quoting";
    if (cells.length !== spec.columns!.length) return `expected ${spec.columns!.length} cells, got ${cells.length}`;
    record = {};
    spec.columns!.forEach((c, i) => (record[c] = cells[i]));
  } else {
    let parsed: unknown;
    try {
      parsed = parseJsonText(line, lineNumber === undefined ? "line" : `line ${lineNumber}`);
    } catch (error) {
      if (error instanceof ApiError) return error.message;
      throw error;
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return "expected a JSON object";
    record = parsed as Record<string, unknown>;
  }
  const entity = record[spec.entityColumn];
  const entityText = typeof entity === "number" && Number.isInteger(entity) ? String(entity) : entity;
  if (typeof entityText !== "string" || !entityText || entityText.length > 256) return `missing or invalid entity id in '${spec.entityColumn}'`;
  let t = spec.defaultTime;
  if (spec.timeColumn) {
    const parsedTime = parseTime(record[spec.timeColumn]);
    if (parsedTime === undefined) return `invalid event time in '${spec.timeColumn}': ${JSON.stringify(record[spec.timeColumn])} (epoch ms or ISO 8601 with a zone)`;
    t = parsedTime;
  }
  const values: Record<string, Scalar> = {};
  for (const [key, raw] of Object.entries(record)) {
    if (key === spec.entityColumn || key === spec.timeColumn) continue;
    const dtype = spec.dtypes.get(key);
    if (!dtype) return `unknown feature '${key}'`;
    const v = typed(raw, dtype, fromCsv);
    if (v instanceof Error) return `'${key}': ${v.message}`;
    if (v !== null) values[key] = v;
  }
  return { entity: entityText, t, values };
}
