/**
 * Scores one chunk: reads its byte range of the input from R2 (only the object version the job was
 * created with), parses its records, turns each into the feature object the model's schema wants,
 * sets bad rows aside with their row number and reason, scores the rest in one session run through
 * the inference path (`scoreResolved`), and writes the chunk's output part and errors part to R2
 * under fixed keys, so a redelivered chunk rewrites the same objects.
 *
 * Output per row, in input order: the input columns, `prediction`, one `probability_<class>` per
 * class (classifiers), `model_version`, `row_number`. NDJSON output nests the input under `input`
 * and probabilities under `probabilities`, so no input field can collide with an output field.
 * CSV input keeps every column as read; NDJSON input written as CSV keeps the schema's features.
 */
import { ApiError } from "../http/errors";
import { parseJsonText } from "../http/limits";
import { rowValidator, type Resolved } from "../inference/features";
import type { Prediction, PredictionColumns } from "../inference/outputs";
import { scoreResolved } from "../inference/predictor";
import type { FeatureSpec } from "../registry/manifest";
import type { ModelVersion } from "../registry/store";
import { csvLine, FormatError, ndjsonLines, parseCsvRecords } from "./formats";
import { errorsPartKey, outputPartKey } from "./keys";
import type { ChunkMessage } from "./messages";
import type { PartRecord } from "./store";
import type { BatchJobRow } from "./tables";

/** What a scored chunk hands to monitoring. */
export interface ScoredChunk {
  record: PartRecord;
  resolved: Resolved;
  raw: Record<string, unknown>[];
  predictions: Prediction[];
  columns: PredictionColumns | null;
  inferenceMs: number;
}

/** The CSV header of the output (NDJSON output has none). */
export function outputColumns(job: Pick<BatchJobRow, "inputFormat" | "columns">, version: ModelVersion): string[] {
  const input = job.inputFormat === "csv" ? (job.columns ?? []) : version.featureSchema.features.map((f) => f.name);
  return [...input, ...resultColumns(version)];
}

function resultColumns(version: ModelVersion): string[] {
  const out = version.featureSchema.output;
  const probs = out.kind === "classifier" ? out.classes.map((c) => `probability_${String(c)}`) : [];
  return ["prediction", ...probs, "model_version", "row_number"];
}

/** Output column names that would collide with an input column (a CSV job with one cannot start). */
export function collidingColumns(columns: string[], version: ModelVersion): string[] {
  const results = new Set(resultColumns(version));
  return columns.filter((c) => results.has(c));
}

/** A CSV cell as the feature's type; unparseable cells stay strings so validation names them. */
function cellValue(f: FeatureSpec, cell: string): unknown {
  const t = cell.trim();
  if (t === "") return undefined; // an empty cell is a missing value (absent, as the policy sees it)
  switch (f.type) {
    case "numeric":
    case "integer": {
      const n = Number(t);
      return Number.isNaN(n) ? cell : n;
    }
    case "boolean": {
      const l = t.toLowerCase();
      return l === "true" || l === "1" ? true : l === "false" || l === "0" ? false : cell;
    }
    default:
      return cell;
  }
}

function describeIssues(error: unknown): string {
  if (error instanceof ApiError && error.details?.length) return error.details.map((d) => `${d.path}: ${d.message}`).join("; ");
  return error instanceof Error ? error.message : String(error);
}

