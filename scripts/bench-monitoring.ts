/**
 * `npm run bench:monitoring`: predict throughput with monitoring on vs off, in the same run.
 *
 * Starts `wrangler dev` (port 8791, scratch --persist-to directory) alternately with
 * MONITORING_ENABLED=true and =false (passed with --var), registers the demo models, and drives
 * autocannon at POST /v1/models/credit-risk/predict with one-row and 100-row bodies. Rounds
 * alternate on/off so drift in machine load hits both; the best round of each is compared and
 * the overhead printed (target < 3%). Figures are printed, never asserted.
 *
 * Caveat: under wrangler dev the monitoring Durable Objects run in the same workerd process (and
 * on the same cores) as the worker, so their ingest CPU is counted against predict throughput
 * here; deployed, objects run apart from the isolates serving predictions.
 *
 * BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 10), BENCH_ROUNDS (default 2).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { applyMigrations, ensureDevVars, registerDemoModels, ROOT, startDevServer } from "./lib/dev-server.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const PORT = 8791;

const holdout = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-holdout.json"), "utf8"));
const rows: Record<string, unknown>[] = holdout.rows.map((r: { features: Record<string, unknown> }) => r.features);

interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function load(url: string, body: unknown): Promise<Result> {
  const r = await autocannon({ url, connections: CONNECTIONS, duration: SECONDS, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx };
}

async function main() {
  const persistTo = mkdtempSync(path.join(tmpdir(), "edge-ml-bench-monitoring-"));
  const vars = ensureDevVars();
  applyMigrations(persistTo);
  const cases = [
    { name: "predict 1 row", body: { features: rows[0] } },
    { name: "predict 100 rows", body: { instances: rows.slice(0, 100) } },
  ];
  const results: Record<string, Record<"on" | "off", Result[]>> = Object.fromEntries(cases.map((c) => [c.name, { on: [], off: [] }]));
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of round % 2 ? (["off", "on"] as const) : (["on", "off"] as const)) {
        const server = await startDevServer({ port: PORT, persistTo, quiet: true, vars: { MONITORING_ENABLED: mode === "on" ? "true" : "false", RATE_LIMITS_ENABLED: "false" } });
        try {
          await registerDemoModels(server.url, vars.ADMIN_TOKEN);
          const url = `${server.url}/v1/models/credit-risk/predict`;
          for (let i = 0; i < 50; i++) await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ features: rows[i] }) }); // warm-up
          for (const c of cases) {
            const r = await load(url, c.body);
            results[c.name][mode].push(r);
            console.log(`round ${round + 1} monitoring ${mode.padEnd(3)} ${c.name.padEnd(17)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  errors ${r.errors}`);
          }
          if (mode === "on") {
            const m = await fetch(`${server.url}/metrics`).then((r) => r.text());
            const total = /edge_ml_model_requests_total\{model="credit-risk",version="1.0.0"\} (\d+)/.exec(m)?.[1];
            console.log(`  monitored requests so far (fleet counter): ${total ?? "n/a"}`);
          }
        } finally {
          await server.stop();
        }
      }
    }
  } finally {
    rmSync(persistTo, { recursive: true, force: true });
  }
  console.log("\nbest round of each (monitoring on vs off):");
  for (const c of cases) {
    const best = (xs: Result[]) => xs.reduce((a, b) => (b.rps > a.rps ? b : a));
    const on = best(results[c.name].on);
    const off = best(results[c.name].off);
    const overhead = (1 - on.rps / off.rps) * 100;
    console.log(`${c.name.padEnd(17)} on ${on.rps.toFixed(0)} req/s, off ${off.rps.toFixed(0)} req/s: overhead ${overhead.toFixed(1)}% (target < 3%)`);
  }
}

await main();
