/**
 * `npm run bench:routing`: the per-request cost of deployment routing, printed (never asserted).
 *
 * Starts `wrangler dev` (port 8790, scratch state), registers the same logistic-regression
 * artifact as several versions of two models so model cost is identical everywhere, and starts:
 *   - bench-direct: a `direct` deployment (one variant: the deployment lookup, no split);
 *   - bench-ab: a 3-variant `ab_test` (34/33/33), requests carrying 1,000 distinct units.
 * autocannon then alternates between the two (ROUNDS x BENCH_SECONDS each, interleaved so machine
 * drift hits both) and prints throughput, p50/p95/p99 and the A/B throughput loss (target < 5%).
 * Both paths record live per-variant stats in their deployment's Durable Object (waitUntil).
 *
 * BENCH_SECONDS (default 8), BENCH_CONNECTIONS (default 10), BENCH_ROUNDS (default 2).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { adminApi, applyMigrations, ensureDevVars, registerModel, ROOT, startDevServer } from "./lib/dev-server.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const PORT = 8790;

const manifest = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-lr.manifest.json"), "utf8"));
const artifact = readFileSync(path.join(ROOT, "models/credit-risk-lr.onnx"));
const holdout = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-holdout.json"), "utf8"));
const rows: Record<string, unknown>[] = holdout.rows.map((r: { features: Record<string, unknown> }) => r.features);

const api = (url: string, token: string, method: string, pathname: string, body?: unknown) => adminApi(url, token, method, pathname, body, "bench-routing");

const registerVersion = (url: string, token: string, name: string, version: string, aliases: string[]) =>
  registerModel(url, token, JSON.stringify({ ...manifest, name, version }), artifact, aliases, { actor: "bench-routing", allowExisting: false });

async function deploy(url: string, token: string, body: Record<string, unknown>) {
  const { deployment } = await api(url, token, "POST", "/admin/deployments", body);
  const { report } = await api(url, token, "POST", `/admin/deployments/${deployment.id}/validate`, {});
  if (!report.passed) throw new Error(`validation failed: ${JSON.stringify(report)}`);
  await api(url, token, "POST", `/admin/deployments/${deployment.id}/start`, { reason: "benchmark" });
  return deployment.id as string;
}

interface Load {
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
}

async function load(url: string): Promise<Load> {
  const requests = Array.from({ length: 1000 }, (_, i) => ({ method: "POST" as const, body: JSON.stringify({ features: rows[i % rows.length], unit: `user-${i}` }) }));
  const result = await autocannon({ url, connections: CONNECTIONS, duration: SECONDS, headers: { "content-type": "application/json" }, requests });
  const errors = result.errors + result.timeouts + result.non2xx;
  if (errors) console.log(`  ${url}: ${result.errors} connection errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx ${JSON.stringify((result as any).statusCodeStats ?? {})}`);
  return { rps: result.requests.average, p50: result.latency.p50, p95: result.latency.p95 ?? result.latency.p97_5, p99: result.latency.p99, errors };
}

function mean(xs: Load[]): Load {
  const avg = (f: (l: Load) => number) => xs.reduce((s, l) => s + f(l), 0) / xs.length;
  return { rps: avg((l) => l.rps), p50: avg((l) => l.p50), p95: avg((l) => l.p95), p99: avg((l) => l.p99), errors: xs.reduce((s, l) => s + l.errors, 0) };
}

const state = mkdtempSync(path.join(tmpdir(), "edge-ml-bench-routing-"));
const vars = ensureDevVars();
applyMigrations(state);
// The rate limiter (6000/min per client) would answer 429 to a load generator; it is off for the run.
const server = await startDevServer({ port: PORT, persistTo: state, quiet: true, vars: { RATE_LIMITS_ENABLED: "false" } });
try {
  const { url } = server;
  const token = vars.ADMIN_TOKEN;
  for (const name of ["bench-direct", "bench-ab"]) {
    await registerVersion(url, token, name, "1.0.0", ["champion"]);
    await registerVersion(url, token, name, "1.0.1", []);
    await registerVersion(url, token, name, "1.0.2", []);
    await api(url, token, "PUT", `/admin/deployments/test-sets/${name}`, { rows: holdout.rows.slice(0, 200) });
  }
  const direct = await deploy(url, token, { strategy: "direct", model: "bench-direct", version: "1.0.1" });
  const ab = await deploy(url, token, {
    strategy: "ab_test",
    model: "bench-ab",
    variants: [
      { name: "a", version: "1.0.0", weight: 34 },
      { name: "b", version: "1.0.1", weight: 33 },
      { name: "c", version: "1.0.2", weight: 33 },
    ],
  });
  const targets = { direct: `${url}/v1/models/bench-direct/predict`, ab: `${url}/v1/models/bench-ab/predict` };
  for (const t of Object.values(targets)) for (let i = 0; i < 50; i++) await fetch(t, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ features: rows[i], unit: `warm-${i}` }) });

  console.log(`\nrouting benchmark: autocannon, ${CONNECTIONS} connections, ${ROUNDS} x ${SECONDS} s per deployment (interleaved), wrangler dev on 127.0.0.1:${PORT}`);
  const runs: Record<"direct" | "ab", Load[]> = { direct: [], ab: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const k of r % 2 === 0 ? (["direct", "ab"] as const) : (["ab", "direct"] as const)) runs[k].push(await load(targets[k]));
  }
  const d = mean(runs.direct);
  const a = mean(runs.ab);
  console.log("\ndeployment                     req/s     p50 ms   p95 ms   p99 ms   errors");
  for (const [label, l] of [["direct (1 variant)", d], ["ab_test (3 variants)", a]] as const) {
    console.log(`${label.padEnd(28)} ${l.rps.toFixed(0).padStart(7)} ${l.p50.toFixed(2).padStart(9)} ${l.p95.toFixed(2).padStart(8)} ${l.p99.toFixed(2).padStart(8)} ${String(l.errors).padStart(8)}`);
  }
  const loss = ((d.rps - a.rps) / d.rps) * 100;
  console.log(`\nA/B routing throughput loss vs direct: ${loss.toFixed(1)}% (target < 5%)`);
  const results = await api(url, token, "GET", `/admin/deployments/${ab}/results`);
  console.log(`A/B split recorded by the deployment's Durable Object: ${results.variants.map((v: any) => `${v.name}=${v.requests}`).join(", ")}`);
  const directResults = await api(url, token, "GET", `/admin/deployments/${direct}/results`);
  console.log(`direct deployment requests recorded: ${directResults.variants.map((v: any) => `${v.name}=${v.requests}`).join(", ")}`);
} finally {
  await server.stop();
  rmSync(state, { recursive: true, force: true });
}
