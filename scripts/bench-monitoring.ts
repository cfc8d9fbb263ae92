/**
 * `npm run bench:monitoring`: predict throughput with monitoring on vs off, in the same run.
 *
 * Two modes (BENCH_MODE):
 * - "isolate" (default): one server on scratch state (port 8791, or BENCH_PORT) with the demo
 *   models and a byte-identical copy of credit-risk 1.0.0 named credit-risk-unmonitored,
 *   which MONITORING_EXCLUDE_MODELS serves without monitoring. "On" loads POST to
 *   /v1/models/credit-risk/predict, "off" loads to the copy: the same isolate, JIT state and heap
 *   serve both, so the difference is monitoring's work (the fold, packing, flushes, and the Durable
 *   Objects' ingest and log writes, which run in this process locally) and not the difference
 *   between two processes. What it cannot charge to "on": GC time spent tracing memory that
 *   monitoring holds while an "off" load runs.
 * - "servers": two servers side by side, one with MONITORING_ENABLED=true (port 8791, or
 *   BENCH_PORT), one with false (the next port): monitoring's whole footprint, including its memory,
 *   but each round's figure also carries the two processes' difference.
 * Servers run the harness BENCH_HARNESS names (below). BENCH_COMPARE=archive compares the payload
 * archive instead ("isolate" mode): both models monitored, credit-risk archived at sample rate
 * BENCH_ARCHIVE_RATE (default 1) and the copy (credit-risk-unarchived) at 0.
 * autocannon drives one row, and 100-row batches, in short loads alternating sides in ABBA order, so
 * slow drift in the machine's speed (this is a shared VM) hits both sides equally.
 *
 * Rounds: the server (or pair) is started afresh BENCH_ROUNDS times. Two processes running the same
 * code differ by several percent for the whole of their lives (what the JIT chose to optimize, heap
 * layout), which no number of blocks within one pair averages out; so the interval is a cluster
 * bootstrap over rounds (rounds drawn with replacement, then blocks within each), and each round's
 * own figure is printed to show that spread.
 *
 * Harness (BENCH_HARNESS): "bundle" (default) runs the deployable bundle (`wrangler deploy --dry-run`)
 * in workerd through Miniflare with wrangler.toml's bindings, no inspector and request logs off, as
 * bench:compare and bench:stages do (scripts/lib/miniflare-bundle.ts): what deploys, and with the
 * smallest per-request cost to compare monitoring against. "dev" loads `wrangler dev`'s runtime
 * directly (scripts/lib/workerd-process.ts), bypassing its proxy and request logger (those cost more
 * CPU than the worker itself and do not exist when deployed); it has wrangler's inspector attached
 * and logs every request. Where the machine has two or more cores, the runtimes are pinned to one
 * core and this process (the load generator) to another, so the two never compete.
 *
 * Reported, per request shape: throughput on/off and the overhead 1 - on/off; and the runtime's CPU
 * time per request, read from /proc from the start of a load until its last monitoring flush has
 * run (every load, on either server, is followed by a MONITORING_FLUSH_MS + 0.5 s pause counted in
 * its CPU time: a server's post-load work, its last flush or V8's idle-time GC, is charged to that
 * server and never runs during the other server's load), so it includes the Durable
 * Objects' ingest and prediction-log writes, which run in the same workerd process locally (deployed,
 * they run apart from the isolates serving predictions). Each overhead is the median over ABBA
 * blocks of the block's relative difference, with a 95% bootstrap interval; and the CPU per request
 * of the runtime's busiest thread groups (main thread, V8 background GC, ...). Figures are printed,
 * never asserted (target < 3%).
 *
 * BENCH_PAIRS: interleaved request pairs per round for the latency impact ("isolate" mode; default 1000, 0: none);
 * BENCH_MODE: "isolate" (default) or "servers"; BENCH_COMPARE: "monitoring" (default) or "archive"; BENCH_HARNESS: "bundle" (default) or "dev";
 * BENCH_SECONDS per load (default 2: short loads cancel the VM's drift better), BENCH_ROUNDS of fresh
 * server pairs (default 3), BENCH_BLOCKS of ABBA per round (default 4), BENCH_CONNECTIONS (10),
 * BENCH_BATCHES: rows per request, one case each (default "1,100");
 * BENCH_ON_VARS: JSON of extra vars for the monitoring server (to compare settings);
 * BENCH_PORT: the monitoring server's port (default 8791); the other server takes the next one, and
 * when BENCH_PORT is given their inspectors take the two after (so runs on a shared machine can keep
 * to their own ports).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import path from "node:path";
import http from "node:http";
import autocannon from "autocannon";
import { applyMigrations, ensureDevVars, registerDemoModels, registerModel, ROOT, setArchiveSampleRate, startDevServer } from "./lib/dev-server.ts";
import { buildBundle, startWorker } from "./lib/miniflare-bundle.ts";
import { clusterBootstrapMedian, median, quantileSorted } from "./lib/quantiles.ts";
import { cpuSeconds, pin, runtimeOf, systemCpuSeconds, threadCpuSeconds, type RuntimeProcess } from "./lib/workerd-process.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BLOCKS = Number(process.env.BENCH_BLOCKS ?? 4);
const BATCHES = (process.env.BENCH_BATCHES ?? "1,100").split(",").map(Number);
const ON_VARS: Record<string, string> = JSON.parse(process.env.BENCH_ON_VARS ?? "{}");
const SETTLE_MS = Number(ON_VARS.MONITORING_FLUSH_MS ?? 2000) + 500;
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const PAIRS = Number(process.env.BENCH_PAIRS ?? 1000);
const PORT = Number(process.env.BENCH_PORT ?? 8791);
const PORTS = { on: PORT, off: PORT + 1 };
const MODE = process.env.BENCH_MODE ?? "isolate";
const HARNESS = process.env.BENCH_HARNESS ?? "bundle";
if (HARNESS !== "bundle" && HARNESS !== "dev") throw new Error(`BENCH_HARNESS must be "bundle" or "dev", not ${JSON.stringify(HARNESS)}`);
const BUNDLE_ADMIN = "bench-admin-token";
if (MODE !== "isolate" && MODE !== "servers") throw new Error(`BENCH_MODE must be "isolate" or "servers", not ${JSON.stringify(MODE)}`);
/**
 * What "on" adds (BENCH_COMPARE): "monitoring" (default), or "archive": both models monitored, the
 * retraining payload archive at sample rate ARCHIVE_RATE for credit-risk and 0 for the copy (issue 16's
 * measure in this harness; "isolate" mode only).
 */
