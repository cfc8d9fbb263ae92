/**
 * (Named *.node-test.ts so vitest, which runs *.test.ts inside workerd, leaves it to `node --test`.)
 * The features, batch and retraining verbs: argument parsing (what is missing or contradictory is
 * named, exit codes), the requests each verb builds, and the batch submit flow end to end against a
 * local HTTP server that checks what the CLI sends (Content-Length of the upload, bearer token,
 * content type) and answers like the API: upload, progress polling, download of the result and
 * errors file. An API error is printed with its code, message and every field detail, exit 1.
 * (The same verbs were run by hand against `npm start`; the worker's own answers are covered by
 * test/openapi.test.ts, which validates them against the document.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { main } from "../main.ts";
import { batch, progressLine, submitQuery, type Job } from "../verbs/batch.ts";
import { featureRequest, features } from "../verbs/features.ts";
import { reportText, retraining, retrainingRequest } from "../verbs/retraining.ts";
import { table } from "../verbs/output.ts";

const dir = mkdtempSync(path.join(tmpdir(), "eml-verbs-"));

async function captured(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (s: string) => out.push(String(s));
  console.error = (s: string) => err.push(String(s));
  try {
    return { code: await fn(), out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void;
async function server(handler: Handler): Promise<{ url: string; close: () => Promise<void>; seen: { method: string; url: string; headers: IncomingMessage["headers"]; body: Buffer }[] }> {
  const seen: { method: string; url: string; headers: IncomingMessage["headers"]; body: Buffer }[] = [];
  const s = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      handler(req, body, res);
    });
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, seen, close: () => new Promise((r) => s.close(() => r())) };
}
const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
};

test("argument errors name what is missing or contradictory, with a non-zero exit", async () => {
  const file = path.join(dir, "in.csv");
  writeFileSync(file, "a,b\n1,2\n");
  const cases: [string[], number, RegExp][] = [
    [["batch", "submit", file], 1, /batch submit needs --model M/],
    [["batch", "submit", file, "--model", "m", "--version", "1.0.0", "--alias", "champion"], 1, /either --version or --alias/],
    [["batch", "submit", path.join(dir, "in.txt"), "--model", "m"], 1, /name a \.csv or \.ndjson/],
    [["batch", "submit", file, "--model", "m", "--chunk-size=1.5"], 1, /--chunk-size takes a non-negative integer/],
    [["batch", "frobnicate"], 1, /one of submit, status, cancel, list/],
    [["features", "get", "c1", "--group", "g"], 1, /needs --features/],
    [["features", "load", file, "--group", "g"], 1, /needs --entity-column/],
    [["features", "list"], 1, /needs --group G/],
    [["retraining", "triggers", "fire", "m"], 1, /needs --reason/],
    [["retraining", "jobs"], 1, /unknown or missing sub-command 'jobs'/],
    [["batch", "list", "--no-such-flag"], 2, /Unknown option '--no-such-flag'/],
  ];
  for (const [argv, code, message] of cases) {
    const r = await captured(() => main([...argv, "--url", "http://127.0.0.1:9"]));
    assert.equal(r.code, code, argv.join(" "));
    assert.match(r.err, message, argv.join(" "));
  }
});

test("the requests the verbs build", () => {
  const q = submitQuery("data/apps.ndjson", { model: "credit-risk", alias: ["challenger"], "chunk-size": "500" }, 1700000000000);
  assert.equal(q.toString(), "model=credit-risk&alias=challenger&output_key=scored%2Fapps-1700000000000.ndjson&chunk_size=500");
  assert.equal(submitQuery("x.csv", { model: "m", version: "1.2.0", "output-key": "out/x.csv", "output-format": "ndjson" }).toString(), "model=m&version=1.2.0&output_key=out%2Fx.csv&output_format=ndjson");
  assert.deepEqual(featureRequest("get", ["c 1"], { group: "customers", features: ["income,debt", "age"], "as-of": "1767225600000" }), {
    method: "POST", path: "/v1/features/get", body: { group: "customers", entity_id: "c 1", features: ["income", "debt", "age"], as_of: 1767225600000 },
  });
  assert.deepEqual(featureRequest("retire", ["customers", "age"], { version: "2" }), { method: "POST", path: "/admin/features/definitions/customers/age/retire", body: { version: 2 } });
  assert.deepEqual(featureRequest("define", [], { body: '{"group":"g","name":"n","kind":"offline","dtype":"numeric"}' }).body, { group: "g", name: "n", kind: "offline", dtype: "numeric" });
  assert.equal(featureRequest("list", [], { group: "a&b" }).path, "/admin/features/definitions?group=a%26b");
  assert.deepEqual(retrainingRequest(["triggers", "fire", "credit-risk"], { reason: "new labels" }), { method: "POST", path: "/admin/retraining/credit-risk/jobs", body: { reason: "new labels" }, shows: "job" });
  assert.equal(retrainingRequest(["jobs", "list", "credit-risk"], { state: "failed", limit: "5" }).path, "/admin/retraining/credit-risk/jobs?state=failed&limit=5");
  assert.deepEqual(retrainingRequest(["triggers", "define", "m"], { body: '{"type":"schedule","every":"weekly"}' }).body, { type: "schedule", every: "weekly" });
  assert.equal(retrainingRequest(["triggers", "delete", "m", "t1"], {}).method, "DELETE");
  assert.equal(retrainingRequest(["config", "m"], {}).method, "GET");
  assert.equal(retrainingRequest(["report", "j1"], {}).path, "/admin/retraining/jobs/j1/report");
});

test("retraining report: the verdict and one line per business metric (champion, candidate, delta, bounds, verdict)", () => {
  const text = reportText({
    passed: false,
    reasons: ["pass: auc improves by 0.03", "fail: approval_rate@0.15 guardrail violated"],
    oot: { rows: 891, positives: 445, negatives: 446 },
    champion: { version: "1.0.0" },
    candidate: { version: "1.1.0" },
    metrics: [
      { metric: "auc", direction: "higher", role: "objective", requirement: { min_improvement: 0 }, champion: 0.9, candidate: 0.93, delta: 0.03, interval: { lower: 0.02, upper: 0.04 }, verdict: "pass" },
      { metric: "approval_rate@0.15", direction: "lower", role: "guardrail", requirement: { max_degradation: 0 }, champion: 0.41, candidate: 0.44, delta: 0.03, interval: { lower: -0.05, upper: -0.01 }, verdict: "fail" },
    ],
    alpha: 0.05,
    bootstrap: { iterations: 1000, seed: 20261201 },
    min_oot_samples: 200,
    compared_at: "2026-12-01T18:00:00.000Z",
  });
  const lines = text.split("\n");
  assert.match(lines[0], /^verdict\s+rejected$/);
  assert.match(text, /rule\s+one-sided alpha 0.05, 1000 paired bootstrap resamples \(seed 20261201\), min 200 rows/);
  const header = lines.findIndex((l) => l.startsWith("METRIC"));
  assert.match(lines[header], /^METRIC\s+BETTER\s+ROLE\s+REQUIREMENT\s+CHAMPION\s+CANDIDATE\s+DELTA\s+BOUNDS\s+VERDICT$/);
  assert.match(lines[header + 1], /^auc\s+higher\s+objective\s+better by > 0\s+0.9\s+0.93\s+0.03\s+\[0.02, 0.04\]\s+pass$/);
  assert.match(lines[header + 2], /^approval_rate@0.15\s+lower\s+guardrail\s+worse by <= 0\s+0.41\s+0.44\s+0.03\s+\[-0.05, -0.01\]\s+fail$/);
  assert.equal(lines.at(-1), "- fail: approval_rate@0.15 guardrail violated");
});

test("progress lines: rows done, rows/s and the ETA at that rate", () => {
  const job = (done: number, total: number | null, rate: number | null, failed = 0) => ({ state: "running", rows: { total, done, scored: done - failed, failed }, rows_per_second: rate }) as Job;
  assert.equal(progressLine(job(250, 1000, 50)), "running: 250 / 1000 rows (25.0%), 50 rows/s, ETA 15s");
  assert.equal(progressLine(job(0, 100_000, 20, 0)), "running: 0 / 100000 rows (0.0%), 20 rows/s, ETA 1h23m");
  assert.equal(progressLine(job(10, null, null)), "running: 10 rows");
  assert.equal(progressLine(job(1000, 1000, 80, 3)), "running: 1000 / 1000 rows (100.0%), 80 rows/s, 3 failed");
  assert.equal(table([{ a: 1, b: "x" }, { a: 22, b: null }], [["a", (r) => r.a], ["b", (r) => r.b]]), "A   B\n1   x\n22  -");
  // One printer for every verb: columns by field name too, long cells cut with "…" (the full value is in --json).
  assert.equal(table([{ name: "m", note: "x".repeat(60), auc: 0.827512345 }], ["name", "note", "auc"], 10), "NAME  NOTE        AUC\nm     xxxxxxxxx…  0.8275");
});

test("batch submit uploads with Content-Length, follows the job to the end and downloads the result and errors", async () => {
  const input = path.join(dir, "apps.csv");
  const csv = "x,y\n" + Array.from({ length: 5000 }, (_, i) => `${i},${i * 2}`).join("\n") + "\n";
  writeFileSync(input, csv);
  let polls = 0;
  const base = { job_id: "j-1", model: "credit-risk", version: "1.0.0", alias: null, output: { key: "scored/apps.csv", format: "csv", download: null, bytes: null }, errors: { rows: 0, download: null }, error: null, created_at: "2026-01-01T00:00:00Z" };
  const srv = await server((req, body, res) => {
    if (req.method === "POST" && req.url!.startsWith("/v1/batch?")) {
      if (Number(req.headers["content-length"]) !== body.length) return json(res, 400, { error: { code: "bad_request", message: "length mismatch" } });
      return json(res, 202, { ...base, state: "queued", rows: { total: null, done: 0, scored: 0, failed: 0 }, rows_per_second: null });
    }
    if (req.url === "/v1/batch/j-1") {
      polls++;
      if (polls < 3) return json(res, 200, { ...base, state: "running", rows: { total: 5000, done: polls * 2000, scored: polls * 2000, failed: 0 }, rows_per_second: 1000 });
      return json(res, 200, { ...base, state: "succeeded", output: { ...base.output, download: "/v1/batch/j-1/output" }, errors: { rows: 1, download: "/v1/batch/j-1/errors" }, rows: { total: 5000, done: 5000, scored: 4999, failed: 1 }, rows_per_second: 1000 });
    }
    if (req.url === "/v1/batch/j-1/output") return res.end("x,y,prediction\n0,0,1\n");
    if (req.url === "/v1/batch/j-1/errors") return res.end('{"row_number":7,"reason":"y: not a number"}\n');
    json(res, 404, { error: { code: "not_found", message: "no route" } });
  });
  const out = path.join(dir, "scored.csv");
  const lines: string[] = [];
  try {
    await batch({ url: srv.url, token: "tok", source: { url: "test", token: "test" } }, "submit", [input], { model: "credit-risk", out, pollMs: 1 }, (s) => lines.push(s));
  } finally {
    await srv.close();
  }
  const upload = srv.seen[0];
  assert.equal(upload.headers["content-length"], String(Buffer.byteLength(csv)));
  assert.equal(upload.headers["content-type"], "text/csv");
  assert.equal(upload.headers.authorization, "Bearer tok");
  assert.equal(upload.body.toString(), csv);
  assert.match(upload.url, /^\/v1\/batch\?model=credit-risk&output_key=scored%2Fapps-\d+\.csv$/);
  assert.equal(polls, 3);
  assert.equal(readFileSync(out, "utf8"), "x,y,prediction\n0,0,1\n");
  assert.equal(readFileSync(`${out}.errors.ndjson`, "utf8"), '{"row_number":7,"reason":"y: not a number"}\n');
  assert.match(lines.join("\n"), /succeeded: 5000 \/ 5000 rows \(100\.0%\), 1000 rows\/s, 1 failed\nresult written to/);
  assert.match(lines.join("\n"), /1 rows could not be scored/);
});

test("features get and retraining jobs status print tables; an API error is printed as stated, exit 1", async () => {
  const srv = await server((req, body, res) => {
    if (req.url === "/v1/features/get") {
      const b = JSON.parse(body.toString());
      if (b.features.includes("nope")) return json(res, 422, { error: { code: "invalid_input", message: "invalid request body", details: [{ path: "features.0", message: "unknown feature 'nope'" }] } });
      return json(res, 200, { request_id: "r", group: b.group, entity_id: b.entity_id, values: { income: 100, txn_count_1h: 0 }, sources: { income: "kv", txn_count_1h: "durable_object" }, fell_back: ["txn_count_1h"], errors: [] });
    }
    if (req.url === "/admin/retraining/jobs/j9") {
      return json(res, 200, {
        job: { id: "j9", model: "m", state: "training", active: true, trigger: { id: null, type: "manual" }, reason: "why", champion_version: "1.0.0", candidate_version: null, deployment_id: null, error: null, created_at: "t0", finished_at: null },
        events: [{ revision: 1, at: "t0", actor: "admin", action: "create", from: null, to: "queued", details: {} }, { revision: 2, at: "t1", actor: "trainer", action: "status", from: "dispatched", to: "training", details: {} }],
      });
    }
    json(res, 404, { error: { code: "not_found", message: `no route for ${req.method} ${req.url}` } });
  });
  const config = { url: srv.url, token: "tok", source: { url: "test", token: "test" } };
  try {
    const got: string[] = [];
    await features(config, "get", ["c1"], { group: "customers", features: ["income,txn_count_1h"] }, (s) => got.push(s));
    assert.match(got.join("\n"), /FEATURE\s+VALUE\s+SOURCE\s+FALLBACK\nincome\s+100\s+kv\s*\ntxn_count_1h\s+0\s+durable_object\s+yes/);
    const status: string[] = [];
    await retraining(config, ["jobs", "status", "j9"], {}, (s) => status.push(s));
    assert.match(status.join("\n"), /state\s+training\n/);
    assert.match(status.join("\n"), /2\s+t1\s+status\s+dispatched\s+training\s+trainer/);
    const bad = await captured(() => main(["features", "get", "c1", "--group", "customers", "--features", "nope", "--url", srv.url, "--token", "tok"]));
    assert.equal(bad.code, 1);
    assert.equal(bad.err, "HTTP 422 invalid_input: invalid request body\n  features.0: unknown feature 'nope'");
  } finally {
    await srv.close();
  }
});
