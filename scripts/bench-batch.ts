/**
 * `npm run bench:batch`: batch scoring throughput end to end, locally, against the ceiling of the
 * same rows scored in one in-process loop. Prints figures, asserts nothing.
 *
 * 1. Writes BENCH_BATCH_ROWS (default 1,000,000) rows of the demo data (data/credit_data.csv,
 *    cycled) as one CSV file.
 * 2. Starts `wrangler dev` on a scratch state directory (port BENCH_PORT, default 8806), registers
 *    the demo models, uploads the file with POST /v1/batch (text/csv) and follows the job through
 *    the local queue (plan, chunks of BENCH_BATCH_CHUNK rows, assembly) to the end; then downloads
 *    the output and checks its row count. End to end = upload + queueing + planning + scoring +
 *    assembly, as a client sees it.
 * 3. The ceiling: the same CSV parsed, encoded and scored by the same onnxruntime-web WASM build in
 *    one Node loop (chunks of the same size, output lines formatted), no queue, no storage.
 * With BENCH_BATCH_MONITORING=compare the job runs twice, on servers with monitoring on and off.
 *
 * The machine running this is usually shared: treat the figures as indicative.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-web";
import { csvLine, parseCsvRecords } from "../src/batch/formats.ts";
import { applyMigrations, ensureDevVars, registerDemoModels, ROOT, startDevServer } from "./lib/dev-server.ts";

const N = Number(process.env.BENCH_BATCH_ROWS ?? 1_000_000);
const CHUNK = Number(process.env.BENCH_BATCH_CHUNK ?? 5000);
const PORT = Number(process.env.BENCH_PORT ?? 8806);
const COMPARE = process.env.BENCH_BATCH_MONITORING === "compare";

const state = mkdtempSync(path.join(tmpdir(), "edge-ml-bench-batch-"));
const file = path.join(state, "input.csv");

function writeInput(): { bytes: number } {
  const [header, ...lines] = readFileSync(path.join(ROOT, "data/credit_data.csv"), "utf8").trim().split("\n");
  const parts: string[] = [header + "\n"];
  for (let i = 0; i < N; i++) parts.push(lines[i % lines.length] + "\n");
  writeFileSync(file, parts.join(""));
  return { bytes: statSync(file).size };
}

async function endToEnd(monitoring: boolean) {
  const persist = path.join(state, monitoring ? "on" : "off");
  const vars = ensureDevVars();
  applyMigrations(persist);
  const server = await startDevServer({ port: PORT, persistTo: persist, quiet: true, vars: { RATE_LIMITS_ENABLED: "false", MONITORING_ENABLED: String(monitoring), BATCH_MAX_UPLOAD_BYTES: String(2 * 1024 ** 3) } });
  try {
    await registerDemoModels(server.url, vars.ADMIN_TOKEN);
    const auth = { authorization: `Bearer ${vars.ADMIN_TOKEN}` };
    const body = readFileSync(file);
    const t0 = performance.now();
    const res = await fetch(`${server.url}/v1/batch?model=credit-risk&output_key=bench/out.csv&chunk_size=${CHUNK}`, { method: "POST", headers: { ...auth, "content-type": "text/csv" }, body });
    const job = (await res.json()) as any;
    if (res.status !== 202) throw new Error(`submit failed: ${res.status} ${JSON.stringify(job)}`);
    const accepted = performance.now();
    let s: any;
    let last = 0;
    for (;;) {
      s = await (await fetch(`${server.url}/v1/batch/${job.job_id}`, { headers: auth })).json();
      if (["succeeded", "failed", "cancelled"].includes(s.state)) break;
      if (performance.now() - last > 5000) {
        last = performance.now();
        console.log(`  ${s.state.padEnd(10)} rows ${s.rows.done}/${s.rows.total ?? "?"}  parts ${s.parts.done}/${s.parts.total ?? "?"}  ${s.rows_per_second ?? "-"} rows/s`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const finished = performance.now();
    if (s.state !== "succeeded") throw new Error(`job ended ${s.state}: ${s.error}`);
    const out = await fetch(`${server.url}/v1/batch/${job.job_id}/output`, { headers: auth });
    const text = await out.text();
    let lines = 0;
    for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) lines++;
    return {
      monitoring,
      uploadS: (accepted - t0) / 1000,
      jobS: (finished - accepted) / 1000,
      totalS: (finished - t0) / 1000,
      statusRowsPerS: s.rows_per_second as number,
      scored: s.rows.scored as number,
      failed: s.rows.failed as number,
      parts: s.parts.total as number,
      outputRows: lines - 1,
      outputBytes: text.length,
    };
  } finally {
    await server.stop();
  }
}

async function ceiling() {
  const manifest = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-lr.manifest.json"), "utf8"));
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(readFileSync(path.join(ROOT, "models/credit-risk-lr.onnx")));
  const features = manifest.featureSchema.features as { name: string; type: string; missing: { policy: string; value?: unknown } }[];
  const columns = manifest.featureSchema.input.columns as { feature: string; oneHot?: string }[];
  const t0 = performance.now();
  const text = readFileSync(file, "utf8");
  const [header, ...records] = parseCsvRecords(text);
  const index = new Map(header.map((c, j) => [c, j]));
  const byName = new Map(features.map((f) => [f.name, f]));
  let out = 0;
  for (let start = 0; start < records.length; start += CHUNK) {
    const rows = records.slice(start, start + CHUNK);
    const data = new Float32Array(rows.length * columns.length);
    rows.forEach((cells, r) => {
      columns.forEach((c, j) => {
        const f = byName.get(c.feature)!;
        let v: unknown = cells[index.get(c.feature)!];
        if (v === "") v = f.missing.policy === "impute" ? f.missing.value : Number.NaN;
        data[r * columns.length + j] = c.oneHot ? (v === c.oneHot ? 1 : 0) : Number(v);
      });
    });
    const result = await session.run({ [manifest.featureSchema.input.name]: new ort.Tensor("float32", data, [rows.length, columns.length]) });
    const probs = result[manifest.featureSchema.output.probabilities].data as Float32Array;
    let body = "";
    rows.forEach((cells, r) => {
      const p1 = probs[r * 2 + 1];
      body += csvLine([...cells, p1 > 0.5 ? "1" : "0", String(probs[r * 2]), String(p1), "1.0.0", String(start + r + 1)]);
    });
    out += body.length;
  }
  const seconds = (performance.now() - t0) / 1000;
  await session.release();
  return { seconds, rowsPerS: records.length / seconds, outputChars: out };
}

try {
  const { bytes } = writeInput();
  console.log(`input: ${N.toLocaleString("en")} rows of data/credit_data.csv (cycled), ${(bytes / 1e6).toFixed(1)} MB CSV; chunks of ${CHUNK} rows`);
  const runs = COMPARE ? [true, false] : [true];
  const results = [];
  for (const monitoring of runs) {
    console.log(`\nend to end through wrangler dev on 127.0.0.1:${PORT} (monitoring ${monitoring ? "on" : "off"}):`);
    const r = await endToEnd(monitoring);
    results.push(r);
    console.log(`  upload ${r.uploadS.toFixed(1)} s; job (queue, plan, ${r.parts} chunks, assembly) ${r.jobS.toFixed(1)} s; total ${r.totalS.toFixed(1)} s`);
    console.log(`  ${(N / r.totalS).toFixed(0)} rows/s end to end (upload included), ${(N / r.jobS).toFixed(0)} rows/s from acceptance to output, status route says ${r.statusRowsPerS} rows/s (planning to assembly)`);
    console.log(`  output: ${r.outputRows.toLocaleString("en")} rows (${r.scored} scored, ${r.failed} rejected), ${(r.outputBytes / 1e6).toFixed(1)} MB`);
  }
  if (COMPARE) {
    const [on, off] = results;
    console.log(`\nmonitoring cost: job ${on.jobS.toFixed(1)} s on vs ${off.jobS.toFixed(1)} s off (${(((on.jobS - off.jobS) / off.jobS) * 100).toFixed(1)}%; one run each on a shared machine)`);
  }
  console.log("\nceiling: the same rows parsed, encoded, scored and formatted in one Node loop (onnxruntime-web WASM):");
  const c = await ceiling();
  console.log(`  ${c.seconds.toFixed(1)} s, ${c.rowsPerS.toFixed(0)} rows/s`);
  console.log(`\nend to end (from acceptance) = ${((N / results[0].jobS / c.rowsPerS) * 100).toFixed(1)}% of the in-process ceiling`);
  console.log("(2-core VM shared with other work while this ran: treat these figures as indicative)");
} finally {
  rmSync(state, { recursive: true, force: true });
}
