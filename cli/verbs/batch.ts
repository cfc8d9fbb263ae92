/**
 * `eml batch …`: batch scoring from the command line (src/batch/routes.ts).
 *   submit FILE --model M [--version V | --alias A] [--output-key K] [--output-format F]
 *          [--chunk-size N] [--out LOCAL] [--detach]
 *       uploads the CSV/NDJSON file with a progress line, follows the job (rows done, rows/s,
 *       ETA) and downloads the result (and the errors file when rows failed); --detach returns
 *       once the job is accepted
 *   status ID | cancel ID | list [--limit N]
 */
import { createWriteStream } from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Api } from "../api.ts";
import type { Config } from "../config.ts";
import { bytes, dataType, duration, fields, positiveInt, sleep, table, type Log } from "./output.ts";
import { withProgressLine } from "../progress.ts";

export interface BatchFlags {
  model?: string;
  version?: string;
  alias?: string[];
  "output-key"?: string;
  "output-format"?: string;
  "chunk-size"?: string;
  out?: string;
  detach?: boolean;
  limit?: string;
  json?: boolean;
  pollMs?: number;
}

export interface Job {
  job_id: string;
  state: string;
  model: string;
  version: string;
  alias: string | null;
  output: { key: string; format: string; download: string | null; bytes: number | null };
  rows: { total: number | null; done: number; scored: number; failed: number };
  errors: { rows: number; download: string | null };
  rows_per_second: number | null;
  error: string | null;
  created_at: string | null;
}

const FINAL = new Set(["succeeded", "failed", "cancelled"]);

/** The query of an upload: model, version or alias, output key (default: next to the input's name), format, chunk size. */
export function submitQuery(file: string | undefined, flags: BatchFlags, now = Date.now()): URLSearchParams {
  if (!file) throw new Error("batch submit FILE --model M [--version V | --alias A]");
  const { format } = dataType(file);
  if (!flags.model) throw new Error("batch submit needs --model M");
  const aliases = flags.alias ?? [];
  if (aliases.length > 1) throw new Error("batch submit takes one --alias");
  if (flags.version && aliases.length) throw new Error("give either --version or --alias, not both");
  const q = new URLSearchParams({ model: flags.model });
  if (flags.version) q.set("version", flags.version);
  if (aliases.length) q.set("alias", aliases[0]);
  const outFormat = flags["output-format"];
  if (outFormat !== undefined && outFormat !== "csv" && outFormat !== "ndjson") throw new Error("--output-format is csv or ndjson");
  const stem = path.basename(file).replace(/\.[^.]+$/, "");
  q.set("output_key", flags["output-key"] ?? `scored/${stem}-${now}.${outFormat ?? format}`);
  if (outFormat) q.set("output_format", outFormat);
  const chunk = positiveInt(flags["chunk-size"], "chunk-size");
  if (chunk !== undefined) q.set("chunk_size", String(chunk));
  return q;
}

/** One progress line: state, rows done of total, rows/s and the time left at that rate. */
export function progressLine(job: Job): string {
  const { total, done, failed } = job.rows;
  const pct = total ? ` (${((done / total) * 100).toFixed(1)}%)` : "";
  const rate = job.rows_per_second;
  const eta = total && rate && rate > 0 && done < total ? `, ETA ${duration((total - done) / rate)}` : "";
  return `${job.state}: ${done}${total === null ? "" : ` / ${total}`} rows${pct}${rate === null ? "" : `, ${rate} rows/s`}${eta}${failed ? `, ${failed} failed` : ""}`;
}

async function save(api: Api, from: string, to: string): Promise<number> {
  const res = await api.download(from);
  await pipeline(Readable.fromWeb(res.body as unknown as import("node:stream/web").ReadableStream), createWriteStream(to));
  return Number(res.headers.get("content-length") ?? 0);
}

export async function batch(config: Config, sub: string | undefined, args: string[], flags: BatchFlags, log: Log = console.log): Promise<void> {
  const api = new Api(config);
  const id = () => {
    if (!args[0]) throw new Error(`batch ${sub} JOB_ID`);
    return encodeURIComponent(args[0]);
  };
  const show = (job: Job) =>
    log(flags.json ? JSON.stringify(job, null, 2) : fields([["job", job.job_id], ["state", job.state], ["model", `${job.model}@${job.version}${job.alias ? ` (alias ${job.alias})` : ""}`], ["progress", progressLine(job)], ["output", job.output.key], ["errors", job.errors.download ?? "-"], ["error", job.error]]));
  switch (sub) {
    case "submit": {
      const file = args[0];
      const q = submitQuery(file, flags);
      const { contentType } = dataType(file);
      let job = await withProgressLine((progress) => api.upload<Job>(`/v1/batch?${q}`, file, contentType, progress), (flags as { quiet?: boolean }).quiet);
      log(`job ${job.job_id} accepted: ${job.model}@${job.version}, output ${job.output.key}`);
      if (flags.detach) return flags.json ? log(JSON.stringify(job, null, 2)) : log(`follow it: eml batch status ${job.job_id}`);
      while (!FINAL.has(job.state)) {
        await sleep(flags.pollMs ?? 1000);
        job = await api.get<Job>(`/v1/batch/${encodeURIComponent(job.job_id)}`);
        process.stderr.write(`\r${progressLine(job)}\x1b[K`);
      }
      process.stderr.write("\n");
      if (job.state !== "succeeded") throw new Error(`job ${job.job_id} ${job.state}${job.error ? `: ${job.error}` : ""}`);
      const out = flags.out ?? path.basename(job.output.key);
      const n = await save(api, `/v1/batch/${encodeURIComponent(job.job_id)}/output`, out);
      log(`${progressLine(job)}\nresult written to ${out} (${bytes(n)})`);
      if (job.rows.failed && job.errors.download) {
        const errors = `${out}.errors.ndjson`;
        await save(api, job.errors.download, errors);
        log(`${job.rows.failed} rows could not be scored: ${errors} (one line per row: row_number, reason)`);
      }
      if (flags.json) log(JSON.stringify(job, null, 2));
      return;
    }
    case "status":
      return show(await api.get<Job>(`/v1/batch/${id()}`));
    case "cancel":
      return show(await api.post<Job>(`/v1/batch/${id()}/cancel`));
    case "list": {
      const limit = positiveInt(flags.limit, "limit");
      const res = await api.get<{ jobs: Job[] }>(`/v1/batch${limit ? `?limit=${limit}` : ""}`);
      if (flags.json) return log(JSON.stringify(res, null, 2));
      return log(table(res.jobs, [["job", (j) => j.job_id], ["state", (j) => j.state], ["model", (j) => `${j.model}@${j.version}`], ["rows", (j) => `${j.rows.done}/${j.rows.total ?? "?"}`], ["failed", (j) => j.rows.failed], ["rows/s", (j) => j.rows_per_second], ["created", (j) => j.created_at]]));
    }
    default:
      throw new Error(`batch: unknown or missing sub-command '${sub ?? ""}'; one of submit, status, cancel, list`);
  }
}
