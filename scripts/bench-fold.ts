/**
 * `npm run bench:fold`: what the monitoring fold costs per row and per request, in Node, through
 * the same code the worker runs (src/monitoring/collector.ts foldPrediction + sealTarget, with the
 * validator of src/inference/features.ts producing the rows), so the fold can be measured apart
 * from HTTP, inference and the Durable Objects that `bench:monitoring` measures together.
 *
 * Requests are real rows of data/credit_data.csv (missing cells left out, as callers send them),
 * validated against the demo model's schema (models/credit-risk-lr.manifest.json: 9 numeric and 4
 * categorical features, imputation as served), scored with the demo logistic regression
 * (models/credit-risk-lr.params.json, float32 like the ONNX output). Each flush cycle folds
 * BENCH_FLUSH_REQUESTS requests into a fresh target (one isolate's buffered minute between two
 * flushes) and seals it, as the collector does; only folding and sealing are timed.
 *
 * Two figures per request shape (BENCH_BATCHES rows per request, default "1,100"):
 *   - CPU time (process.cpuUsage) per row and per request: median over BENCH_REPS repetitions.
 *     This moves with other load on a shared machine.
 *   - `--callgrind`: instructions per request and per row counted by valgrind's callgrind, which do
 *     not depend on the machine's load: the script runs itself twice under valgrind, once folding
 *     BENCH_CALLGRIND_CYCLES flush cycles after the same warm-up and once with none, and divides the
 *     difference by the requests folded (startup, warm-up and JIT compilation cancel out).
 *     BENCH_CALLGRIND_BRANCHES=1 adds callgrind's branch simulation and prints mispredicted
 *     conditional branches too: a binary search costs more in mispredictions than in instructions.
 *   - `--workerd`: monitoring's parts in workerd (the runtime that serves it, through Miniflare): a
 *     small worker bundles the same modules and rows with the monitoring Durable Objects, and each
 *     part runs BENCH_WORKERD_CYCLES flush cycles per measure: the fold; the fold then the flush's
 *     MonitorShard.ingest; the prediction-log packing; the packing then PredictionLog.append. The CPU
 *     time of the workerd process (from /proc, Linux; the objects run in it, with their SQLite on
 *     local disk) is divided by the requests. workerd's clock does not advance during CPU work, so
 *     the time is read from outside. These are the parts `bench:monitoring` measures together,
 *     without its HTTP load and its noise. Also the retraining payload archive at sample rate 1
 *     (what `bench:archive` measures): its block per flush, and the block's R2 put (local R2).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import type { FoldTarget } from "../src/monitoring/collector.ts";
import type { ModelVersion } from "../src/registry/store.ts";
import type { PredictionEvent } from "../src/serving/events.ts";
import { parseCsv } from "./lib/csv.ts";
import { predictLogistic, type LogisticParams, type RawRow } from "./lib/predict-reference.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/**
 * The worker's modules, bundled by esbuild (wrangler's bundler, a dependency of wrangler) as
 * wrangler bundles them: src/ imports without extensions and uses TypeScript that Node's type
 * stripping does not run. `cloudflare:workers` (imported by the prediction log's Durable Object,
 * never called by the fold) is a stub.
 */
