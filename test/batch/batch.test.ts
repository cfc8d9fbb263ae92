/**
 * Batch scoring end to end against real local Queues, R2 and D1: a CSV upload and an NDJSON file in
 * R2 are planned, scored chunk by chunk by the queue consumer and assembled in input order, with
 * every score checked against the plain-TypeScript reference; bad rows land in the errors file;
 * redelivered chunks and assemble messages change nothing; a poisoned chunk goes through its
 * retries to the dead-letter queue and fails the job with the reason; cancellation stops a job;
 * batch rows reach monitoring as rows (not requests) and /metrics labels them traffic="batch"; an
 * output key belongs to one job (409 naming it, also when two submissions race), and a download
 * serves only the object its job wrote.
 */
import { createExecutionContext, createMessageBatch, env, getQueueResult, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { predictLogistic, predictTrees } from "../../scripts/lib/predict-reference";
import { parseCsvRecords } from "../../src/batch/formats";
import { jobPrefix } from "../../src/batch/keys";
import type { BatchMessage, ChunkMessage } from "../../src/batch/messages";
import { planChunks } from "../../src/batch/planner";
import { getJob, insertJob, type NewJob } from "../../src/batch/store";
import worker from "../../src/index";
import { ADMIN, call, registerStem } from "../support/api";
import { repoJson, repoText } from "../support/files";

let lrParams: any;
let gbtParams: any;
let csvLines: string[];
let header: string;

beforeAll(async () => {
  expect((await registerStem("models", "credit-risk-lr", ["champion"])).status).toBe(201);
  expect((await registerStem("models", "credit-risk-gbt", ["challenger"])).status).toBe(201);
  lrParams = await repoJson("models/credit-risk-lr.params.json");
  gbtParams = await repoJson("models/credit-risk-gbt.params.json");
  const text = await repoText("data/credit_data.csv");
  [header, ...csvLines] = text.trim().split("\n");
});

const NUMERIC = new Set(["Seniority", "Time", "Age", "Expenses", "Income", "Assets", "Debt", "Amount", "Price"]);
/** A CSV row of the data set as the feature object the API takes (empty cell = missing). */
function featuresOf(cells: string[], columns: string[]): Record<string, string | number> {
  const row: Record<string, string | number> = {};
  columns.forEach((c, j) => {
    if (c === "Status" || cells[j] === "") return;
    row[c] = NUMERIC.has(c) ? Number(cells[j]) : cells[j];
  });
  return row;
}

async function status(id: string) {
  const res = await call("GET", `/v1/batch/${id}`, undefined, ADMIN);
  expect(res.status, res.text).toBe(200);
  return res.json;
}

/** Polls the status route until the job reaches one of `states`. */
async function waitFor(id: string, states: string[], timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await status(id);
    if (states.includes(s.state)) return s;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${s.state}: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function deliver(queue: string, messages: { id: string; attempts?: number; body: BatchMessage }[]) {
  const batch = createMessageBatch<BatchMessage>(queue, messages.map((m) => ({ id: m.id, timestamp: new Date(), attempts: m.attempts ?? 1, body: m.body })));
  const ctx = createExecutionContext();
  await worker.queue!(batch as MessageBatch<unknown>, env, ctx);
  await waitOnExecutionContext(ctx);
  return getQueueResult(batch, ctx);
}

async function upload(csv: string, query: string) {
  const res = await (await import("cloudflare:test")).SELF.fetch(`http://worker/v1/batch?${query}`, { method: "POST", headers: { ...ADMIN, "content-type": "text/csv" }, body: csv });
  return { status: res.status, json: (await res.json()) as any };
}

describe("a CSV upload, scored by the champion", () => {
  // 400 rows of the data set with three bad rows put in at known places (rows 50, 201 and 403).
  let csv: string;
  let job: any;
  const bad = {
    50: '"good",9,"rent",60,abc,"married","no","freelance",73,129,0,0,800,846',
    201: '"good",9,"rent",60,30,"married","no","freelance",73,129,0,0,,846',
    403: '"good",9,"rent",60',
  } as Record<number, string>;
  const rows: string[] = [];

  beforeAll(async () => {
    const data = csvLines.slice(0, 400);
    for (let r = 1, d = 0; r <= 403; r++) rows.push(bad[r] ?? data[d++]);
    csv = header + "\n" + rows.join("\r\n") + "\r\n";
    const res = await upload(csv, "model=credit-risk&output_key=out/scored.csv&chunk_size=100");
    expect(res.status, JSON.stringify(res.json)).toBe(202);
    job = res.json;
  });

  it("returns the job at once, pinned to the champion's version", () => {
    expect(job.job_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(["queued", "running", "assembling", "succeeded"]).toContain(job.state);
    expect(job).toMatchObject({ model: "credit-risk", version: "1.0.0", chunk_size: 100, output: { key: "out/scored.csv", format: "csv" } });
  });

  it("scores every row in input order, with input columns, prediction, probabilities, version and row number", async () => {
    const done = await waitFor(job.job_id, ["succeeded", "failed"]);
    expect(done.state, done.error).toBe("succeeded");
    expect(done.rows).toEqual({ total: 403, done: 403, scored: 400, failed: 3 });
    expect(done.parts).toEqual({ total: 5, done: 5 });
    expect(done.errors).toMatchObject({ rows: 3, key: "out/scored.csv.errors.ndjson" });
    expect(done.rows_per_second).toBeGreaterThan(0);
    expect(done.output.location).toBe("r2://edge-ml-batch/out/scored.csv");

    const out = await call("GET", `/v1/batch/${job.job_id}/output`, undefined, ADMIN);
    expect(out.status).toBe(200);
    expect(out.headers.get("content-type")).toMatch(/text\/csv/);
    const [head, ...records] = parseCsvRecords(out.text);
    const inputColumns = parseCsvRecords(header)[0];
    expect(head).toEqual([...inputColumns, "prediction", "probability_0", "probability_1", "model_version", "row_number"]);
    expect(records.length).toBe(400);
    const inputRecords = parseCsvRecords(rows.join("\n"));
    let expectedRow = 0;
    for (const rec of records) {
      const rowNumber = Number(rec.at(-1));
      expect(rowNumber).toBeGreaterThan(expectedRow); // strictly increasing: input order
      expectedRow = rowNumber;
      const input = inputRecords[rowNumber - 1];
      expect(rec.slice(0, inputColumns.length)).toEqual(input);
      const score = Number(rec[inputColumns.length + 2]);
      expect(Math.abs(score - predictLogistic(lrParams, featuresOf(input, inputColumns)))).toBeLessThan(1e-5);
      expect(Number(rec[inputColumns.length + 1]) + score).toBeCloseTo(1, 6);
      expect(rec[inputColumns.length]).toBe(score > 0.5 ? "1" : "0");
      expect(rec.at(-2)).toBe("1.0.0");
    }
    // The three bad rows are the ones missing from the output.
    const seen = new Set(records.map((r) => Number(r.at(-1))));
    expect([...Array(403).keys()].map((i) => i + 1).filter((r) => !seen.has(r))).toEqual([50, 201, 403]);
  });

  it("writes each bad row to the errors file with its row number and reason", async () => {
    const errors = await call("GET", `/v1/batch/${job.job_id}/errors`, undefined, ADMIN);
    expect(errors.status).toBe(200);
    const lines = errors.text.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toEqual([
      { row_number: 50, reason: 'Age: expected a finite number, got string "abc"' },
      { row_number: 201, reason: "Amount: required" },
      { row_number: 403, reason: "expected 14 fields, got 4" },
    ]);
  });

  it("assembles once, and a redelivered chunk or assemble message afterwards changes nothing", async () => {
    const before = await env.BATCH.head("out/scored.csv");
    const row = await getJob(env, job.job_id);
    expect(row!.assemblies).toBe(1);
    const plan = await planChunks(new Blob([csv]).stream(), "csv", { chunkRows: 100, chunkBytes: 1 << 30, maxRows: 1e6 });
    const c = plan.chunks[2];
    const chunk: ChunkMessage = { kind: "chunk", job: job.job_id, part: c.part, start: c.start, end: c.end, first_row: c.firstRow, rows: c.rows };
    const result = await deliver("edge-ml-batch", [
      { id: "again-chunk", body: chunk },
      { id: "again-assemble", body: { kind: "assemble", job: job.job_id } },
    ]);
    expect(result.explicitAcks.sort()).toEqual(["again-assemble", "again-chunk"]);
    expect(result.retryMessages).toEqual([]);
    const after = await getJob(env, job.job_id);
    expect(after).toMatchObject({ assemblies: 1, state: "succeeded", rowsDone: 403, partsDone: 5 });
    expect((await env.BATCH.head("out/scored.csv"))!.etag).toBe(before!.etag);
    // Parts are cleaned up after assembly.
    expect((await env.BATCH.list({ prefix: jobPrefix(job.job_id) })).objects).toEqual([]);
  });

  it("feeds monitoring as batch rows (no requests, no latency) and labels them batch in /metrics", async () => {
    const deadline = Date.now() + 15_000;
    let summary: any;
    for (;;) {
      const res = await call("GET", "/v1/monitoring/models/credit-risk/summary?window=1h");
      summary = res.json?.versions?.find((v: any) => v.version === "1.0.0");
      if (summary?.rows === 400 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(summary.rows).toBe(400);
    expect(summary.requests).toBe(0);
    expect(summary.predicted_labels["0"] + summary.predicted_labels["1"]).toBe(400);
    const metrics = await call("GET", "/metrics");
    expect(metrics.text).toContain('edge_ml_batch_rows_total{model="credit-risk",version="1.0.0",traffic="batch",outcome="scored"} 400');
    expect(metrics.text).toContain('edge_ml_batch_rows_total{model="credit-risk",version="1.0.0",traffic="batch",outcome="rejected"} 3');
  });
});

describe("an NDJSON file already in R2, scored by an alias", () => {
  it("pins the alias's version and nests input and probabilities in NDJSON output", async () => {
    const objects = csvLines.slice(0, 250).map((l) => featuresOf(parseCsvRecords(l)[0], parseCsvRecords(header)[0]));
    const nd = objects.map((o, i) => JSON.stringify({ id: `app-${i}`, ...o })).join("\n") + "\n";
    await env.BATCH.put("in/apps.ndjson", nd);
    const res = await call("POST", "/v1/batch", { model: "credit-risk", alias: "challenger", input: { key: "in/apps.ndjson" }, output: { key: "out/apps.ndjson" }, chunk_size: 100 }, ADMIN);
    expect(res.status, res.text).toBe(202);
    expect(res.json).toMatchObject({ version: "1.1.0", alias: "challenger", input: { format: "ndjson" }, output: { format: "ndjson" } });
    const done = await waitFor(res.json.job_id, ["succeeded", "failed"]);
    expect(done.state, done.error).toBe("succeeded");
    expect(done.rows).toEqual({ total: 250, done: 250, scored: 250, failed: 0 });
    expect(done.errors, JSON.stringify(done)).toMatchObject({ rows: 0, key: null });
    const lines = (await (await env.BATCH.get("out/apps.ndjson"))!.text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.length).toBe(250);
    lines.forEach((line, i) => {
      expect(line.row_number).toBe(i + 1);
      expect(line.input).toEqual({ id: `app-${i}`, ...objects[i] });
      expect(line.model_version).toBe("1.1.0");
      expect(Math.abs(line.probabilities["1"] - predictTrees(gbtParams, objects[i]))).toBeLessThan(1e-5);
    });
  });
});

describe("NDJSON rows parsed with the request paths' bounded parser", () => {
  it("sets aside a row nested deeper than 32 levels and a malformed row, naming each, and scores the rest", async () => {
    const objects = csvLines.slice(0, 6).map((l) => featuresOf(parseCsvRecords(l)[0], parseCsvRecords(header)[0]));
    const deep = "[".repeat(40) + "]".repeat(40);
    const lines = objects.map((o) => JSON.stringify(o));
    lines[2] = JSON.stringify(objects[2]).replace(/^\{/, `{"meta":${deep},`); // an extra field the model ignores
    lines[4] = '{"Age": 3';
    await env.BATCH.put("in/deep.ndjson", lines.join("\n") + "\n");
    const res = await call("POST", "/v1/batch", { model: "credit-risk", version: "1.0.0", input: { key: "in/deep.ndjson" }, output: { key: "out/deep.ndjson" } }, ADMIN);
    expect(res.status, res.text).toBe(202);
    const done = await waitFor(res.json.job_id, ["succeeded", "failed"]);
    expect(done.state, done.error).toBe("succeeded");
    expect(done.rows).toMatchObject({ total: 6, scored: 4, failed: 2 });
    const errors = (await (await env.BATCH.get(done.errors.key))!.text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(errors[0]).toEqual({ row_number: 3, reason: "row 3 nests arrays/objects deeper than 32 levels" });
    expect(errors[1].row_number).toBe(5);
    expect(errors[1].reason).toMatch(/^row 5 is not valid JSON: /);
    const scored = (await (await env.BATCH.get("out/deep.ndjson"))!.text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(scored.map((l) => l.row_number)).toEqual([1, 2, 4, 6]);
  });
});

describe("bad requests", () => {
  it("need the admin token, on /v1/batch itself too", async () => {
    expect((await call("GET", "/v1/batch")).status).toBe(401);
    expect((await call("POST", "/v1/batch", { model: "credit-risk" })).status).toBe(401);
    expect((await call("GET", "/v1/batch", undefined, { authorization: "Bearer wrong" })).status).toBe(403);
    expect((await call("GET", "/v1/batch/01234567-89ab-7cde-8f01-23456789abcd")).status).toBe(401);
  });

  it("answer 4xx naming the problem, and create no job", async () => {
    await env.BATCH.put("in/ok.csv", header + "\n" + csvLines[0] + "\n");
    const count = async () => (await env.DB.prepare("SELECT count(*) AS n FROM batch_jobs").first<{ n: number }>())!.n;
    const before = await count();
    const uploads = async () => (await env.BATCH.list({ prefix: "_batch/uploads/" })).objects.length;
    const uploadsBefore = await uploads();
    const base = { model: "credit-risk", input: { key: "in/ok.csv" }, output: { key: "out/x.csv" } };
    const cases: [unknown, number, RegExp][] = [
      [{ ...base, model: "nope" }, 404, /model 'nope'|champion of model 'nope'/],
      [{ ...base, input: { key: "in/missing.csv" } }, 404, /input object 'in\/missing.csv' not found/],
      [{ ...base, version: "1.0.0", alias: "champion" }, 422, /either version or alias/],
      [{ ...base, output: { key: "_batch/evil.csv" } }, 422, /reserved/],
      [{ ...base, output: { key: "in/ok.csv" } }, 422, /differ from input/],
      [{ ...base, input: { key: "in/ok.csv.errors.ndjson" }, output: { key: "in/ok.csv" } }, 422, /errors file 'in\/ok.csv.errors.ndjson' would overwrite input.key/],
      [{ ...base, chunk_size: 5 }, 422, /chunk_size/],
      [{ ...base, input: { key: "in/ok.txt" } }, 422, /input.format/],
      [{ ...base, extra: 1 }, 422, /extra|Unrecognized/i],
    ];
    for (const [body, code, message] of cases) {
      const res = await call("POST", "/v1/batch", body, ADMIN);
      expect(res.status, JSON.stringify(body)).toBe(code);
      expect(res.json.error.message).toMatch(message);
    }
    expect((await call("POST", "/v1/batch", "{not json", ADMIN)).status).toBe(400);
    const noLength = await upload("", "model=credit-risk&output_key=out/y.csv");
    expect(noLength.status).toBe(400);
    const badModel = await upload(header + "\n" + csvLines[0] + "\n", "model=nope&output_key=out/y.csv");
    expect(badModel.status).toBe(404);
    const badQuery = await upload(header + "\n" + csvLines[0] + "\n", "model=credit-risk&output_key=_batch/y.csv");
    expect(badQuery.status).toBe(422);
    expect(badQuery.json.error.details[0].path).toBe("output_key");
    expect(await count()).toBe(before);
    expect(await uploads()).toBe(uploadsBefore);
    expect((await call("GET", "/v1/batch/not-a-job", undefined, ADMIN)).status).toBe(404);
  });

  it("fail a job whose CSV lacks a required column, naming it", async () => {
    await env.BATCH.put("in/no-age.csv", "Seniority,Time\n1,2\n");
    const res = await call("POST", "/v1/batch", { model: "credit-risk", input: { key: "in/no-age.csv" }, output: { key: "out/no-age.csv" } }, ADMIN);
    expect(res.status).toBe(202);
    const done = await waitFor(res.json.job_id, ["succeeded", "failed"]);
    expect(done.state).toBe("failed");
    expect(done.error).toMatch(/lacks required feature column\(s\) Age, Records, Expenses, Amount, Price/);
  });
});

/** A job row written directly (no plan message), for driving the consumer by hand. */
async function manualJob(id: string, inputKey: string, etag: string, partsTotal: number, rowsTotal: number) {
  await insertJob(env, {
    id,
    state: "running",
    modelName: "credit-risk",
    version: "1.0.0",
    inputKey,
    inputFormat: "csv",
    inputBytes: 1,
    inputEtag: etag,
    outputKey: `out/${id}.csv`,
    outputFormat: "csv",
    chunkRows: 100,
    columns: parseCsvRecords(header)[0],
    rowsTotal,
    partsTotal,
    createdBy: "test",
    createdAt: Date.now(),
    startedAt: Date.now(),
  });
}

describe("at-least-once delivery", () => {
  it("counts a chunk delivered several times once, and assembles once", async () => {
    const csv = header + "\n" + csvLines.slice(0, 300).join("\n") + "\n";
    const put = await env.BATCH.put("in/redeliver.csv", csv);
    const id = "01900000-0000-7000-8000-000000000001";
    await manualJob(id, "in/redeliver.csv", put!.etag, 3, 300);
    const plan = await planChunks(new Blob([csv]).stream(), "csv", { chunkRows: 100, chunkBytes: 1 << 30, maxRows: 1e6 });
    const msgs = plan.chunks.map((c) => ({ kind: "chunk", job: id, part: c.part, start: c.start, end: c.end, first_row: c.firstRow, rows: c.rows }) as ChunkMessage);
    // Part 0 three times (two in one batch), part 1 twice, part 2 once: the last one completes the job.
    const r1 = await deliver("edge-ml-batch", [
      { id: "a", body: msgs[0] },
      { id: "b", body: msgs[0] },
      { id: "c", body: msgs[1] },
    ]);
    expect(r1.explicitAcks.sort()).toEqual(["a", "b", "c"]);
    await deliver("edge-ml-batch", [{ id: "d", attempts: 2, body: msgs[0] }, { id: "e", attempts: 2, body: msgs[1] }]);
    expect(await getJob(env, id)).toMatchObject({ state: "running", partsDone: 2, rowsDone: 200 });
    await deliver("edge-ml-batch", [{ id: "f", body: msgs[2] }]);
    // The last part moved the job to assembling and sent the assemble message on the real queue.
    const done = await waitFor(id, ["succeeded", "failed"]);
    expect(done.state, done.error).toBe("succeeded");
    expect(done.rows).toMatchObject({ total: 300, done: 300, failed: 0 });
    // Duplicate assemble deliveries (one holding a stale lease id) after success: nothing happens.
    await deliver("edge-ml-batch", [{ id: "g", body: { kind: "assemble", job: id } }, { id: "h", body: msgs[2] }]);
    expect(await getJob(env, id)).toMatchObject({ assemblies: 1, partsDone: 3, rowsDone: 300 });
    const out = parseCsvRecords((await (await env.BATCH.get(`out/${id}.csv`))!.text()));
    expect(out.length).toBe(301);
    expect(out.slice(1).map((r) => Number(r.at(-1)))).toEqual([...Array(300).keys()].map((i) => i + 1));
  });

  it("lets only the lease holder assemble: a second assemble message meanwhile is acknowledged without work", async () => {
    const csv = header + "\n" + csvLines.slice(0, 50).join("\n") + "\n";
    const put = await env.BATCH.put("in/lease.csv", csv);
    const id = "01900000-0000-7000-8000-000000000002";
    await manualJob(id, "in/lease.csv", put!.etag, 1, 50);
    await env.DB.prepare("UPDATE batch_jobs SET state = 'assembling', assembler = 'someone-else', assembly_until = ? WHERE id = ?").bind(Date.now() + 600_000, id).run();
    const r = await deliver("edge-ml-batch", [{ id: "late", body: { kind: "assemble", job: id } }]);
    expect(r.explicitAcks).toEqual(["late"]);
    expect(await getJob(env, id)).toMatchObject({ state: "assembling", assembler: "someone-else", assemblies: 0 });
    expect(await env.BATCH.head(`out/${id}.csv`)).toBeNull();
  });
});

describe("a poisoned chunk", () => {
  it("is retried, reaches the dead-letter queue, and the job fails with the reason", async () => {
    const csv = header + "\n" + csvLines.slice(0, 20).join("\n") + "\n";
    const put = await env.BATCH.put("in/poison.csv", csv);
    const id = "01900000-0000-7000-8000-000000000003";
    await manualJob(id, "in/poison.csv", put!.etag, 1, 20);
    // The input is replaced after the job was planned: its chunks can never be read as planned.
    await env.BATCH.put("in/poison.csv", csv.replace("good", "GOOD"));
    const plan = await planChunks(new Blob([csv]).stream(), "csv", { chunkRows: 100, chunkBytes: 1 << 30, maxRows: 1e6 });
    const c = plan.chunks[0];
    const msg: ChunkMessage = { kind: "chunk", job: id, part: 0, start: c.start, end: c.end, first_row: 1, rows: c.rows };

    // One delivery by hand: the consumer asks for a retry and records why.
    const r = await deliver("edge-ml-batch", [{ id: "p1", body: msg }]);
    expect(r.explicitAcks).toEqual([]);
    expect(r.retryMessages).toMatchObject([{ msgId: "p1" }]);
    // Then through the real queue: retries, dead-letter queue, failed job.
    await env.BATCH_QUEUE.send(msg);
    const done = await waitFor(id, ["failed", "succeeded"]);
    expect(done.state).toBe("failed");
    expect(done.error).toMatch(/^chunk 0 \(rows 1-20\) failed after \d+ attempts: input object in\/poison.csv was replaced after the job was created/);
    expect(await env.BATCH.head(`out/${id}.csv`)).toBeNull();
  });
});

describe("cancellation", () => {
  it("stops a job: its messages are acknowledged without work and nothing is written", async () => {
    const csv = header + "\n" + csvLines.slice(0, 1000).join("\n") + "\n";
    const res = await upload(csv, "model=credit-risk&output_key=out/cancelled.csv&chunk_size=100");
    expect(res.status).toBe(202);
    const id = res.json.job_id;
    const cancelled = await call("POST", `/v1/batch/${id}/cancel`, undefined, ADMIN);
    expect(cancelled.status, cancelled.text).toBe(200);
    expect(cancelled.json).toMatchObject({ state: "cancelled", error: "cancelled by admin" });
    const again = await call("POST", `/v1/batch/${id}/cancel`, undefined, ADMIN);
    expect(again.status).toBe(409);

    // Whatever the queue still delivers for it (plan, chunks, assemble) does no work.
    const plan = await planChunks(new Blob([csv]).stream(), "csv", { chunkRows: 100, chunkBytes: 1 << 30, maxRows: 1e6 });
    const c = plan.chunks[0];
    const r = await deliver("edge-ml-batch", [
      { id: "x1", body: { kind: "plan", job: id } },
      { id: "x2", body: { kind: "chunk", job: id, part: 0, start: c.start, end: c.end, first_row: 1, rows: c.rows } },
      { id: "x3", body: { kind: "assemble", job: id } },
    ]);
    expect(r.explicitAcks.sort()).toEqual(["x1", "x2", "x3"]);
    const s = await status(id);
    expect(s).toMatchObject({ state: "cancelled", parts: { done: 0 } });
    expect((await env.BATCH.list({ prefix: jobPrefix(id) })).objects).toEqual([]);
    expect(await env.BATCH.head("out/cancelled.csv")).toBeNull();
    expect((await call("GET", `/v1/batch/${id}/output`, undefined, ADMIN)).status).toBe(409);
  });
});

describe("output keys belong to one job", () => {
  const count = async () => (await env.DB.prepare("SELECT count(*) AS n FROM batch_jobs").first<{ n: number }>())!.n;
  const uploads = async () => (await env.BATCH.list({ prefix: "_batch/uploads/" })).objects.length;
  let owner: any;
  let ownerOutput: string;

  beforeAll(async () => {
    // Two bad rows, so the job also writes out/owned.csv.errors.ndjson.
    const csv = header + "\n" + csvLines.slice(0, 30).join("\n") + "\n" + '"good",9,"rent",60\n' + '"good",9,"rent",60\n';
    const res = await upload(csv, "model=credit-risk&output_key=out/owned.csv");
    expect(res.status, JSON.stringify(res.json)).toBe(202);
    owner = await waitFor(res.json.job_id, ["succeeded", "failed"]);
    expect(owner.state, owner.error).toBe("succeeded");
    expect(owner.errors.key).toBe("out/owned.csv.errors.ndjson");
    ownerOutput = (await call("GET", `/v1/batch/${owner.job_id}/output`, undefined, ADMIN)).text;
  });

  it("refuses a second job writing the same key (upload or JSON), or the owner's errors file, with 409 naming the owner; nothing is created", async () => {
    await env.BATCH.put("in/other.csv", header + "\n" + csvLines.slice(100, 110).join("\n") + "\n");
    const before = await count();
    const uploadsBefore = await uploads();
    const again = await upload(header + "\n" + csvLines.slice(100, 110).join("\n") + "\n", "model=credit-risk&output_key=out/owned.csv");
    expect(again.status, JSON.stringify(again.json)).toBe(409);
    expect(again.json.error.message).toBe(`output_key 'out/owned.csv' is the output key of batch job ${owner.job_id} (succeeded); choose another output key`);
    expect(again.json.error.details).toEqual([{ path: "output_key", message: `owned by batch job ${owner.job_id}` }]);
    const cases: [string, RegExp][] = [
      ["out/owned.csv", /^output.key 'out\/owned.csv' is the output key of batch job/],
      ["out/owned.csv.errors.ndjson", /is where batch job .* writes its errors file \(its output key is 'out\/owned.csv'\)/],
    ];
    for (const [key, message] of cases) {
      const res = await call("POST", "/v1/batch", { model: "credit-risk", input: { key: "in/other.csv" }, output: { key, format: "csv" } }, ADMIN);
      expect(res.status, key).toBe(409);
      expect(res.json.error.message).toMatch(message);
      expect(res.json.error.message).toContain(owner.job_id);
      expect(res.json.error.details[0].path).toBe("output.key");
    }
    expect(await count()).toBe(before);
    expect(await uploads()).toBe(uploadsBefore);
    // The owner still describes and serves its own rows.
    expect(await status(owner.job_id)).toEqual({ ...owner, rows_per_second: expect.anything() });
    expect((await call("GET", `/v1/batch/${owner.job_id}/output`, undefined, ADMIN)).text).toBe(ownerOutput);
  });

  it("refuses a job whose errors file would land on another job's output key", async () => {
    await env.BATCH.put("in/pair.csv", header + "\n" + csvLines[0] + "\n");
    const first = await call("POST", "/v1/batch", { model: "credit-risk", input: { key: "in/pair.csv" }, output: { key: "out/pair.errors.ndjson" } }, ADMIN);
    expect(first.status, first.text).toBe(202);
    const second = await call("POST", "/v1/batch", { model: "credit-risk", input: { key: "in/pair.csv" }, output: { key: "out/pair", format: "csv" } }, ADMIN);
    expect(second.status, second.text).toBe(409);
    expect(second.json.error.message).toBe(`output.key 'out/pair' would put this job's errors file on 'out/pair.errors.ndjson', the output key of batch job ${first.json.job_id} (${(await status(first.json.job_id)).state}); choose another output key`);
    await waitFor(first.json.job_id, ["succeeded", "failed"]);
  });

  it("refuses a job that would write over the input of a job still running", async () => {
    await env.BATCH.put("in/reader.csv", header + "\n" + csvLines.slice(0, 200).join("\n") + "\n");
    const reader = await call("POST", "/v1/batch", { model: "credit-risk", input: { key: "in/reader.csv" }, output: { key: "out/reader.csv" }, chunk_size: 100 }, ADMIN);
    expect(reader.status, reader.text).toBe(202);
    const before = await count();
    const writer = await call("POST", "/v1/batch", { model: "credit-risk", input: { key: "in/other.csv" }, output: { key: "in/reader.csv", format: "csv" } }, ADMIN);
    expect(writer.status, writer.text).toBe(409);
    expect(writer.json.error.message).toContain(`batch job ${reader.json.job_id}`);
    expect(writer.json.error.details[0]).toMatchObject({ path: "output.key", message: expect.stringMatching(/reads 'in\/reader.csv' as its input/) });
    expect(await count()).toBe(before);
    expect((await waitFor(reader.json.job_id, ["succeeded", "failed"])).state).toBe("succeeded");
  });

  it("lets two submissions racing for one key have one job between them", async () => {
    await env.BATCH.put("in/race.csv", header + "\n" + csvLines.slice(0, 5).join("\n") + "\n");
    const before = await count();
    const body = { model: "credit-risk", input: { key: "in/race.csv" }, output: { key: "out/race.csv" } };
    const results = await Promise.all([1, 2, 3].map(() => call("POST", "/v1/batch", body, ADMIN)));
    expect(results.map((r) => r.status).sort()).toEqual([202, 409, 409]);
    expect(await count()).toBe(before + 1);
    const winner = results.find((r) => r.status === 202)!.json.job_id;
    for (const r of results.filter((r) => r.status === 409)) expect(r.json.error.message).toContain(winner);
    await waitFor(winner, ["succeeded", "failed"]);
  });

  it("holds in D1 itself: the insert of a job on an owned key (or the errors key beside it, either way) inserts nothing", async () => {
    const row = (id: string, outputKey: string): NewJob => ({
      id, state: "queued", modelName: "credit-risk", version: "1.0.0", inputKey: "in/race.csv", inputFormat: "csv", inputBytes: 1, inputEtag: "e",
      outputKey, outputFormat: "csv", chunkRows: 100, createdBy: "test", createdAt: Date.now(),
    });
    expect(await insertJob(env, row("01900000-0000-7000-8000-0000000000a1", "out/owned.csv"))).toBe(false);
    expect(await insertJob(env, row("01900000-0000-7000-8000-0000000000a2", "out/owned.csv.errors.ndjson"))).toBe(false);
    expect(await insertJob(env, row("01900000-0000-7000-8000-0000000000a3", "out/pair"))).toBe(false);
    expect(await insertJob(env, row("01900000-0000-7000-8000-0000000000a4", "out/owned.csv.errors.ndjson.errors.ndjson"))).toBe(true);
    for (const n of [1, 2, 3]) expect(await getJob(env, `01900000-0000-7000-8000-0000000000a${n}`)).toBeUndefined();
    await env.DB.prepare("UPDATE batch_jobs SET state = 'failed' WHERE id = ?").bind("01900000-0000-7000-8000-0000000000a4").run();
  });

  it("frees the key of a cancelled job", async () => {
    const csv = header + "\n" + csvLines.slice(0, 500).join("\n") + "\n";
    const first = await upload(csv, "model=credit-risk&output_key=out/retry.csv&chunk_size=100");
    expect(first.status).toBe(202);
    expect((await call("POST", `/v1/batch/${first.json.job_id}/cancel`, undefined, ADMIN)).status).toBe(200);
    const second = await upload(csv, "model=credit-risk&output_key=out/retry.csv&chunk_size=100");
    expect(second.status, JSON.stringify(second.json)).toBe(202);
    expect((await waitFor(second.json.job_id, ["succeeded", "failed"])).state).toBe("succeeded");
  });

  it("downloads only the objects the job wrote", async () => {
    const id = owner.job_id;
    expect((await env.BATCH.head("out/owned.csv"))!.customMetadata).toEqual({ batch_job: id });
    expect((await env.BATCH.head("out/owned.csv.errors.ndjson"))!.customMetadata).toEqual({ batch_job: id });
    const errorsBefore = (await call("GET", `/v1/batch/${id}/errors`, undefined, ADMIN)).text;
    // Written over by something else (another job's object, a direct put): refused, naming the writer.
    await env.BATCH.put("out/owned.csv", "not,its,rows\n", { customMetadata: { batch_job: "01900000-0000-7000-8000-0000000000ff" } });
    const out = await call("GET", `/v1/batch/${id}/output`, undefined, ADMIN);
    expect(out.status).toBe(404);
    expect(out.json.error.message).toBe(`object 'out/owned.csv' in the batch bucket is no longer the output of batch job ${id}: batch job 01900000-0000-7000-8000-0000000000ff wrote it after the job finished`);
    // An object without the metadata (written before the assembler set it) is the job's unless it is newer than the job.
    await env.BATCH.put("out/owned.csv", ownerOutput);
    expect((await call("GET", `/v1/batch/${id}/output`, undefined, ADMIN)).text).toBe(ownerOutput);
    await env.DB.prepare("UPDATE batch_jobs SET finished_at = finished_at - 3600000 WHERE id = ?").bind(id).run();
    const stale = await call("GET", `/v1/batch/${id}/output`, undefined, ADMIN);
    expect(stale.status).toBe(404);
    expect(stale.json.error.message).toMatch(/no longer the output of batch job .*: something else wrote it after the job finished/);
    expect((await call("GET", `/v1/batch/${id}/errors`, undefined, ADMIN)).text).toBe(errorsBefore);
  });
});
