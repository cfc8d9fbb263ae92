/**
 * `npm run soak`: memory of the worker's isolate under a long mixed load, printed over time (never
 * asserted; the Workers limit is 128 MB an isolate).
 *
 * Starts `wrangler dev` on a scratch state directory with the V8 inspector open, registers the demo
 * models, then for SOAK_SECONDS (default 180) drives SOAK_CONNECTIONS (default 6) clients with what
 * production and a fuzzer send: single rows and 100/1,000-row batches on /v1 and /v2, bodies nested
 * thousands deep, malformed JSON, unknown models and fields, feedback for unknown models, reused
 * client request ids, and every few seconds a registration (each builds and releases a session).
 *
 * Every SOAK_SAMPLE_SECONDS (default 10) it prints, for the isolate that runs the worker:
 *  - js_used / js_total: V8 heap used and reserved (Runtime.getHeapUsage through the inspector);
 *  - wasm: onnxruntime's WASM linear memory (edge_ml_wasm_memory_bytes at /metrics), which lives
 *    outside the JS heap, grows with the largest session or tensor ever held, and never shrinks;
 *  - sessions: ONNX sessions cached, and the artifact bytes they hold;
 *  - rss: the whole workerd runtime process (all isolates, Durable Objects, SQLite caches).
 * and at the end the growth of each over the second half of the run, when a leak would show.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { applyMigrations, ensureDevVars, registerDemoModels, ROOT, startDevServer } from "./lib/dev-server.ts";
import { runtimeOf } from "./lib/workerd-process.ts";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 180);
const CONNECTIONS = Number(process.env.SOAK_CONNECTIONS ?? 6);
const SAMPLE_SECONDS = Number(process.env.SOAK_SAMPLE_SECONDS ?? 10);
const PORT = Number(process.env.SOAK_PORT ?? 8804);
const INSPECTOR_PORT = Number(process.env.SOAK_INSPECTOR_PORT ?? PORT + 500);
const MB = 1024 * 1024;

const manifestText = readFileSync(path.join(ROOT, "models/credit-risk-lr.manifest.json"), "utf8");
const artifact = readFileSync(path.join(ROOT, "models/credit-risk-lr.onnx"));
const rows: Record<string, unknown>[] = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-holdout.json"), "utf8")).rows.map((r: { features: Record<string, unknown> }) => r.features);
const columns = (JSON.parse(manifestText).featureSchema.input.columns as { feature: string; oneHot?: string }[]);

const pick = <T>(list: T[]) => list[Math.floor(Math.random() * list.length)];
const batch = (n: number) => Array.from({ length: n }, () => pick(rows));
const dense = (row: Record<string, unknown>) => columns.map((c) => (c.oneHot ? (row[c.feature] === c.oneHot ? 1 : 0) : Number(row[c.feature] ?? 0)));
function nested(depth: number): string {
  return "[".repeat(depth) + "0" + "]".repeat(depth);
}

/** One request of the mix: [path, body text, extra headers]. */
function nextRequest(): [string, string, Record<string, string>] {
  const r = Math.random();
  const predict = "/v1/models/credit-risk/predict";
  if (r < 0.3) return [predict, JSON.stringify({ features: pick(rows) }), { "x-request-id": `client-${Math.floor(Math.random() * 50)}` }];
  if (r < 0.42) return [predict, JSON.stringify({ instances: batch(100) }), {}];
  if (r < 0.45) return [predict, JSON.stringify({ instances: batch(1000) }), {}];
  if (r < 0.55) {
    const n = Math.random() < 0.2 ? 500 : 4;
    const data = batch(n).map(dense);
    return ["/v2/models/credit-risk/infer", JSON.stringify({ inputs: [{ name: "float_input", shape: [n, columns.length], datatype: "FP32", data }] }), {}];
  }
  if (r < 0.62) return ["/v2/models/credit-risk/infer", `{"inputs":[{"name":"float_input","shape":[1,26],"datatype":"FP32","data":${nested(2000 + Math.floor(Math.random() * 9000))}}]}`, {}];
  if (r < 0.7) return [predict, `{"features": {"Age": ${"x".repeat(Math.floor(Math.random() * 100))}`, {}];
  if (r < 0.78) return [`/v1/models/m-${Math.random().toString(36).slice(2, 10)}/predict`, JSON.stringify({ features: pick(rows) }), {}];
  if (r < 0.84) return ["/v1/feedback", JSON.stringify({ model: `ghost-${Math.random().toString(36).slice(2, 8)}`, feedback: [{ request_id: "r", actual: 1 }] }), {}];
  if (r < 0.92) return [predict, JSON.stringify({ features: { ...pick(rows), [`f${Math.random()}`]: "junk", Age: Math.random() < 0.5 ? -3 : "old" } }), {}];
  return [predict, JSON.stringify({ instances: [pick(rows), { ...pick(rows), Income: Number.MAX_VALUE }] }), { "x-request-id": "shared" }];
}