type Worker = typeof import("../src/monitoring/collector.ts") & typeof import("../src/monitoring/prediction-log.ts") & typeof import("../src/monitoring/aggregate.ts") & typeof import("../src/inference/features.ts") & typeof import("../src/stats/sketch.ts");
async function loadWorkerModules(): Promise<Worker> {
  const out = await build({
    stdin: {
      contents: ['export { foldPrediction, sealTarget } from "./src/monitoring/collector";', 'export { RequestPacker } from "./src/monitoring/prediction-log";', 'export { emptyAggregate } from "./src/monitoring/aggregate";', 'export { rowValidator } from "./src/inference/features";', 'export { DDSketch } from "./src/stats/sketch";'].join("\n"),
      resolveDir: ROOT,
      loader: "ts",
    },
    bundle: true,
    format: "esm",
    platform: "node",
    target: "es2022",
    write: false,
    logLevel: "error",
    plugins: [
      {
        name: "cloudflare-stub",
        setup(b) {
          b.onResolve({ filter: /^cloudflare:/ }, (a) => ({ path: a.path, namespace: "stub" }));
          b.onLoad({ filter: /.*/, namespace: "stub" }, () => ({ contents: "export class DurableObject {}", loader: "js" }));
        },
      },
    ],
  });
  // BENCH_FOLD_BUNDLE=<file.mjs> keeps the bundle there (to read `--cpu-prof` line ticks against it).
  const keep = process.env.BENCH_FOLD_BUNDLE;
  const dir = keep ? null : mkdtempSync(path.join(tmpdir(), "bench-fold-bundle-"));
  const file = keep ? path.resolve(keep) : path.join(dir!, "fold.mjs");
  writeFileSync(file, out.outputFiles[0].text);
  try {
    return await import(pathToFileURL(file).href);
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}
const { foldPrediction, sealTarget, emptyAggregate, rowValidator, DDSketch, RequestPacker } = await loadWorkerModules();
const BATCHES = (process.env.BENCH_BATCHES ?? "1,100").split(",").map(Number);
const REPS = Number(process.env.BENCH_REPS ?? 15);
/** Requests per flush cycle (one target), by rows per request: about 2 s of one isolate's traffic. */
const flushRequests = (n: number) => Number(process.env.BENCH_FLUSH_REQUESTS ?? (n === 1 ? 2000 : 200));
const CYCLES = Number(process.env.BENCH_CYCLES ?? 5);
const WARM_CYCLES = Number(process.env.BENCH_WARM_CYCLES ?? 20);

const manifest = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-lr.manifest.json"), "utf8"));
const params: LogisticParams = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-lr.params.json"), "utf8"));
const version = { modelName: "credit-risk", version: "bench", sha256: "bench", featureSchema: manifest.featureSchema, reference: manifest.reference } as unknown as ModelVersion;
const features: { name: string; type: string }[] = manifest.featureSchema.features;

/** The CSV's rows as callers send them: numbers as numbers, missing cells left out. */
function csvRows(): RawRow[] {
  const { header, rows } = parseCsv(readFileSync(path.join(ROOT, "data/credit_data.csv"), "utf8"));
  return rows.map((cells) => {
    const row: RawRow = {};
    for (const f of features) {
      const cell = cells[header.indexOf(f.name)];
      if (cell === "" || cell === undefined) continue;
      row[f.name] = f.type === "categorical" ? cell : Number(cell);
    }
    return row;
  });
}

/** `count` requests of `n` rows each, taken in order (wrapping) from the CSV, validated and scored as served. */
function requests(all: RawRow[], n: number, count: number): PredictionEvent[] {
  const validator = rowValidator(version.featureSchema);
  const out: PredictionEvent[] = [];
  for (let r = 0; r < count; r++) {
    const rows = Array.from({ length: n }, (_, i) => all[(r * n + i) % all.length]);
    const resolved = validator.resolve(rows, (i) => `instances[${i}]`);
    const scores = new Float32Array(rows.map((row) => predictLogistic(params, row)));
    const labels = new Uint32Array(n);
    for (let i = 0; i < n; i++) labels[i] = scores[i] >= 0.5 ? 1 : 0;
    const columns = { scores, labels, classes: ["0", "1"] };
    out.push({ requestId: `r${r}`, at: 0, route: "v1", dispatch: { version } as PredictionEvent["dispatch"], resolved, rows, predictions: [], columns, latencyMs: 1, inferenceMs: 0.5 });
  }
  return out;
}

/** One flush cycle: every request folded into a fresh target, then sealed (what a flush ships). */
function cycle(events: PredictionEvent[]): FoldTarget {
  const target: FoldTarget = { agg: emptyAggregate(), sketch: new DDSketch(0.01) };
  for (const e of events) foldPrediction(target, e);
  sealTarget(target);
  return target;
}

/** The other isolate-side work per request, for scale: the prediction-log packing of the same flush cycle (add every request, pack once). */
const packer = new RequestPacker();
function packCycle(events: PredictionEvent[]): number {
  for (const e of events) packer.add({ requestId: e.requestId, version: "bench", at: e.at }, e.columns);
  const size = packer.pack().scores.byteLength;
  packer.reset();
  return size;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const all = csvRows();

if (process.env.BENCH_FOLD_CALLGRIND_CHILD) {
  // Child under valgrind: warm up, then fold `cycles` cycles (0 in the baseline run).
  const n = Number(process.env.BENCH_FOLD_CALLGRIND_CHILD);
  const events = requests(all, n, flushRequests(n));
  for (let i = 0; i < WARM_CYCLES; i++) cycle(events);
  const cycles = Number(process.env.BENCH_FOLD_MEASURE_CYCLES);
  let sink = 0;
  for (let i = 0; i < cycles; i++) sink += cycle(events).agg.rows;
  if (sink < 0) console.log(sink);
  process.exit(0);
}

console.log(`\nmonitoring fold (foldPrediction + sealTarget), ${features.length} features (${features.filter((f) => f.type !== "categorical").length} numeric), rows from data/credit_data.csv`);
for (const n of BATCHES) {
  const events = requests(all, n, flushRequests(n));
  for (let i = 0; i < WARM_CYCLES; i++) cycle(events);
  const perRequest: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const t0 = process.cpuUsage();
    for (let i = 0; i < CYCLES; i++) cycle(events);
    const t = process.cpuUsage(t0);
    perRequest.push(((t.user + t.system) * 1000) / (CYCLES * events.length));
  }
  const ns = median(perRequest);
  for (let i = 0; i < WARM_CYCLES; i++) packCycle(events);
  const packPerRequest: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const t0 = process.cpuUsage();
    for (let i = 0; i < CYCLES; i++) packCycle(events);
    const t = process.cpuUsage(t0);
    packPerRequest.push(((t.user + t.system) * 1000) / (CYCLES * events.length));
  }
  console.log(`  ${String(n).padStart(3)} row${n === 1 ? " " : "s"}/request, ${events.length} requests per flush: ${(ns / 1000).toFixed(2).padStart(7)} us cpu/request, ${(ns / n).toFixed(0).padStart(6)} ns cpu/row (median of ${REPS}; range ${(Math.min(...perRequest) / n).toFixed(0)}-${(Math.max(...perRequest) / n).toFixed(0)} ns/row); for scale, log packing ${(median(packPerRequest) / 1000).toFixed(2)} us cpu/request`);
}

