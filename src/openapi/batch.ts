/** OpenAPI entries for batch scoring (src/batch/routes.ts), mounted at /v1/batch behind the admin credential. */
import { z } from "zod";
import { createJobSchema, uploadQuerySchema } from "../batch/model";
import * as r from "./responses";
import type { RouteDoc } from "./spec";

const id = { id: z.string().describe("job id (UUIDv7)") };
const doc = (d: Omit<RouteDoc, "tag" | "auth">): RouteDoc => ({ tag: "batch", auth: "admin", ...d });
const optional = (shape: Record<string, z.ZodType>) => Object.fromEntries(Object.entries(shape).map(([k, s]) => [k, s.optional()]));
const download = (part: "output" | "errors", summary: string): RouteDoc =>
  doc({ method: "get", path: `/v1/batch/:id/${part}`, summary, params: id, responses: { 200: { description: summary, contentType: "application/octet-stream" } }, errors: [400, 404, 409] });

export const batchDocs: RouteDoc[] = [
  doc({
    method: "post", path: "/v1/batch", summary: "Create a batch scoring job (JSON naming a file in the BATCH bucket, or the file itself)",
    description: "JSON body for a file already in R2. Or send the file as the body (text/csv or application/x-ndjson, Content-Length required) with the options as query parameters (model, version | alias, output_key, output_format, chunk_size). Planning and scoring run on the queue; poll GET /v1/batch/{id}. An output key belongs to one job: 409 naming the job when another job (any state but failed or cancelled) writes or wrote that key, or its errors file (<output key>.errors.ndjson) would overwrite, or be overwritten by, another job's output.",
    query: optional(uploadQuerySchema.shape),
    body: { schema: createJobSchema, example: { model: "credit-risk", alias: "champion", input: { key: "in/applications.csv" }, output: { key: "out/scores.csv" } } },
    responses: { 202: { description: "accepted (Location: /v1/batch/{id})", schema: r.batchJob } },
    errors: [400, 404, 409, 411, 413, 415, 422],
  }),
  doc({ method: "get", path: "/v1/batch", summary: "Recent jobs, newest first", query: { limit: z.coerce.number().int().min(1).max(100).optional() }, responses: { 200: { description: "jobs", schema: z.looseObject({ jobs: z.array(r.batchJob) }) } }, errors: [400] }),
  doc({ method: "get", path: "/v1/batch/:id", summary: "Job status: state, rows done/total, rows/s, parts, errors, output location", params: id, responses: { 200: { description: "the job", schema: r.batchJob } }, errors: [400, 404] }),
  doc({ method: "post", path: "/v1/batch/:id/cancel", summary: "Cancel a job that has not finished (its parts are deleted)", params: id, responses: { 200: { description: "the job", schema: r.batchJob } }, errors: [400, 404, 409] }),
  download("output", "The assembled output (once succeeded; 404 if the object at its key is no longer the one this job wrote)"),
  download("errors", "The errors file: one JSON line {row_number, reason} per bad row"),
];