/** Runtime.getHeapUsage of the worker's isolate through the inspector wrangler opens. */
class Inspector {
  private ws!: WebSocket;
  private nextId = 1;
  private waiting = new Map<number, (result: unknown) => void>();
  async connect(port: number) {
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json`)).json()) as { webSocketDebuggerUrl: string }[];
    const target = targets[0];
    // wrangler's inspector proxy wants an Origin header (Node's WebSocket takes headers as an extension).
    const Socket = WebSocket as unknown as new (url: string, init: { headers: Record<string, string> }) => WebSocket;
    this.ws = new Socket(target.webSocketDebuggerUrl, { headers: { origin: `http://127.0.0.1:${port}` } });
    await new Promise((resolve, reject) => {
      this.ws.addEventListener("open", resolve);
      this.ws.addEventListener("error", reject);
    });
    this.ws.addEventListener("message", (m: { data: unknown }) => {
      // The proxy also answers its own calls (ids from 100000000); ours are small.
      const msg = JSON.parse(String(m.data)) as { id?: number; result?: unknown };
      if (msg.id !== undefined) this.waiting.get(msg.id)?.(msg.result);
    });
  }
  call<T>(method: string): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${method} timed out`)), 10_000);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        resolve(r as T);
      });
      this.ws.send(JSON.stringify({ id, method }));
    });
  }
  close() {
    this.ws.close();
  }
}

function rssMB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

function gauge(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

interface Sample {
  t: number;
  requests: number;
  jsUsed: number;
  jsTotal: number;
  wasm: number;
  sessions: number;
  sessionBytes: number;
  rss: number;
}

async function main() {
  const vars = ensureDevVars();
  const state = mkdtempSync(path.join(tmpdir(), "edge-ml-soak-"));
  applyMigrations(state);
  const server = await startDevServer({ port: PORT, persistTo: state, vars: { RATE_LIMITS_ENABLED: "false" }, quiet: true, extraArgs: ["--inspector-port", String(INSPECTOR_PORT)] });
  const inspector = new Inspector();
  try {
    await registerDemoModels(server.url, vars.ADMIN_TOKEN);
    const runtime = await runtimeOf(server, PORT);
    await inspector.connect(INSPECTOR_PORT);
    const admin = { authorization: `Bearer ${vars.ADMIN_TOKEN}` };
    let requests = 0;
    let failures = 0;
    const statuses = new Map<number, number>();
    const deadline = Date.now() + SECONDS * 1000;
    const started = Date.now();

    const client = async () => {
      while (Date.now() < deadline) {
        const [p, body, headers] = nextRequest();
        try {
          const res = await fetch(runtime.url + p, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
          await res.arrayBuffer();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        } catch {
          failures++;
        }
        requests++;
      }
    };
    let registered = 0;
    const registrar = async () => {
      const manifest = JSON.parse(manifestText);
      while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 3000));
        const form = new FormData();
        form.set("manifest", JSON.stringify({ ...manifest, version: `9.${registered}.0` }));
        form.set("artifact", new Blob([artifact]), "model.onnx");
        const res = await fetch(`${runtime.url}/admin/models/credit-risk/versions`, { method: "POST", headers: admin, body: form });
        await res.arrayBuffer();
        if (res.status === 201) registered++;
      }
    };
    const samples: Sample[] = [];
    const sampler = async () => {
      console.log("   t_s  requests  js_used_MB  js_total_MB  wasm_MB  sessions  session_MB  runtime_rss_MB");
      for (;;) {
        const heap = await inspector.call<{ usedSize: number; totalSize: number }>("Runtime.getHeapUsage");
        const metrics = await (await fetch(`${runtime.url}/metrics`)).text();
        const s: Sample = {
          t: (Date.now() - started) / 1000,
          requests,
          jsUsed: heap.usedSize / MB,
          jsTotal: heap.totalSize / MB,
          wasm: gauge(metrics, "edge_ml_wasm_memory_bytes") / MB,
          sessions: gauge(metrics, "edge_ml_sessions_cached"),
          sessionBytes: gauge(metrics, "edge_ml_sessions_cached_bytes") / MB,
          rss: rssMB(runtime.pid),
        };
        samples.push(s);
        console.log(
          `${s.t.toFixed(0).padStart(6)}  ${String(s.requests).padStart(8)}  ${s.jsUsed.toFixed(1).padStart(10)}  ${s.jsTotal.toFixed(1).padStart(11)}  ${s.wasm.toFixed(1).padStart(7)}  ${String(s.sessions).padStart(8)}  ${s.sessionBytes.toFixed(2).padStart(10)}  ${s.rss.toFixed(0).padStart(14)}`,
        );
        if (Date.now() >= deadline) break;
        await new Promise((r) => setTimeout(r, Math.min(SAMPLE_SECONDS * 1000, Math.max(0, deadline - Date.now()))));
      }
    };
    await Promise.all([...Array.from({ length: CONNECTIONS }, client), registrar(), sampler()]);

    console.log(`\n${requests} requests (${failures} connection failures), ${registered} registrations; statuses: ${[...statuses].sort((a, b) => a[0] - b[0]).map(([k, v]) => `${k}: ${v}`).join(", ")}`);
    const half = samples.filter((s) => s.t >= samples[samples.length - 1].t / 2);
    if (half.length >= 2) {
      const [a, b] = [half[0], half[half.length - 1]];
      const per = (x: number, y: number) => `${(y - x).toFixed(1)} MB (${x.toFixed(1)} -> ${y.toFixed(1)})`;
      console.log(`second half (${a.t.toFixed(0)} s -> ${b.t.toFixed(0)} s, ${b.requests - a.requests} requests):`);
      console.log(`  JS heap used ${per(a.jsUsed, b.jsUsed)}; reserved ${per(a.jsTotal, b.jsTotal)}`);
      console.log(`  onnxruntime WASM memory ${per(a.wasm, b.wasm)}`);
      console.log(`  runtime process RSS ${per(a.rss, b.rss)}`);
    }
    const peak = Math.max(...samples.map((s) => s.jsTotal + s.wasm));
    console.log(`peak isolate heap (JS reserved + WASM): ${peak.toFixed(1)} MB of the 128 MB a deployed isolate has`);
  } finally {
    inspector.close();
    await server.stop();
    rmSync(state, { recursive: true, force: true });
  }
}

await main();