const COMPARE = process.env.BENCH_COMPARE ?? "monitoring";
/**
 * Where the monitoring Durable Objects run (BENCH_OBJECTS): "together" (default), in the serving
 * runtime's process as `wrangler dev` runs them; or "apart": MonitorShard, PredictionLog and
 * ModelControl in a second workerd process (the same bundle under another name, reached through
 * Miniflare's dev registry), pinned to the load generator's core, as deployed objects run apart
 * from the isolates serving predictions. Then the serving runtime's CPU is what the serving side
 * pays (its fold, packing and the flush RPCs' serialization and sends), and the objects' process
 * CPU is reported beside it. "isolate" mode and the "bundle" harness only.
 */
const OBJECTS = process.env.BENCH_OBJECTS ?? "together";
/** BENCH_COMPARE=archive: credit-risk's archive sample rate (default 1: every row). */
const ARCHIVE_RATE = Number(process.env.BENCH_ARCHIVE_RATE ?? 1);
if (!(ARCHIVE_RATE > 0 && ARCHIVE_RATE <= 1)) throw new Error(`BENCH_ARCHIVE_RATE must be in (0, 1], not ${process.env.BENCH_ARCHIVE_RATE}`);
if (OBJECTS !== "together" && OBJECTS !== "apart") throw new Error(`BENCH_OBJECTS must be "together" or "apart", not ${JSON.stringify(OBJECTS)}`);
if (OBJECTS === "apart" && (MODE !== "isolate" || HARNESS !== "bundle")) throw new Error("BENCH_OBJECTS=apart runs in BENCH_MODE=isolate with BENCH_HARNESS=bundle");
const OBJECTS_SCRIPT = "edge-ml-monitoring-objects";
const APART_BINDINGS = ["MONITOR_SHARD", "PREDICTION_LOG", "MODEL_CONTROL"];
if (COMPARE !== "monitoring" && COMPARE !== "archive") throw new Error(`BENCH_COMPARE must be "monitoring" or "archive", not ${JSON.stringify(COMPARE)}`);
if (COMPARE === "archive" && MODE !== "isolate") throw new Error('BENCH_COMPARE=archive runs in BENCH_MODE=isolate (two servers: npm run bench:archive)');
/** The copy of credit-risk 1.0.0 in "isolate" mode: unmonitored, or (archive) archived at rate 0. */
const UNMONITORED = COMPARE === "archive" ? "credit-risk-unarchived" : "credit-risk-unmonitored";
const MODELS = { on: "credit-risk", off: MODE === "isolate" ? UNMONITORED : "credit-risk" };
/** Inspector ports only when the caller chose ports (wrangler's default otherwise). */
const inspectorArgs = (mode: "on" | "off") => (process.env.BENCH_PORT ? ["--inspector-port", String(PORT + (mode === "on" ? 2 : 3))] : []);

