/**
 * `npm run profile`: where the worker's CPU goes under load, by source file and by function, from
 * V8's sampling profiler: the deployable bundle (`wrangler deploy --dry-run`) runs in workerd through
 * Miniflare with wrangler.toml's bindings (scripts/lib/miniflare-bundle.ts, as bench:compare and
 * bench:stages run it), the demo models are registered, and a load of predictions runs while the
 * profiler samples every V8 isolate the process has (the worker's and each Durable Object's).
 * Samples are attributed to the source file esbuild's `// src/...` markers name in the bundle, so
 * "src/monitoring/collector.ts" is monitoring's fold and "node_modules/hono/..." the router.
 *
 * What it is for: finding which stage to make cheaper. What it is not: a measurement of cost (the
 * sampler adds overhead to every JavaScript call, so short functions read high; bench:stages
 * measures a stage's cost by removing it). Native time (workerd's C++, V8 builtins) is attributed
 * to the JavaScript that called it; WebAssembly (onnxruntime) shows as wasm-function[N].
 *
 * Knobs: BENCH_ROWS (1: a `features` body; more: `instances` of that many holdout rows),
 * BENCH_SECONDS (5), BENCH_CONNECTIONS (10), BENCH_PORT (8860; the inspector uses BENCH_PORT + 1),
 * PROFILE_VARS (extra vars as JSON, e.g. '{"MONITORING_ENABLED":"false"}'), PROFILE_ARCHIVE (a sample
 * rate: the retraining payload archive of credit-risk at that rate; none by default), PROFILE_TOP (30),
 * PROFILE_OUT (a directory to keep the .cpuprofile files in, for Chrome DevTools), PROFILE_WINDOW
 * ("load": the load and the 2.5 s after it, default; "after": only the 2.5 s after the load, where
 * the last monitoring flush and V8's post-load garbage collection run).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { registerDemoModels, ROOT, setArchiveSampleRate } from "./lib/dev-server.ts";
import { buildBundle, startWorker } from "./lib/miniflare-bundle.ts";

const ROWS = Number(process.env.BENCH_ROWS ?? 1);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const PORT = Number(process.env.BENCH_PORT ?? 8860);
const TOP = Number(process.env.PROFILE_TOP ?? 30);
const WINDOW = process.env.PROFILE_WINDOW ?? "load";
if (WINDOW !== "load" && WINDOW !== "after") throw new Error(`PROFILE_WINDOW must be "load" or "after", not ${JSON.stringify(WINDOW)}`);
const ADMIN = "profile-admin-token";

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface Profile { nodes: { id: number; callFrame: CallFrame }[]; samples: number[] }

/** A CDP session over the inspector's WebSocket (Node 22+'s global WebSocket). */
async function connect(url: string) {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve());
    ws.addEventListener("error", () => reject(new Error(`inspector ${url}: could not connect`)));
  });
  let next = 0;
  const waiting = new Map<number, (result: unknown) => void>();
  ws.addEventListener("message", (m) => {
    const d = JSON.parse(String(m.data)) as { id?: number; result?: unknown; error?: unknown };
    if (d.id !== undefined) waiting.get(d.id)?.(d.result ?? d.error);
  });
  const call = <T = unknown>(method: string, params: Record<string, unknown> = {}) =>
    new Promise<T>((resolve) => {
      const id = ++next;
      waiting.set(id, resolve as (r: unknown) => void);
      ws.send(JSON.stringify({ id, method, params }));
    });
  return { call, close: () => ws.close() };
}

/** Bundle line -> the source file esbuild's `// path` marker above it names. */
function sourceMap(bundle: string): (line: number) => string {
  const starts: { line: number; file: string }[] = [];
  bundle.split("\n").forEach((text, i) => {
    const m = /^\/\/ ((?:src|node_modules)\/\S+)$/.exec(text);
    if (m) starts.push({ line: i, file: m[1].replace(/^node_modules\/((?:@[^/]+\/)?[^/]+)\/.*$/, "node_modules/$1") });
  });
  return (line) => {
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid].line <= line) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? "(bundle prelude)" : starts[lo - 1].file;
  };
}