if (process.argv.includes("--callgrind")) {
  const measure = Number(process.env.BENCH_CALLGRIND_CYCLES ?? 4);
  console.log(`\ncallgrind instruction counts (load-independent): ${measure} flush cycles after ${WARM_CYCLES} warm-up cycles, minus a run with the same warm-up and none`);
  const dir = mkdtempSync(path.join(tmpdir(), "bench-fold-callgrind-"));
  const self = fileURLToPath(import.meta.url);
  const branches = process.env.BENCH_CALLGRIND_BRANCHES === "1";
  /** Callgrind's totals of a run: instructions (Ir) and, with branch simulation, mispredicted conditional branches (Bcm). */
  const total = (n: number, cycles: number): { ir: number; bcm: number } => {
    const out = path.join(dir, `cg.${n}.${cycles}`);
    execFileSync("valgrind", ["--tool=callgrind", `--callgrind-out-file=${out}`, "--dump-instr=no", "--collect-jumps=no", ...(branches ? ["--branch-sim=yes"] : []), process.execPath, self], {
      env: { ...process.env, BENCH_FOLD_CALLGRIND_CHILD: String(n), BENCH_FOLD_MEASURE_CYCLES: String(cycles) },
      stdio: ["ignore", "ignore", "ignore"],
    });
    const text = readFileSync(out, "utf8");
    const events = /^events:\s+(.+)$/m.exec(text)?.[1].trim().split(/\s+/);
    const m = /^summary:\s+(.+)$/m.exec(text) ?? /^totals:\s+(.+)$/m.exec(text);
    if (!m || !events) throw new Error(`no totals in ${out}: ${readdirSync(dir).join(", ")}`);
    const values = m[1].trim().split(/\s+/).map(Number);
    return { ir: values[events.indexOf("Ir")], bcm: values[events.indexOf("Bcm")] ?? Number.NaN };
  };
  try {
    for (const n of BATCHES) {
      const requestsPerCycle = flushRequests(n);
      const base = total(n, 0);
      const measured = total(n, measure);
      const perRequest = (measured.ir - base.ir) / (measure * requestsPerCycle);
      const mispredicted = branches ? `, ${((measured.bcm - base.bcm) / (measure * requestsPerCycle * n)).toFixed(1)} mispredicted branches/row` : "";
      console.log(`  ${String(n).padStart(3)} row${n === 1 ? " " : "s"}/request: ${Math.round(perRequest).toLocaleString("en-US").padStart(9)} instructions/request, ${Math.round(perRequest / n).toLocaleString("en-US").padStart(7)} instructions/row${mispredicted} (runs: ${base.ir.toLocaleString("en-US")} and ${measured.ir.toLocaleString("en-US")} instructions)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes("--workerd")) {
  const { Miniflare, Log, LogLevel, convertV4MiniflareOptions } = await import("miniflare");
  const { cpuSeconds, descendants, systemCpuSeconds } = await import("./lib/workerd-process.ts");
  const cycles = Number(process.env.BENCH_WORKERD_CYCLES ?? 30);
  // (Also the retraining payload archive's block and put, which run beside monitoring on every prediction when archived.)
  // The rows and scores the Node figures used, embedded in the worker; it validates and folds them as served.
  const data = Object.fromEntries(BATCHES.map((n) => [n, requests(all, n, flushRequests(n)).map((e) => ({ rows: e.rows, scores: Array.from(e.columns.scores) }))]));
  const entry = `
import { v7 } from "uuid";
import { foldPrediction, sealTarget } from "./src/monitoring/collector";
import { RequestPacker } from "./src/monitoring/prediction-log";
import { emptyAggregate } from "./src/monitoring/aggregate";
import { rowValidator } from "./src/inference/features";
import { DDSketch } from "./src/stats/sketch";
import { encodeBlock } from "./src/retraining/archive-block";
export { ModelControl, MonitorShard, PredictionLog } from "./src/monitoring/index";
const DATA = ${JSON.stringify(data)};
const version = ${JSON.stringify({ modelName: version.modelName, version: version.version, sha256: version.sha256, featureSchema: version.featureSchema, reference: version.reference })};
const events = {};
function eventsOf(n) {
  return (events[n] ??= DATA[n].map((q, r) => {
    const scores = Float32Array.from(q.scores);
    const labels = Uint32Array.from(q.scores, (s) => (s >= 0.5 ? 1 : 0));
    return { requestId: "r" + r, at: 0, route: "v1", dispatch: { version }, resolved: rowValidator(version.featureSchema).resolve(q.rows, (i) => "instances[" + i + "]"), rows: q.rows, predictions: [], columns: { scores, labels, classes: ["0", "1"] }, latencyMs: 1, inferenceMs: 0.5 };
  }));
}
let logShard = 0;
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const list = eventsOf(url.searchParams.get("n"));
    const stage = url.searchParams.get("stage");
    for (let c = 0; c < Number(url.searchParams.get("cycles")); c++) {
      const at = Date.now();
      if (stage === "block" || stage === "put") {
        // The payload archive at sample rate 1: a reference to each request's columns, one block per flush, its R2 put.
        const buffered = list.map((e) => ({ id: v7(), at, v: "bench", features: version.featureSchema.features, resolved: e.resolved, scores: e.columns.scores, keep: null }));
        const body = encodeBlock(buffered, []);
        if (stage === "put") await env.ARTIFACTS.put("retraining/archive/bench/" + v7() + ".block", body);
      } else if (stage === "fold" || stage === "ingest") {
        const target = { agg: emptyAggregate(), sketch: new DDSketch(0.01) };
        for (const e of list) {
          e.at = at;
          foldPrediction(target, e);
        }
        sealTarget(target);
        if (stage === "ingest") await env.MONITOR_SHARD.getByName("credit-risk@bench#0").ingest({ id: crypto.randomUUID(), model: "credit-risk", version: "bench", buckets: { [String(Math.floor(at / 60000) * 60000)]: target.agg } });
      } else {
        // Request ids as the worker assigns them (UUIDv7: the log keeps only those).
        const packer = new RequestPacker();
        for (const e of list) packer.add({ requestId: v7(), version: "bench", at }, e.columns);
        const packed = packer.pack();
        if (stage === "append") await env.PREDICTION_LOG.getByName("credit-risk#" + (logShard++ % 4)).append("credit-risk", packed);
      }
    }
    return new Response("ok");
  },
};`;
  const out = await build({ stdin: { contents: entry, resolveDir: ROOT, loader: "js" }, bundle: true, format: "esm", platform: "neutral", mainFields: ["module", "main"], conditions: ["workerd", "worker", "browser"], external: ["cloudflare:*", "node:*"], write: false, logLevel: "error" });
  const before = new Set(descendants(process.pid));
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      name: "fold",
      modules: true,
      script: out.outputFiles[0].text,
      compatibilityDate: "2026-11-01",
      compatibilityFlags: ["nodejs_compat"],
      durableObjects: { MONITOR_SHARD: { className: "MonitorShard", useSQLite: true }, PREDICTION_LOG: { className: "PredictionLog", useSQLite: true }, MODEL_CONTROL: { className: "ModelControl", useSQLite: true } },
      bindings: { MONITORING_ENABLED: "true", PREDICTION_LOG_DAYS: "30" },
      r2Buckets: ["ARTIFACTS"],
      host: "127.0.0.1",
      port: 0,
      cf: false,
      log: new Log(LogLevel.WARN),
    } as never),
  );
  const url = (await mf.ready).href;
  const pid = descendants(process.pid).find((p) => !before.has(p) && readFileSync(`/proc/${p}/cmdline`, "utf8").includes("workerd"));
  if (pid === undefined) throw new Error("could not find the workerd process Miniflare started");
  console.log(`\nin workerd (Miniflare, one process with the Durable Objects, storage on local disk; CPU from /proc), ${cycles} flush cycles per measure:`);
  console.log("  fold: the fold and seal, as above; packing: the prediction-log packing of the same requests (with their UUIDv7 ids)");
  console.log("  + ingest: the fold, then the flush's MonitorShard.ingest; + append: the packing, then the flush's PredictionLog.append");
  console.log("  archive block: the payload archive's buffering and block of the same requests (sample rate 1); + put: then its R2 put");
  const stages = ["fold", "ingest", "pack", "append", "block", "put"] as const;
  try {
    for (const n of BATCHES) {
      const count = flushRequests(n);
      const figures: Record<string, { us: number; kernel: number; range: string }> = {};
      for (const stage of stages) {
        await (await fetch(`${url}?n=${n}&stage=${stage}&cycles=${Math.ceil(WARM_CYCLES / 4)}`)).text();
        const perRequest: number[] = [];
        const kernel: number[] = [];
        for (let rep = 0; rep < Math.min(REPS, 9); rep++) {
          const c0 = cpuSeconds(pid);
          const k0 = systemCpuSeconds(pid);
          await (await fetch(`${url}?n=${n}&stage=${stage}&cycles=${cycles}`)).text();
          perRequest.push(((cpuSeconds(pid) - c0) * 1e6) / (cycles * count));
          kernel.push(((systemCpuSeconds(pid) - k0) * 1e6) / (cycles * count));
        }
        figures[stage] = { us: median(perRequest), kernel: median(kernel), range: `${Math.min(...perRequest).toFixed(1)}-${Math.max(...perRequest).toFixed(1)}` };
      }
      const f = figures;
      const line = (name: string, us: number, note: string) => console.log(`  ${String(n).padStart(3)} row${n === 1 ? " " : "s"}/request, ${name.padEnd(26)} ${us.toFixed(2).padStart(7)} us cpu/request  ${note}`);
      line("fold", f.fold.us, `(median of ${Math.min(REPS, 9)}, range ${f.fold.range})`);
      line("MonitorShard.ingest", f.ingest.us - f.fold.us, `(fold + ingest ${f.ingest.us.toFixed(2)}, kernel ${f.ingest.kernel.toFixed(2)})`);
      line("log packing", f.pack.us, `(range ${f.pack.range})`);
      line("PredictionLog.append", f.append.us - f.pack.us, `(packing + append ${f.append.us.toFixed(2)}, kernel ${f.append.kernel.toFixed(2)})`);
      line("all four", f.ingest.us + f.append.us, `(${count} requests per flush)`);
      line("archive block (rate 1)", f.block.us, `(range ${f.block.range}; one block per flush)`);
      line("archive R2 put (local)", f.put.us - f.block.us, `(block + put ${f.put.us.toFixed(2)}, kernel ${f.put.kernel.toFixed(2)}; Miniflare's R2 in the same process)`);
    }
  } finally {
    await mf.dispose();
  }
}
