/**
 * `npm run bench:compare`: the project as deployed, side by side with the stack users leave.
 *
 * Targets, all in one run:
 *   trivial        a one-line fetch handler in its own workerd (the ceiling of this harness)
 *   /health        the project's cheapest route
 *   predict 1/100  POST /v1/models/credit-risk/predict of the demo GBDT (version 1.1.0), 1 row / 100 rows
 *   peer 1/100     FastAPI + scikit-learn + uvicorn (scripts/peer/server.py, one worker, no access
 *                  log), a GradientBoostingClassifier trained on the same split with the same
 *                  settings, the same JSON bodies
 * The project runs as its deployable bundle (`wrangler deploy --dry-run --outdir`) in workerd through
 * Miniflare with wrangler.toml's bindings (scripts/lib/miniflare-bundle.ts): monitoring on (the
 * production default), rate limiting off, REQUEST_LOGS off (BENCH_REQUEST_LOGS=true keeps the
 * per-request log line; workerd's output is then counted and dropped).
 *
 * Method: each round loads every target for BENCH_SECONDS with BENCH_CONNECTIONS connections, in an
 * order rotated by one each round (ABCDEF, BCDEFA, ...), so slow drift of this shared machine hits
 * all targets alike. The load generator (autocannon, this process) is pinned to cpu 0, every server
 * to cpu 1 (taskset). CPU per request is the server process's utime+stime from /proc over the load
 * (for the project, plus MONITORING_FLUSH_MS + 0.5 s after it, so the load's last monitoring flush is
 * charged to it). Latency quantiles come from every response's own time (autocannon's histogram
 * rounds to whole milliseconds). Each figure is the median over rounds with a 95% bootstrap interval
 * (rounds drawn with replacement); ratios are taken within each round, then the same.
 *
 * Cold start (before the load rounds, unpinned): fresh workerd processes over the same stored state,
 * time to ready and to the first prediction of the demo GBDT and of a ~5 MB GBDT
 * (scripts/lib/large-model.ts), plus a split of the first requests (runtime start, session create).
 *
 * Targets are printed, never asserted. Knobs: BENCH_SECONDS (5), BENCH_ROUNDS (6), BENCH_CONNECTIONS
 * (10), BENCH_COLD_RUNS (3), BENCH_QUICK=1 (a smoke run: 1 s loads, 2 rounds, 1 cold run),
 * BENCH_PORT (first of the 6 ports used, default 8840).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, cpus, tmpdir } from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { auc } from "../src/stats/classification.ts";
import { registerDemoModels, registerModel, ROOT } from "./lib/dev-server.ts";
import { largeGbdt } from "./lib/large-model.ts";
import { buildBundle, startTrivialWorker, startWorker, type RunningWorker } from "./lib/miniflare-bundle.ts";
import { ensurePeerPackages, startPeer, type Peer } from "./lib/peer.ts";
import { bootstrapMedian, median, quantileSorted } from "./lib/quantiles.ts";
import { cpuSeconds, pin } from "./lib/workerd-process.ts";

const QUICK = process.env.BENCH_QUICK === "1";
const SECONDS = Number(process.env.BENCH_SECONDS ?? (QUICK ? 1 : 5));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (QUICK ? 2 : 6));
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const COLD_RUNS = Number(process.env.BENCH_COLD_RUNS ?? (QUICK ? 1 : 3));
const PORT = Number(process.env.BENCH_PORT ?? 8840);
const REQUEST_LOGS = process.env.BENCH_REQUEST_LOGS === "true" ? "true" : "false";
const FLUSH_MS = 2000;
const ADMIN = "bench-admin-token";
const VARS = { ADMIN_TOKEN: ADMIN, API_KEYS: "bench-key", METRICS_TOKEN: "", RATE_LIMITS_ENABLED: "false", MONITORING_ENABLED: "true", MONITORING_FLUSH_MS: String(FLUSH_MS), REQUEST_LOGS };
const PREDICT = "/v1/models/credit-risk/predict";

const holdout = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-holdout.json"), "utf8")) as { rows: { features: Record<string, unknown>; label: number }[] };
const rows = holdout.rows.map((r) => r.features);
const one = JSON.stringify({ version: "1.1.0", features: rows[0] });
const hundred = JSON.stringify({ version: "1.1.0", instances: rows.slice(0, 100) });

interface Target {
  name: string;
  url: () => string;
  method: "GET" | "POST";
  body?: string;
  rows: number;
  pid: () => number;
  settleMs: number;
}
interface Sample {
  rps: number;
  rowsPerS: number;
  p50: number;
  p99: number;
  cpuUs: number;
  errors: number;
}

/** One load of one target: throughput, latency quantiles from every response, server CPU per request. */
async function load(t: Target, seconds: number): Promise<Sample> {
  const pid = t.pid();
  const cpu0 = cpuSeconds(pid);
  const latencies: number[] = [];
  const instance = autocannon({ url: t.url(), connections: CONNECTIONS, duration: seconds, method: t.method, headers: t.body ? { "content-type": "application/json" } : {}, body: t.body });
  instance.on("response", (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status < 300) latencies.push(ms);
  });
  const r = await instance;
  if (t.settleMs) await new Promise((resolve) => setTimeout(resolve, t.settleMs));
  const cpu = cpuSeconds(pid) - cpu0;
  latencies.sort((a, b) => a - b);
  const total = r.requests.total;
  const elapsed = typeof r.duration === "number" && r.duration > 0 ? r.duration : seconds;
  return {
    rps: total / elapsed,
    rowsPerS: (total * t.rows) / elapsed,
    p50: latencies.length ? quantileSorted(latencies, 0.5) : NaN,
    p99: latencies.length ? quantileSorted(latencies, 0.99) : NaN,
    cpuUs: (cpu * 1e6) / Math.max(1, total),
    errors: r.errors + r.timeouts + r.non2xx,
  };
}

