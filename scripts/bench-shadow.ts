/**
 * `npm run bench:shadow`: what a slow shadow costs the caller, printed (never asserted).
 *
 * Builds a deliberately slow copy of the demo logistic regression (same inputs and outputs; a
 * ballast of SHADOW_LAYERS 512x512 MatMul+Tanh layers whose result is added times zero, so its
 * answers equal the original's and each row costs tens of ms of CPU), starts `wrangler dev` (port
 * BENCH_PORT, default 8803, scratch state), registers the fast model as 1.0.0 (champion) and the
 * slow one as 1.1.0, and measures the caller's latency (autocannon at BENCH_RATE requests/s over
 * BENCH_CONNECTIONS connections for BENCH_SECONDS) without a deployment, then with a shadow
 * deployment of the slow version scoring 100% of requests (through the edge-ml-shadow Queue).
 *
 * Locally, wrangler dev runs the queue consumer in the same workerd process as the requests, so
 * its CPU still competes with callers on this machine; on Cloudflare the consumer is a separate
 * invocation. The figures say what the local setup shows.
 */
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { applyMigrations, ensureDevVars, ROOT, startDevServer } from "./lib/dev-server.ts";
import { slowCopy } from "./lib/slow-model.ts";

const PORT = Number(process.env.BENCH_PORT ?? 8803);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 2);
const RATE = Number(process.env.BENCH_RATE ?? 10);
const LAYERS = Number(process.env.SHADOW_LAYERS ?? 120);
const WIDTH = 512;

const manifest = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-lr.manifest.json"), "utf8"));
const fast = readFileSync(path.join(ROOT, "models/credit-risk-lr.onnx"));
const holdout = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-holdout.json"), "utf8"));
const rows: Record<string, unknown>[] = holdout.rows.map((r: { features: Record<string, unknown> }) => r.features);

/** The fast model plus a CPU ballast that does not change its outputs (scripts/lib/slow-model.ts). */
const slowModel = (): Uint8Array => slowCopy(fast, LAYERS, WIDTH);

async function api(url: string, token: string, method: string, pathname: string, body?: unknown) {
  const res = await fetch(`${url}${pathname}`, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = (await res.json()) as any;
  if (!res.ok) throw new Error(`${method} ${pathname}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function register(url: string, token: string, version: string, artifact: Uint8Array, aliases: string[]) {
  const form = new FormData();
  form.set("manifest", JSON.stringify({ ...manifest, name: "bench-shadow", version }));
  form.set("artifact", new Blob([artifact]), "model.onnx");
  for (const a of aliases) form.append("alias", a);
  const res = await fetch(`${url}/admin/models/bench-shadow/versions`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: form });
  if (res.status !== 201) throw new Error(`register ${version}: ${res.status} ${await res.text()}`);
}

async function serial(url: string, body: (i: number) => unknown, n = 40): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body(i)) });
    await res.arrayBuffer();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(n / 2)];
}

async function load(url: string) {
  const requests = Array.from({ length: 500 }, (_, i) => ({ method: "POST" as const, body: JSON.stringify({ features: rows[i % rows.length] }) }));
  const r = await autocannon({ url, connections: CONNECTIONS, overallRate: RATE, duration: SECONDS, headers: { "content-type": "application/json" }, requests });
  return { n: r.requests.total, p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx };
}

const state = mkdtempSync(path.join(tmpdir(), "edge-ml-bench-shadow-"));
const vars = ensureDevVars();
applyMigrations(state);
const server = await startDevServer({ port: PORT, persistTo: state, quiet: true, vars: { RATE_LIMITS_ENABLED: "false" } });
try {
  const { url } = server;
  const token = vars.ADMIN_TOKEN;
  await register(url, token, "1.0.0", fast, ["champion"]);
  await register(url, token, "1.1.0", slowModel(), []);
  await api(url, token, "PUT", "/admin/deployments/test-sets/bench-shadow", { rows: holdout.rows.slice(0, 50) });
  const predict = `${url}/v1/models/bench-shadow/predict`;
  const fastMs = await serial(predict, (i) => ({ features: rows[i % rows.length], version: "1.0.0" }));
  const slowMs = await serial(predict, (i) => ({ features: rows[i % rows.length], version: "1.1.0" }));
  console.log(`\nsingle request, median of 40: fast 1.0.0 ${fastMs.toFixed(1)} ms, slow 1.1.0 ${slowMs.toFixed(1)} ms (${LAYERS} ballast layers)`);

  const without = await load(predict);
  const { deployment } = await api(url, token, "POST", "/admin/deployments", { model: "bench-shadow", strategy: "shadow", version: "1.1.0", fraction: 100, validation: { latency_budget_ms: 10_000 } });
  const { report } = await api(url, token, "POST", `/admin/deployments/${deployment.id}/validate`, {});
  if (!report.passed) throw new Error(`validation failed: ${JSON.stringify(report)}`);
  await api(url, token, "POST", `/admin/deployments/${deployment.id}/start`, {});
  await serial(predict, (i) => ({ features: rows[i % rows.length] }), 10); // routing picked up, shadow session warm
  const withShadow = await load(predict);
  await new Promise((r) => setTimeout(r, 3000));
  const results = await api(url, token, "GET", `/admin/deployments/${deployment.id}/results`);
  console.log(`caller latency at ${RATE} req/s, ${CONNECTIONS} connections, ${SECONDS} s (autocannon, wrangler dev on 127.0.0.1:${PORT})`);
  console.log("                          requests  p50 ms  p90 ms  p99 ms  errors");
  for (const [label, l] of [["no deployment", without], ["slow shadow (queue)", withShadow]] as const) {
    console.log(`${label.padEnd(24)} ${String(l.n).padStart(9)} ${String(l.p50).padStart(7)} ${String(l.p90).padStart(7)} ${String(l.p99).padStart(7)} ${String(l.errors).padStart(7)}`);
  }
  console.log(`shadow comparisons recorded: ${results.shadow.requests} (errors ${results.shadow.errors}, timeouts ${results.shadow.timeouts}), shadow latency p50 ${results.shadow.latency_ms.p50} ms`);
} finally {
  await server.stop();
  rmSync(state, { recursive: true, force: true });
}