export async function scoreChunk(env: Env, job: BatchJobRow, version: ModelVersion, msg: ChunkMessage): Promise<ScoredChunk> {
  const object = await env.BATCH.get(job.inputKey, { range: { offset: msg.start, length: msg.end - msg.start }, onlyIf: { etagMatches: job.inputEtag } });
  if (!object) throw new Error(`input object ${job.inputKey} no longer exists`);
  if (!("body" in object)) throw new Error(`input object ${job.inputKey} was replaced after the job was created (etag changed)`);
  const text = await object.text();

  const features = version.featureSchema.features;
  const raw: Record<string, unknown>[] = [];
  /** Input fields as written to the output: CSV cells, or the NDJSON object. */
  const inputs: (string[] | Record<string, unknown>)[] = [];
  const rowNumbers: number[] = [];
  const errors: string[] = [];
  const bad = (row: number, reason: string) => errors.push(JSON.stringify({ row_number: row, reason }) + "\n");

  let count: number;
  if (job.inputFormat === "csv") {
    const header = job.columns ?? [];
    const at = features.map((f) => header.indexOf(f.name));
    let records: string[][];
    try {
      records = parseCsvRecords(text);
    } catch (error) {
      if (error instanceof FormatError) throw new Error(`chunk ${msg.part} does not parse as CSV: ${error.message}`);
      throw error;
    }
    count = records.length;
    records.forEach((fields, i) => {
      const row = msg.first_row + i;
      if (fields.length !== header.length) return bad(row, `expected ${header.length} fields, got ${fields.length}`);
      const values: Record<string, unknown> = {};
      for (let j = 0; j < features.length; j++) {
        if (at[j] < 0) continue;
        const v = cellValue(features[j], fields[at[j]]);
        if (v !== undefined) values[features[j].name] = v;
      }
      raw.push(values);
      inputs.push(fields);
      rowNumbers.push(row);
    });
  } else {
    const lines = ndjsonLines(text);
    count = lines.length;
    lines.forEach((line, i) => {
      const row = msg.first_row + i;
      let parsed: unknown;
      try {
        // The request paths' parser: the nesting bound (MAX_JSON_DEPTH) holds for file rows too.
        parsed = parseJsonText(line, `row ${row}`);
      } catch (error) {
        if (error instanceof ApiError) return bad(row, error.message);
        throw error;
      }
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return bad(row, "expected a JSON object of feature values");
      const obj = parsed as Record<string, unknown>;
      const values: Record<string, unknown> = {};
      for (const f of features) if (f.name in obj) values[f.name] = obj[f.name];
      raw.push(values);
      inputs.push(obj);
      rowNumbers.push(row);
    });
  }
  if (count !== msg.rows) throw new Error(`chunk ${msg.part} holds ${count} rows where the plan counted ${msg.rows}`);

  // Validate the whole chunk at once; only when that fails, row by row to set the bad rows aside.
  const validator = rowValidator(version.featureSchema);
  let resolved: Resolved;
  let keep: number[] | null = null;
  try {
    resolved = validator.resolve(raw, () => "");
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    keep = [];
    for (let i = 0; i < raw.length; i++) {
      try {
        validator.resolve([raw[i]], () => "");
        keep.push(i);
      } catch (rowError) {
        if (!(rowError instanceof ApiError)) throw rowError;
        bad(rowNumbers[i], describeIssues(rowError));
      }
    }
    // The good rows again, as one set of columns (only chunks that hold a bad row pay this).
    resolved = validator.resolve(
      keep.map((i) => raw[i]),
      () => "",
    );
  }
  // Errors in row order (parse errors were noted before validation errors).
  if (keep) errors.sort((a, b) => rowOf(a) - rowOf(b));

  const scored = resolved.n ? await scoreResolved(env, version, resolved) : null;
  const out = version.featureSchema.output;
  const classes = out.kind === "classifier" ? out.classes.map(String) : [];
  const csvOut = job.outputFormat === "csv";
  const csvInputColumns = job.inputFormat === "csv" ? null : features.map((f) => f.name);
  let body = "";
  for (let k = 0; k < resolved.n; k++) {
    const i = keep ? keep[k] : k;
    const p = scored!.predictions[k];
    const prediction = "label" in p ? p.label : p.value;
    const probabilities = "label" in p ? p.probabilities : undefined;
    if (csvOut) {
      const input = inputs[i];
      const cells = csvInputColumns ? csvInputColumns.map((name) => cellText((input as Record<string, unknown>)[name])) : (input as string[]).slice();
      cells.push(String(prediction));
      for (const c of classes) cells.push(String(probabilities![c]));
      cells.push(version.version, String(rowNumbers[i]));
      body += csvLine(cells);
    } else {
      const input = inputs[i];
      const obj = Array.isArray(input) ? csvObject(job.columns ?? [], input, raw[i]) : input;
      body += JSON.stringify({ row_number: rowNumbers[i], input: obj, prediction, ...(probabilities ? { probabilities } : {}), model_version: version.version }) + "\n";
    }
  }
  const errorText = errors.join("");
  const encoder = new TextEncoder();
  const bytes = encoder.encode(body);
  const errorBytes = encoder.encode(errorText);
  await Promise.all([
    env.BATCH.put(outputPartKey(job.id, msg.part), bytes),
    errors.length ? env.BATCH.put(errorsPartKey(job.id, msg.part), errorBytes) : env.BATCH.delete(errorsPartKey(job.id, msg.part)),
  ]);
  return {
    record: { part: msg.part, firstRow: msg.first_row, rows: count, errors: errors.length, bytes: bytes.length, errorBytes: errorBytes.length },
    resolved,
    raw: keep ? keep.map((i) => raw[i]) : raw,
    predictions: scored?.predictions ?? [],
    columns: scored?.columns ?? null,
    inferenceMs: scored?.inferenceMs ?? 0,
  };
}

function rowOf(line: string): number {
  return Number(/"row_number":(\d+)/.exec(line)![1]);
}

function cellText(v: unknown): string {
  if (v === null || v === undefined) return "";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

/** A CSV row as an object: feature columns as the typed values scored, other columns as read. */
function csvObject(header: string[], cells: string[], typed: Record<string, unknown>): Record<string, unknown> {
  const obj: Record<string, unknown> = {};
  for (let j = 0; j < header.length; j++) obj[header[j]] = header[j] in typed ? typed[header[j]] : cells[j];
  return obj;
}
