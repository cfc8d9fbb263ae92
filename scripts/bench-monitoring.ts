/**
 * `npm run bench:monitoring`: predict throughput with monitoring on vs off, in the same run.
 *
 * Two `wrangler dev` servers run side by side on scratch state: one with MONITORING_ENABLED=true
 * (port 8791), one with false (port 8792), both with the demo models registered. autocannon drives
 * POST /v1/models/credit-risk/predict (one row, and 100-row batches) in short loads, alternating
 * servers in ABBA order, so slow drift in the machine's speed (this is a shared VM) hits both
 * sides equally. Reported: the ratio of total throughput on/off over all loads, and a 95%
 * bootstrap interval over the ABBA blocks. Figures are printed, never asserted (target < 3%).
 *
 * Caveat: under wrangler dev the monitoring Durable Objects run in the same workerd process as
 * the worker, so their ingest CPU is counted against predict throughput here; deployed, objects
 * run apart from the isolates serving predictions.
 *
 * BENCH_SECONDS per load (default 4), BENCH_BLOCKS of ABBA (default 4), BENCH_CONNECTIONS (10).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { mulberry32 } from "../src/stats/random.ts";
import { applyMigrations, ensureDevVars, registerDemoModels, ROOT, startDevServer, type DevServer } from "./lib/dev-server.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const BLOCKS = Number(process.env.BENCH_BLOCKS ?? 4);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);

const holdout = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-holdout.json"), "utf8"));
const rows: Record<string, unknown>[] = holdout.rows.map((r: { features: Record<string, unknown> }) => r.features);

async function rps(url: string, body: unknown): Promise<{ rps: number; errors: number }> {
  const r = await autocannon({ url, connections: CONNECTIONS, duration: SECONDS, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { rps: r.requests.average, errors: r.errors + r.timeouts + r.non2xx };
}

async function server(mode: "on" | "off", port: number, dirs: string[], adminToken: string): Promise<DevServer> {
  const persistTo = mkdtempSync(path.join(tmpdir(), `edge-ml-bench-monitoring-${mode}-`));
  dirs.push(persistTo);
  applyMigrations(persistTo);
  const s = await startDevServer({ port, persistTo, quiet: true, vars: { MONITORING_ENABLED: mode === "on" ? "true" : "false", RATE_LIMITS_ENABLED: "false" } });
  await registerDemoModels(s.url, adminToken);
  return s;
}

/** Overhead 1 - on/off from summed throughput, and a bootstrap 95% interval over blocks. */
function overhead(blocks: { on: number; off: number }[]) {
  const ratio = (bs: { on: number; off: number }[]) => 1 - bs.reduce((s, b) => s + b.on, 0) / bs.reduce((s, b) => s + b.off, 0);
  const rand = mulberry32(7);
  const draws: number[] = [];
  for (let i = 0; i < 2000; i++) draws.push(ratio(blocks.map(() => blocks[Math.floor(rand() * blocks.length)])));
  draws.sort((a, b) => a - b);
  return { point: ratio(blocks), lo: draws[Math.floor(0.025 * draws.length)], hi: draws[Math.floor(0.975 * draws.length)] };
}

const vars = ensureDevVars();
const dirs: string[] = [];
const servers: DevServer[] = [];
try {
  const on = await server("on", 8791, dirs, vars.ADMIN_TOKEN);
  servers.push(on);
  const off = await server("off", 8792, dirs, vars.ADMIN_TOKEN);
  servers.push(off);
  const cases = [
    { name: "predict 1 row", body: { features: rows[0] } },
    { name: "predict 100 rows", body: { instances: rows.slice(0, 100) } },
  ];
  for (const s of [on, off]) for (let i = 0; i < 50; i++) await fetch(`${s.url}/v1/models/credit-risk/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ features: rows[i] }) });
  console.log(`\nmonitoring on (:8791) vs off (:8792): ${BLOCKS} ABBA blocks of ${SECONDS} s loads, ${CONNECTIONS} connections`);
  for (const c of cases) {
    const blocks: { on: number; off: number }[] = [];
    let errors = 0;
    for (let b = 0; b < BLOCKS; b++) {
      const order = [on, off, off, on];
      const got = { on: 0, off: 0 };
      for (const s of order) {
        const r = await rps(`${s.url}/v1/models/credit-risk/predict`, c.body);
        got[s === on ? "on" : "off"] += r.rps / 2;
        errors += r.errors;
      }
      blocks.push(got);
      console.log(`  ${c.name.padEnd(17)} block ${b + 1}: on ${got.on.toFixed(0).padStart(5)} req/s, off ${got.off.toFixed(0).padStart(5)} req/s`);
    }
    const o = overhead(blocks);
    const mean = (k: "on" | "off") => blocks.reduce((s, x) => s + x[k], 0) / blocks.length;
    console.log(`${c.name.padEnd(17)} on ${mean("on").toFixed(0)} req/s, off ${mean("off").toFixed(0)} req/s: overhead ${(o.point * 100).toFixed(1)}% (95% CI ${(o.lo * 100).toFixed(1)}% .. ${(o.hi * 100).toFixed(1)}%; target < 3%), errors ${errors}`);
  }
  const m = await fetch(`${on.url}/metrics`).then((r) => r.text());
  console.log(`monitored requests (fleet counter on the monitoring server): ${/edge_ml_model_requests_total\{model="credit-risk",version="1.0.0"\} (\d+)/.exec(m)?.[1] ?? "n/a"}`);
} finally {
  for (const s of servers) await s.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
