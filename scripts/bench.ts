/**
 * `npm run bench`: throughput and latency of the inference core, printed (never asserted).
 *
 * 1. Starts `wrangler dev` on a scratch state directory, registers the demo models, and drives
 *    autocannon at: a trivial route of the same worker (/health), predict with one row, and
 *    predict with 100-row batches. Prints p50/p95/p99 latency and requests/s for each, and the
 *    predict/trivial throughput ratio (target >= 60%).
 * 2. In-isolate inference time: the admin profile endpoint times many runs inside the worker's
 *    isolate (mean per row; workerd's clock is too coarse for per-call quantiles).
 * 3. Per-call distribution: the same model in onnxruntime-web's WASM build under Node, timed with
 *    a high-resolution clock per single-row run (target p99 < 0.5 ms).
 *
 * BENCH_SECONDS (default 10) and BENCH_CONNECTIONS (default 10) tune the load.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import * as ort from "onnxruntime-web";
import { applyMigrations, ensureDevVars, registerDemoModels, ROOT, startDevServer } from "./lib/dev-server.ts";
import { quantileSorted } from "./lib/quantiles.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const PORT = Number(process.env.BENCH_PORT ?? 8788);

const manifest = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-lr.manifest.json"), "utf8"));
const holdout = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-holdout.json"), "utf8"));
const rows: Record<string, unknown>[] = holdout.rows.map((r: { features: Record<string, unknown> }) => r.features);

interface Load {
  name: string;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
}

async function load(name: string, url: string, body?: unknown): Promise<Load> {
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: SECONDS,
    method: body ? "POST" : "GET",
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const errors = result.errors + result.timeouts + result.non2xx;
  return { name, rps: result.requests.average, p50: result.latency.p50, p95: result.latency.p95 ?? result.latency.p97_5, p99: result.latency.p99, errors };
}

async function nodeInference(batch: number, iterations: number) {
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(readFileSync(path.join(ROOT, "models/credit-risk-lr.onnx")));
  const columns = manifest.featureSchema.input.columns as { feature: string; oneHot?: string }[];
  const impute = new Map<string, unknown>(manifest.featureSchema.features.filter((f: any) => f.missing.policy === "impute").map((f: any) => [f.name, f.missing.value]));
  const data = new Float32Array(batch * columns.length);
  for (let r = 0; r < batch; r++) {
    const row = rows[r % rows.length];
    columns.forEach((c, j) => {
      const v = row[c.feature] ?? impute.get(c.feature);
      data[r * columns.length + j] = c.oneHot ? (v === c.oneHot ? 1 : 0) : Number(v);
    });
  }
  const feeds = { [manifest.featureSchema.input.name]: new ort.Tensor("float32", data, [batch, columns.length]) };
  for (let i = 0; i < 200; i++) await session.run(feeds);
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = process.hrtime.bigint();
    await session.run(feeds);
    samples.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  samples.sort((a, b) => a - b);
  await session.release();
  return { p50: quantileSorted(samples, 0.5), p95: quantileSorted(samples, 0.95), p99: quantileSorted(samples, 0.99), perRow: quantileSorted(samples, 0.5) / batch };
}

const state = mkdtempSync(path.join(tmpdir(), "edge-ml-bench-"));
const vars = ensureDevVars();
applyMigrations(state);
// The rate limiter (6000/min per client) would answer 429 to a load generator; it is off for the run.
const server = await startDevServer({ port: PORT, persistTo: state, quiet: true, vars: { RATE_LIMITS_ENABLED: "false" } });
try {
  await registerDemoModels(server.url, vars.ADMIN_TOKEN);
  const predictUrl = `${server.url}/v1/models/credit-risk/predict`;
  await fetch(predictUrl, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ features: rows[0] }) });

  console.log(`\nload: autocannon, ${CONNECTIONS} connections, ${SECONDS} s per route, wrangler dev on 127.0.0.1:${PORT}`);
  const results = [
    await load("trivial GET /health", `${server.url}/health`),
    await load("predict, 1 row", predictUrl, { features: rows[0] }),
    await load("predict, 100 rows", predictUrl, { instances: rows.slice(0, 100) }),
  ];
  console.log("\nroute                      req/s     p50 ms   p95 ms   p99 ms   errors");
  for (const r of results) console.log(`${r.name.padEnd(24)} ${r.rps.toFixed(0).padStart(7)} ${r.p50.toFixed(2).padStart(9)} ${r.p95.toFixed(2).padStart(8)} ${r.p99.toFixed(2).padStart(8)} ${String(r.errors).padStart(8)}`);
  const [trivial, single, hundred] = results;
  console.log(`\npredict (1 row) throughput = ${((single.rps / trivial.rps) * 100).toFixed(1)}% of the trivial route (target >= 60%)`);
  console.log(`predict (100 rows) = ${(hundred.rps * 100).toFixed(0)} rows/s`);

  const auth = { authorization: `Bearer ${vars.ADMIN_TOKEN}`, "content-type": "application/json" };
  console.log("\nin-isolate inference (tensor build + session run + decode), mean over many runs:");
  for (const [rowsPerRun, iterations] of [
    [1, 20000],
    [100, 2000],
  ]) {
    const res = await fetch(`${server.url}/admin/models/credit-risk/versions/1.0.0/profile`, { method: "POST", headers: auth, body: JSON.stringify({ rows: rowsPerRun, iterations }) });
    const p = (await res.json()) as { mean_ms_per_run: number | null; mean_ms_per_row: number | null; note?: string };
    console.log(`  ${String(rowsPerRun).padStart(3)} row(s)/run x ${iterations}: ${p.mean_ms_per_run?.toFixed(4) ?? "n/a"} ms/run, ${p.mean_ms_per_row?.toFixed(4) ?? "n/a"} ms/row ${p.note ?? ""}`);
  }

  console.log("\nper-call session.run, same onnxruntime-web WASM under Node (high-resolution clock):");
  for (const [batch, iterations] of [
    [1, 20000],
    [100, 2000],
  ]) {
    const r = await nodeInference(batch, iterations);
    console.log(`  ${String(batch).padStart(3)} row(s): p50 ${r.p50.toFixed(4)} ms, p95 ${r.p95.toFixed(4)} ms, p99 ${r.p99.toFixed(4)} ms (${(r.perRow * 1000).toFixed(2)} us/row at p50)${batch === 1 ? " (target p99 < 0.5 ms)" : ""}`);
  }
} finally {
  await server.stop();
  rmSync(state, { recursive: true, force: true });
}