const out = mkdtempSync(path.join(tmpdir(), "edge-ml-profile-"));
process.env.BENCH_INSPECTOR_PORT = String(PORT + 1);
buildBundle(out);
const fileOf = sourceMap(readFileSync(path.join(out, "index.js"), "utf8"));
const extra = process.env.PROFILE_VARS ? (JSON.parse(process.env.PROFILE_VARS) as Record<string, string>) : {};
const worker = await startWorker({ bundleDir: out, port: PORT, vars: { ADMIN_TOKEN: ADMIN, API_KEYS: "profile-key", METRICS_TOKEN: "", RATE_LIMITS_ENABLED: "false", MONITORING_ENABLED: "true", REQUEST_LOGS: "false", ...extra }, persistTo: path.join(out, "state") });
try {
  await registerDemoModels(worker.url, ADMIN);
  if (process.env.PROFILE_ARCHIVE) await setArchiveSampleRate(worker.url, ADMIN, "credit-risk", Number(process.env.PROFILE_ARCHIVE));
  const holdout = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-holdout.json"), "utf8")) as { rows: { features: unknown }[] };
  if (ROWS > holdout.rows.length) throw new Error(`BENCH_ROWS ${ROWS}: the holdout has ${holdout.rows.length} rows`);
  const body = ROWS === 1 ? JSON.stringify({ version: "1.1.0", features: holdout.rows[0].features }) : JSON.stringify({ version: "1.1.0", instances: holdout.rows.slice(0, ROWS).map((r) => r.features) });
  const load = (seconds: number) => autocannon({ url: `${worker.url}/v1/models/credit-risk/predict`, connections: CONNECTIONS, duration: seconds, method: "POST", headers: { "content-type": "application/json" }, body });
  await load(2); // warm: sessions loaded, Durable Objects created, JIT settled
  await new Promise((r) => setTimeout(r, 2500)); // the warm-up's last monitoring flush
  const targets = (await (await fetch(`http://127.0.0.1:${PORT + 1}/json`)).json()) as { title?: string; webSocketDebuggerUrl: string }[];
  const sessions = await Promise.all(targets.map(async (t) => ({ title: t.title ?? "?", s: await connect(t.webSocketDebuggerUrl) })));
  const start = async () => {
    for (const { s } of sessions) {
      await s.call("Profiler.enable");
      await s.call("Profiler.setSamplingInterval", { interval: 100 });
      await s.call("Profiler.start");
    }
  };
  if (WINDOW === "load") await start();
  const r = await load(SECONDS);
  if (WINDOW === "after") await start();
  await new Promise((res) => setTimeout(res, 2500)); // take in the load's last monitoring flush
  const byIsolate = new Map<string, number>();
  const bySource = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let total = 0;
  for (const { title, s } of sessions) {
    const { profile } = await s.call<{ profile: Profile }>("Profiler.stop");
    s.close();
    if (process.env.PROFILE_OUT) writeFileSync(path.join(process.env.PROFILE_OUT, `${title.replace(/\W+/g, "_")}.cpuprofile`), JSON.stringify(profile));
    const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
    for (const id of profile.samples) {
      const f = frames.get(id)!;
      if (f.functionName === "(idle)") continue;
      const source = f.url.endsWith("index.js") ? fileOf(f.lineNumber) : f.url.includes("wasm") || f.functionName.startsWith("wasm") ? "(onnxruntime WebAssembly)" : `(${f.functionName || "native"})`;
      const key = `${f.functionName || "(anonymous)"}  ${source}${f.url.endsWith("index.js") ? `:${f.lineNumber + 1}` : ""}`;
      bySource.set(source, (bySource.get(source) ?? 0) + 1);
      byIsolate.set(title, (byIsolate.get(title) ?? 0) + 1);
      byFunction.set(key, (byFunction.get(key) ?? 0) + 1);
      total++;
    }
  }
  const pct = (n: number) => `${((100 * n) / total).toFixed(1).padStart(5)}%`;
  console.log(`\n${r.requests.total} requests of ${ROWS} row(s) in ${SECONDS} s; ${total} busy samples (${WINDOW === "after" ? "after the load" : "during and after the load"}; ${((total * 100) / r.requests.total).toFixed(1)} us per request) over ${sessions.length} isolates\n\nby source file:`);
  for (const [k, n] of [...bySource].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${pct(n)}  ${k}`);
  // Isolates: the worker's, and one per Durable Object instance (what runs apart from the serving isolates when deployed).
  console.log("\nby isolate (busy samples per request, µs):");
  for (const [k, n] of [...byIsolate].sort((a, b) => b[1] - a[1]).slice(0, 8)) console.log(`${pct(n)}  ${((n * 100) / r.requests.total).toFixed(1).padStart(7)} µs  ${k}`);
  console.log("\nby function (self time):");
  for (const [k, n] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${pct(n)}  ${k}`);
} finally {
  await worker.stop();
  rmSync(out, { recursive: true, force: true });
}