const holdout = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-holdout.json"), "utf8"));
const rows: Record<string, unknown>[] = holdout.rows.map((r: { features: Record<string, unknown> }) => r.features);

/** CPU seconds by thread group and requests served, per server, summed over a case's loads. */
type ThreadUse = { cpu: Map<string, number>; requests: number; afterLoad: number; system: number; objects: number };
const emptyUse = (): ThreadUse => ({ cpu: new Map(), requests: 0, afterLoad: 0, system: 0, objects: 0 });

/** The serving runtime, and (BENCH_OBJECTS=apart) the process running the monitoring Durable Objects. */
type Runtime = RuntimeProcess & { objectsPid?: number };

/**
 * One load: throughput, and the runtime's CPU time per request from the start of the load until
 * `settleMs` after it (long enough for the load's last monitoring flush to run).
 */
async function load(rt: Runtime, model: string, body: unknown, settleMs: number, use: ThreadUse): Promise<{ rps: number; cpuUs: number; errors: number }> {
  const objects0 = rt.objectsPid ? cpuSeconds(rt.objectsPid) : 0;
  const threads0 = threadCpuSeconds(rt.pid);
  const cpu0 = cpuSeconds(rt.pid);
  const system0 = systemCpuSeconds(rt.pid);
  const r = await autocannon({ url: `${rt.url}/v1/models/${model}/predict`, connections: CONNECTIONS, duration: SECONDS, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const loaded = cpuSeconds(rt.pid);
  if (settleMs) await new Promise((resolve) => setTimeout(resolve, settleMs));
  use.afterLoad += cpuSeconds(rt.pid) - loaded;
  for (const [name, seconds] of threadCpuSeconds(rt.pid)) use.cpu.set(name, (use.cpu.get(name) ?? 0) + seconds - (threads0.get(name) ?? 0));
  use.requests += r.requests.total;
  use.system += systemCpuSeconds(rt.pid) - system0;
  if (rt.objectsPid) use.objects += cpuSeconds(rt.objectsPid) - objects0;
  return { rps: r.requests.average, cpuUs: ((cpuSeconds(rt.pid) - cpu0) * 1e6) / r.requests.total, errors: r.errors + r.timeouts + r.non2xx };
}

/** One POST on a kept-alive connection: its latency in µs, from writing the request to the response's last byte. */
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function timedPost(url: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(url, { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
      res.on("data", () => {});
      res.on("end", () => (res.statusCode === 200 ? resolve((performance.now() - t0) * 1000) : reject(new Error(`${url}: status ${res.statusCode}`))));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * Latency impact ("isolate" mode): PAIRS pairs of one monitored and one unmonitored request, back to
 * back on one connection, in alternating order. The two requests of a pair are a millisecond apart,
 * so the machine's speed, which drifts by tens of percent over seconds on a shared VM, is the same for
 * both, and the paired difference is what monitoring adds to a request's latency (its synchronous
 * part: the fold and log packing run before the response is written). Flushes run in idle time between
 * requests or delay whichever request they meet.
 */
async function pairedLatency(url: string, body: string): Promise<{ on: number[]; off: number[] }> {
  const on: number[] = [];
  const off: number[] = [];
  for (let i = 0; i < PAIRS; i++) {
    if (i % 2 === 0) {
      on.push(await timedPost(`${url}/v1/models/${MODELS.on}/predict`, body));
      off.push(await timedPost(`${url}/v1/models/${MODELS.off}/predict`, body));
    } else {
      off.push(await timedPost(`${url}/v1/models/${MODELS.off}/predict`, body));
      on.push(await timedPost(`${url}/v1/models/${MODELS.on}/predict`, body));
    }
  }
  return { on, off };
}

/** Vars of the "on" or "off" side's runtime (one runtime serves both in "isolate" mode). */
const monitoringVars = (mode: "on" | "off"): Record<string, string> => ({
  ...(MODE === "isolate" ? { MONITORING_ENABLED: "true", MONITORING_EXCLUDE_MODELS: COMPARE === "archive" ? "" : UNMONITORED } : { MONITORING_ENABLED: mode === "on" ? "true" : "false" }),
  RATE_LIMITS_ENABLED: "false",
  ...(mode === "on" ? ON_VARS : {}),
});

/** The demo models, and in "isolate" mode the unmonitored copy of credit-risk 1.0.0. */
async function registerModels(url: string, adminToken: string): Promise<void> {
  await registerDemoModels(url, adminToken);
  if (MODE !== "isolate") return;
  const manifest = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-lr.manifest.json"), "utf8"));
  await registerModel(url, adminToken, JSON.stringify({ ...manifest, name: UNMONITORED }), readFileSync(path.join(ROOT, "models/credit-risk-lr.onnx")), ["champion"]);
  if (COMPARE !== "archive") return;
  await setArchiveSampleRate(url, adminToken, "credit-risk", ARCHIVE_RATE);
  await setArchiveSampleRate(url, adminToken, UNMONITORED, 0);
}

/** One side's runtime, started on scratch state with the models registered. */
async function runtime(mode: "on" | "off", port: number, dirs: string[], stops: (() => Promise<void>)[]): Promise<Runtime> {
  const persistTo = mkdtempSync(path.join(tmpdir(), `edge-ml-bench-monitoring-${mode}-`));
  dirs.push(persistTo);
  if (HARNESS === "bundle") {
    const vars = { ADMIN_TOKEN: BUNDLE_ADMIN, API_KEYS: "bench-key", METRICS_TOKEN: "", REQUEST_LOGS: "false", ...monitoringVars(mode) };
    let apart: { objectsPid: number; devRegistry: string } | undefined;
    if (OBJECTS === "apart") {
      const devRegistry = path.join(persistTo, "dev-registry");
      // The objects' own state lives beside the serving runtime's, under the same scratch directory.
      const objects = await startWorker({ bundleDir: bundleDir!, port: port + 10, persistTo: path.join(persistTo, "objects"), vars, name: OBJECTS_SCRIPT, devRegistry });
      stops.push(() => objects.stop());
      apart = { objectsPid: objects.pid, devRegistry };
    }
    const w = await startWorker({ bundleDir: bundleDir!, port, persistTo, vars, ...(apart ? { objectsApart: { devRegistry: apart.devRegistry, script: OBJECTS_SCRIPT, bindings: APART_BINDINGS } } : {}) });
    stops.unshift(() => w.stop()); // stopped before the objects it calls
    await registerModels(w.url, BUNDLE_ADMIN);
    return { pid: w.pid, url: w.url, objectsPid: apart?.objectsPid };
  }
  applyMigrations(persistTo);
  const s = await startDevServer({ port, persistTo, quiet: true, extraArgs: inspectorArgs(mode), vars: monitoringVars(mode) });
  stops.push(() => s.stop());
  await registerModels(s.url, devVars.ADMIN_TOKEN);
  return runtimeOf(s, port);
}

type Pair = { on: number; off: number };
/**
 * Overhead as the median over ABBA blocks of each block's relative difference (robust to a block
 * that a VM hiccup hit on one side only), with a 95% cluster-bootstrap interval of that median:
 * rounds (server pairs) drawn with replacement, then blocks within each drawn round.
 */
function overhead(rounds: Pair[][], diff: (b: Pair) => number) {
  const { perGroup, ...interval } = clusterBootstrapMedian(rounds.map((blocks) => blocks.map(diff)));
  return { ...interval, perRound: perGroup };
}

const mean = (bs: Pair[], k: keyof Pair) => bs.reduce((s, b) => s + b[k], 0) / bs.length;
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

const devVars = ensureDevVars();
// Read before this process pins itself: availableParallelism() follows the CPU affinity, which
// children (the next round's servers) inherit until they are pinned themselves.
const CORES = availableParallelism();
const cases = BATCHES.map((n) => ({ name: `predict ${n} row${n === 1 ? "" : "s"}`, body: n === 1 ? { features: rows[0] } : { instances: rows.slice(0, n) } }));
type CaseResult = { throughput: Pair[][]; cpu: Pair[][]; errors: number; use: Record<"on" | "off", ThreadUse>; latency: { on: number[]; off: number[] }[] };
const results: CaseResult[] = cases.map(() => ({ throughput: [], cpu: [], errors: 0, use: { on: emptyUse(), off: emptyUse() }, latency: [] }));
let monitored = "n/a";
/** The deployable bundle ("bundle" harness), built once for every round. */
const bundleDir = HARNESS === "bundle" ? mkdtempSync(path.join(tmpdir(), "edge-ml-bench-monitoring-bundle-")) : undefined;
if (bundleDir) buildBundle(bundleDir);
console.log(`\n${COMPARE} on vs off${OBJECTS === "apart" ? " (monitoring Durable Objects in their own process)" : ""} (${MODE === "isolate" ? (COMPARE === "archive" ? `one runtime: credit-risk archived at sample rate ${ARCHIVE_RATE} vs ${UNMONITORED} at 0, both monitored` : `one runtime: credit-risk monitored vs ${UNMONITORED} excluded`) : "two runtimes"}; ${HARNESS === "bundle" ? "the deployable bundle in workerd, request logs off" : "wrangler dev's runtime"}): ${ROUNDS} rounds of fresh servers x ${BLOCKS} ABBA blocks of ${SECONDS} s loads, ${CONNECTIONS} connections${Object.keys(ON_VARS).length ? `, monitoring server vars ${JSON.stringify(ON_VARS)}` : ""}`);
for (let round = 0; round < ROUNDS; round++) {
  const dirs: string[] = [];
  const stops: (() => Promise<void>)[] = [];
  try {
    const onRuntime = await runtime("on", PORTS.on, dirs, stops);
    const rt = { on: onRuntime, off: MODE === "isolate" ? onRuntime : await runtime("off", PORTS.off, dirs, stops) };
    const pinned = CORES >= 2 && pin(rt.on.pid, 1) && pin(rt.off.pid, 1) && pin(process.pid, 0) && (!rt.on.objectsPid || pin(rt.on.objectsPid, 0));
    console.log(
      `round ${round + 1}: ${MODE === "isolate" ? "server" : "servers"} started (${pinned ? `runtime pinned to cpu 1, load generator${rt.on.objectsPid ? " and the Durable Objects' process" : ""} to cpu 0` : "not pinned"})`,
    );
    // Warm-up: the JIT's first minutes are not what a long-running isolate serves with.
    for (const side of ["on", "off"] as const) for (let i = 0; i < 50; i++) await fetch(`${rt[side].url}/v1/models/${MODELS[side]}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ features: rows[i] }) });
    for (const c of cases) for (const side of ["on", "off"] as const) await load(rt[side], MODELS[side], c.body, 0, emptyUse());
    for (const [i, c] of cases.entries()) {
      const res = results[i];
      const throughput: Pair[] = [];
      const cpu: Pair[] = [];
      for (let b = 0; b < BLOCKS; b++) {
        // on, off, off, on. Each load is followed by the same pause, counted in that server's CPU
        // time: the "on" server's last flush and either server's post-load work (V8 shrinks its heap
        // once a load stops) run before the next load and are charged to the server that caused them.
        // Pausing after "on" loads only charged "off"'s leftover work to "on"'s next load.
        const t = { on: 0, off: 0 };
        const u = { on: 0, off: 0 };
        for (const side of ["on", "off", "off", "on"] as const) {
          const r = await load(rt[side], MODELS[side], c.body, SETTLE_MS, res.use[side]);
          t[side] += r.rps / 2;
          u[side] += r.cpuUs / 2;
          res.errors += r.errors;
        }
        throughput.push(t);
        cpu.push(u);
        console.log(`  ${c.name.padEnd(17)} round ${round + 1} block ${String(b + 1).padStart(2)}: on ${t.on.toFixed(0).padStart(5)} req/s ${u.on.toFixed(0).padStart(5)} us cpu/req, off ${t.off.toFixed(0).padStart(5)} req/s ${u.off.toFixed(0).padStart(5)} us cpu/req`);
      }
      res.throughput.push(throughput);
      res.cpu.push(cpu);
      if (MODE === "isolate" && PAIRS > 0) {
        res.latency.push(await pairedLatency(rt.on.url, JSON.stringify(c.body)));
        await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      }
    }
    const m = await fetch(`${rt.on.url}/metrics`).then((r) => r.text());
    monitored = /edge_ml_model_requests_total\{[^}]*version="1.0.0"[^}]*\} (\d+)/.exec(m)?.[1] ?? "n/a";
  } finally {
    for (const stop of stops) await stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}
for (const [i, c] of cases.entries()) {
  const { throughput, cpu, errors, use } = results[i];
  const o = overhead(throughput, (b) => 1 - b.on / b.off);
  const k = overhead(cpu, (b) => b.on / b.off - 1);
  console.log(
    `${c.name.padEnd(17)} throughput on ${mean(throughput.flat(), "on").toFixed(0)} vs off ${mean(throughput.flat(), "off").toFixed(0)} req/s: overhead ${pct(o.point)} (95% CI ${pct(o.lo)} .. ${pct(o.hi)}; target < 3%)\n` +
      `${"".padEnd(17)} by round: ${o.perRound.map(pct).join(", ")}\n` +
      `${"".padEnd(17)} cpu/request on ${mean(cpu.flat(), "on").toFixed(0)} vs off ${mean(cpu.flat(), "off").toFixed(0)} us: overhead ${pct(k.point)} (95% CI ${pct(k.lo)} .. ${pct(k.hi)}); by round: ${k.perRound.map(pct).join(", ")}; errors ${errors}`,
  );
  const perRequest = (u: ThreadUse, name: string) => (((u.cpu.get(name) ?? 0) * 1e6) / u.requests).toFixed(1);
  const names = [...use.on.cpu.keys()].sort((a, b) => (use.on.cpu.get(b) ?? 0) - (use.on.cpu.get(a) ?? 0)).slice(0, 4);
  console.log(`${"".padEnd(17)} cpu/request by thread, on vs off: ${names.map((n) => `${n} ${perRequest(use.on, n)} vs ${perRequest(use.off, n)} us`).join("; ")}`);
  const after = (u: ThreadUse) => ((u.afterLoad * 1e6) / u.requests).toFixed(1);
  console.log(`${"".padEnd(17)} of which after the load ended (last flush, GC), per request: on ${after(use.on)} vs off ${after(use.off)} us`);
  const system = (u: ThreadUse) => ((u.system * 1e6) / u.requests).toFixed(1);
  console.log(`${"".padEnd(17)} of which kernel time (syscalls: sockets, local storage writes), per request: on ${system(use.on)} vs off ${system(use.off)} us`);
  if (OBJECTS === "apart") {
    const objects = (u: ThreadUse) => ((u.objects * 1e6) / u.requests).toFixed(1);
    console.log(`${"".padEnd(17)} the monitoring Durable Objects' own process (apart; not in the figures above), cpu per request: on ${objects(use.on)} vs off ${objects(use.off)} us`);
  }
  if (results[i].latency.length) {
    const { latency } = results[i];
    const offMedian = median(latency.flatMap((l) => l.off));
    const diffs = latency.map((l) => l.on.map((x, k) => x - l.off[k]));
    const d = clusterBootstrapMedian(diffs);
    // The mean counts what the median does not: the requests that fold a held batch. Pairs with a
    // request above the 99th percentile of all latencies here (VM pauses of 5-100 ms on this machine,
    // GC pauses, a flush's Durable Object writes running in this process) are left out: such a
    // pause falls on either side and swamps the mean; the flush's work is measured by bench:fold.
    const ons = latency.flatMap((l) => l.on);
    const offs = latency.flatMap((l) => l.off);
    const cut = quantileSorted([...ons, ...offs].sort((a, b) => a - b), 0.99);
    const kept = ons.map((x, k) => [x, offs[k]]).filter(([a, b]) => a <= cut && b <= cut);
    const meanDiff = kept.reduce((sum, [a, b]) => sum + a - b, 0) / kept.length;
    const us = (x: number) => `${x.toFixed(1)} us`;
    console.log(
      `${"".padEnd(17)} latency, ${PAIRS} interleaved pairs per round on one connection: median off ${us(offMedian)}, on ${us(median(latency.flatMap((l) => l.on)))}; ` +
        `paired difference: median ${us(d.point)} (95% CI ${us(d.lo)} .. ${us(d.hi)}; by round ${d.perGroup.map(us).join(", ")}): ${pct(d.point / offMedian)} of the request; mean ${us(meanDiff)} (${pct(meanDiff / offMedian)}; ${ons.length - kept.length} of ${ons.length} pairs with a request above ${us(cut)} left out)`,
    );
    const tail = (xs: number[]) => {
      const sorted = [...xs].sort((a, b) => a - b);
      return [0.9, 0.99, 0.999].map((q) => us(quantileSorted(sorted, q))).join(" / ") + ` / max ${us(sorted[sorted.length - 1])}`;
    };
    console.log(`${"".padEnd(17)} latency p90 / p99 / p99.9: on ${tail(latency.flatMap((l) => l.on))}; off ${tail(latency.flatMap((l) => l.off))}`);
  }
}
console.log(`monitored requests in the last round (fleet counter on the monitoring server): ${monitored}`);
if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