const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
const ci = (xs: number[], d = 0, unit = "") => {
  const b = bootstrapMedian(xs);
  return `${fmt(b.point, d)}${unit} [${fmt(b.lo, d)}, ${fmt(b.hi, d)}]`;
};

async function post(url: string, body: string): Promise<{ status: number; json: any; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
  const json = await res.json().catch(() => null);
  return { status: res.status, json, ms: performance.now() - t0 };
}

// ---- build -------------------------------------------------------------------------------------
const scratch = mkdtempSync(path.join(tmpdir(), "edge-ml-bench-compare-"));
const bundleDir = path.join(scratch, "bundle");
const CORES = availableParallelism();
const started = Date.now();
console.log(`bench:compare ${new Date().toISOString()}; ${cpus()[0]?.model ?? "cpu"} x ${CORES}; load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
console.log(`building the deployable bundle (wrangler deploy --dry-run --outdir ${bundleDir})`);
buildBundle(bundleDir);
ensurePeerPackages();
const large = largeGbdt();
console.log(`cold-start model: credit-risk-large@1.0.0, ${large.trees} trees, ${(large.bytes.byteLength / 1024 / 1024).toFixed(2)} MB ONNX`);

const running: { stop(): Promise<void> }[] = [];
try {
  // ---- cold start -------------------------------------------------------------------------------
  const state = path.join(scratch, "state");
  {
    const w = await startWorker({ bundleDir, port: PORT + 2, vars: VARS, persistTo: state });
    try {
      await registerDemoModels(w.url, ADMIN);
      await registerModel(w.url, ADMIN, large.manifest, large.bytes, []);
    } finally {
      await w.stop();
    }
  }
  const cold = { trivialReady: [] as number[], ready: [] as number[], demoFirst: [] as number[], largeFirst: [] as number[], demoTotal: [] as number[], largeTotal: [] as number[], runtime: [] as number[], demoSession: [] as number[], largeSession: [] as number[], warm: [] as number[] };
  const body = (version: string, model = "credit-risk") => ({ url: `${PREDICT.replace("credit-risk", model)}`, body: JSON.stringify({ version, features: rows[1] }) });
  const lr = body("1.0.0");
  const demo = body("1.1.0");
  const big = body("1.0.0", "credit-risk-large");
  for (let run = 0; run < COLD_RUNS; run++) {
    // The harness's own share of "ready" (Miniflare's config, a workerd process): a one-line worker.
    const t = performance.now();
    const ceiling = await startTrivialWorker(PORT + 3);
    cold.trivialReady.push(performance.now() - t);
    await ceiling.stop();
    for (const [which, m] of [["demo", demo], ["large", big]] as const) {
      const t0 = performance.now();
      const w = await startWorker({ bundleDir, port: PORT + 2, vars: VARS, persistTo: state, migrate: false });
      const ready = performance.now() - t0;
      const first = await post(w.url + m.url, m.body);
      await w.stop();
      if (first.status !== 200) throw new Error(`cold ${which} predict answered ${first.status}: ${JSON.stringify(first.json)}`);
      cold.ready.push(ready);
      cold[which === "demo" ? "demoFirst" : "largeFirst"].push(first.ms);
      cold[which === "demo" ? "demoTotal" : "largeTotal"].push(ready + first.ms);
    }
    // Split: the runtime's start (the tiny LR model's first request minus its second), then each
    // model's session creation (its first request minus its second) in the same, already started isolate.
    const w = await startWorker({ bundleDir, port: PORT + 2, vars: VARS, persistTo: state, migrate: false });
    try {
      const seq = [];
      for (const m of [lr, lr, demo, demo, big, big]) seq.push(await post(w.url + m.url, m.body));
      if (seq.some((s) => s.status !== 200)) throw new Error(`cold split: ${seq.map((s) => s.status).join(",")}`);
      cold.runtime.push(seq[0].ms - seq[1].ms);
      cold.demoSession.push(seq[2].ms - seq[3].ms);
      cold.largeSession.push(seq[4].ms - seq[5].ms);
      cold.warm.push(seq[3].ms);
    } finally {
      await w.stop();
    }
    console.log(`cold run ${run + 1}/${COLD_RUNS}: ready ${fmt(cold.ready.at(-1)!)} ms, first demo predict ${fmt(cold.demoFirst.at(-1)!)} ms, first 5 MB predict ${fmt(cold.largeFirst.at(-1)!)} ms`);
  }

  // ---- servers for the load rounds -----------------------------------------------------------------
  const project = await startWorker({ bundleDir, port: PORT, vars: VARS, persistTo: path.join(scratch, "load-state") });
  running.push(project);
  await registerDemoModels(project.url, ADMIN);
  const trivial = await startTrivialWorker(PORT + 1);
  running.push(trivial);
  const peer: Peer = await startPeer(PORT + 5);
  running.push(peer);

  // Same task, same data: holdout AUC of both (one batch request each), and both answer the bodies.
  const labels = holdout.rows.map((r) => r.label);
  const all = JSON.stringify({ version: "1.1.0", instances: rows });
  const ours = await post(project.url + PREDICT, all);
  const theirs = await post(peer.url + PREDICT, all);
  if (ours.status !== 200 || theirs.status !== 200) throw new Error(`holdout batch: project ${ours.status}, peer ${theirs.status}`);
  const p1 = (p: { probabilities: Record<string, number> }) => p.probabilities["1"];
  console.log(`holdout AUC (${rows.length} rows): project GBDT ${auc(labels, ours.json.predictions.map(p1)).toFixed(4)}, peer GBDT ${auc(labels, theirs.json.predictions.map(p1)).toFixed(4)}`);

  const pinned = CORES >= 2 && pin(project.pid, 1) && pin(trivial.pid, 1) && pin(peer.pid, 1) && pin(process.pid, 0);
  console.log(pinned ? "servers pinned to cpu 1, load generator to cpu 0" : "NOT pinned (taskset missing or one core): figures are less comparable");

  const targets: Target[] = [
    { name: "trivial worker", url: () => `${trivial.url}/`, method: "GET", rows: 1, pid: () => trivial.pid, settleMs: 0 },
    { name: "/health", url: () => `${project.url}/health`, method: "GET", rows: 1, pid: () => project.pid, settleMs: 0 },
    { name: "predict 1 row", url: () => project.url + PREDICT, method: "POST", body: one, rows: 1, pid: () => project.pid, settleMs: FLUSH_MS + 500 },
    { name: "predict 100 rows", url: () => project.url + PREDICT, method: "POST", body: hundred, rows: 100, pid: () => project.pid, settleMs: FLUSH_MS + 500 },
    { name: "peer 1 row", url: () => peer.url + PREDICT, method: "POST", body: one, rows: 1, pid: () => peer.pid, settleMs: 0 },
    { name: "peer 100 rows", url: () => peer.url + PREDICT, method: "POST", body: hundred, rows: 100, pid: () => peer.pid, settleMs: 0 },
  ];
  // Warm-up: let each JIT settle (not measured).
  for (const t of targets) await load(t, Math.min(2, SECONDS));
  const samples = new Map<string, Sample[]>(targets.map((t) => [t.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = targets.map((_, i) => targets[(i + round) % targets.length]);
    const line: string[] = [];
    for (const t of order) {
      const s = await load(t, SECONDS);
      samples.get(t.name)!.push(s);
      line.push(`${t.name} ${fmt(s.rps)}/s`);
    }
    console.log(`round ${round + 1}/${ROUNDS}: ${line.join(", ")}`);
  }

  // ---- report ------------------------------------------------------------------------------------
  const of = (name: string) => samples.get(name)!;
  const col = (name: string, k: keyof Sample) => of(name).map((s) => s[k]);
  const perRound = (a: string, ka: keyof Sample, b: string, kb: keyof Sample) => of(a).map((s, i) => s[ka] / of(b)[i][kb]);
  const load1 = loadavg();
  console.log(`\n### bench:compare, ${new Date().toISOString().slice(0, 10)}\n`);
  console.log(`${cpus()[0]?.model ?? "cpu"}, ${CORES} cores; ${ROUNDS} rounds x ${SECONDS} s per target, ${CONNECTIONS} connections; load average at the end ${load1.map((x) => x.toFixed(2)).join(" ")}; request logs ${REQUEST_LOGS === "true" ? "on" : "off"}, monitoring on, rate limits off. Medians over rounds [95% bootstrap interval].\n`);
  console.log("| target | req/s | rows/s | p50 ms | p99 ms | server CPU us/request | errors |");
  console.log("|---|---|---|---|---|---|---|");
  for (const t of targets) {
    const errors = of(t.name).reduce((s, x) => s + x.errors, 0);
    console.log(`| ${t.name} | ${ci(col(t.name, "rps"))} | ${t.rows > 1 ? ci(col(t.name, "rowsPerS")) : "-"} | ${fmt(median(col(t.name, "p50")), 2)} | ${ci(col(t.name, "p99"), 2)} | ${ci(col(t.name, "cpuUs"))} | ${errors} |`);
  }
  const verdict = (point: number, target: number, higher: boolean) => ((higher ? point >= target : point <= target) ? "met" : "missed");
  /** A ratio against its target (issue 18's), or for information when `target` is undefined. */
  const ratio = (label: string, xs: number[], target: number | undefined, higher: boolean, unit = "x") => {
    const b = bootstrapMedian(xs);
    const show = (x: number) => (unit === "%" ? `${(x * 100).toFixed(0)}%` : `${x.toFixed(2)}x`);
    const goal = target === undefined ? "- | for information" : `${higher ? ">=" : "<="} ${show(target)} | ${verdict(b.point, target, higher)}`;
    console.log(`| ${label} | ${show(b.point)} [${show(b.lo)}, ${show(b.hi)}] | ${goal} |`);
  };
  console.log("\n| ratio (within each round) | median [95% interval] | target | |");
  console.log("|---|---|---|---|");
  ratio("predict 1 row req/s / trivial req/s", perRound("predict 1 row", "rps", "trivial worker", "rps"), 0.8, true, "%");
  ratio("predict 1 row req/s / peer 1 row req/s", perRound("predict 1 row", "rps", "peer 1 row", "rps"), 2, true);
  ratio("predict 100 rows/s / peer 100 rows/s", perRound("predict 100 rows", "rowsPerS", "peer 100 rows", "rowsPerS"), 2, true);
  ratio("predict 1 row p99 / trivial p99", perRound("predict 1 row", "p99", "trivial worker", "p99"), 1.5, false);
  ratio("/health req/s / trivial req/s", perRound("/health", "rps", "trivial worker", "rps"), undefined, true, "%");
  ratio("predict 1 row CPU/request / peer's", perRound("predict 1 row", "cpuUs", "peer 1 row", "cpuUs"), undefined, false);
  ratio("predict 100 rows CPU/row / peer's", perRound("predict 100 rows", "cpuUs", "peer 100 rows", "cpuUs"), undefined, false);

  const ms = (xs: number[]) => `${fmt(median(xs))} ms (${xs.map((x) => fmt(x)).join(", ")})`;
  console.log(`\n| cold start (median of ${COLD_RUNS} runs; each run's figures) | time |`);
  console.log("|---|---|");
  console.log(`| new workerd process until ready (Miniflare config, bundle + 14 MB WASM module compile, top-level code) | ${ms(cold.ready)} |`);
  console.log(`| the same for the one-line worker (the harness's share: Miniflare, workerd process start) | ${ms(cold.trivialReady)} |`);
  console.log(`| first predict, demo GBDT (32 KB): runtime start + session create + registry reads | ${ms(cold.demoFirst)} |`);
  console.log(`| first predict, 5 MB GBDT (${large.trees} trees) | ${ms(cold.largeFirst)} |`);
  console.log(`| of which onnxruntime start (WASM instantiate + init) | ${ms(cold.runtime)} |`);
  console.log(`| of which session create, demo GBDT | ${ms(cold.demoSession)} |`);
  console.log(`| of which session create, 5 MB GBDT | ${ms(cold.largeSession)} |`);
  console.log(`| warm predict (same isolate, for reference) | ${ms(cold.warm)} |`);
  console.log(`| new isolate to first prediction, demo / 5 MB (target < 1000 ms each) | ${fmt(median(cold.demoTotal))} / ${fmt(median(cold.largeTotal))} ms |`);
  // Monitoring really was on: the fleet counter the monitoring Durable Objects keep for the GBDT.
  const metrics = await fetch(`${project.url}/metrics`).then((r) => r.text());
  const monitored = /edge_ml_model_requests_total\{[^}]*version="1\.1\.0"[^}]*\} (\d+)/.exec(metrics)?.[1] ?? "n/a";
  console.log(`\n(wall time ${((Date.now() - started) / 1000).toFixed(0)} s; predictions of credit-risk@1.1.0 counted by monitoring ${monitored}; project log lines seen ${project.logLines()})`);
} finally {
  for (const r of running.reverse()) await r.stop().catch(() => undefined);
  rmSync(scratch, { recursive: true, force: true });
}
