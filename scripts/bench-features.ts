/**
 * `npm run bench:features`: feature retrieval speed and cache behaviour, printed (never asserted).
 *
 * Starts `wrangler dev` on a scratch state directory, defines a group with 3 offline, 2 online and
 * 1 realtime feature, bulk loads BENCH_ENTITIES entities through the load queue, posts events, then
 * measures, with the in-worker time each response reports (`server-timing: features;dur=`) and
 * the client's round trip:
 *   1. warm cache: the same entity read repeatedly (every feature fresh in the isolate cache), over
 *      HTTP and in a loop inside the isolate (POST /admin/features/profile; the figure to quote,
 *      since workerd's clock ticks in whole milliseconds);
 *   2. cold: entities read for the first time (one KV read + one Durable Object call each);
 *   3. Zipf(s = BENCH_ZIPF_S) entity popularity: the share of stored-feature lookups answered by
 *      the isolate cache, as the responses report it;
 *   4. throughput of predict-by-entity against predict-with-features (autocannon, same run).
 * `wrangler dev` runs one isolate on a shared 2-core machine: figures move with other load on the
 * machine, and in deployed Workers the clock does not advance during pure CPU work, so in-worker
 * durations read there would be lower bounds.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { applyMigrations, ensureDevVars, ROOT, startDevServer } from "./lib/dev-server.ts";
import { mulberry32 } from "./lib/prng.ts";
import { quantileSorted } from "./lib/quantiles.ts";

const PORT = Number(process.env.BENCH_PORT ?? 8805);
const ENTITIES = Number(process.env.BENCH_ENTITIES ?? 10_000);
const WARM = Number(process.env.BENCH_WARM ?? 2000);
const COLD = Number(process.env.BENCH_COLD ?? 500);
const ZIPF_REQUESTS = Number(process.env.BENCH_ZIPF_REQUESTS ?? 20_000);
const ZIPF_S = Number(process.env.BENCH_ZIPF_S ?? 1.1);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const FEATURES = ["income", "debt", "age", "dti", "log_income", "txn_count_1h"];

const state = mkdtempSync(path.join(tmpdir(), "edge-ml-bench-features-"));
const vars = ensureDevVars();
applyMigrations(state);
const server = await startDevServer({ port: PORT, persistTo: state, quiet: true, vars: { RATE_LIMITS_ENABLED: "false", MONITORING_ENABLED: "false" } });
const admin = { authorization: `Bearer ${vars.ADMIN_TOKEN}`, "content-type": "application/json" };

async function post(pathname: string, body: unknown, headers: Record<string, string> = { "content-type": "application/json" }) {
  const res = await fetch(`${server.url}${pathname}`, { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${pathname}: ${res.status} ${text}`);
  return { json: JSON.parse(text), timing: res.headers.get("server-timing") ?? "" };
}

function summary(label: string, inWorker: number[], client: number[]) {
  inWorker.sort((a, b) => a - b);
  client.sort((a, b) => a - b);
  const f = (v: number) => v.toFixed(3).padStart(8);
  console.log(
    `${label.padEnd(34)} in-worker p50 ${f(quantileSorted(inWorker, 0.5))} p95 ${f(quantileSorted(inWorker, 0.95))} p99 ${f(quantileSorted(inWorker, 0.99))} ms | round trip p50 ${f(quantileSorted(client, 0.5))} p95 ${f(quantileSorted(client, 0.95))} ms  (n=${inWorker.length})`,
  );
}

const featuresDur = (timing: string) => Number(/features;dur=([\d.]+)/.exec(timing)?.[1]);

async function getOne(entity: string) {
  const t = performance.now();
  const res = await post("/v1/features/get", { group: "bench", entity_id: entity, features: FEATURES });
  return { inWorker: featuresDur(res.timing), client: performance.now() - t, sources: res.json.sources as Record<string, string> };
}

/** Zipf(s) sampler over ranks 1..n by inverse CDF (binary search on the cumulative weights). */
function zipf(n: number, s: number, rand: () => number) {
  const cdf = new Float64Array(n);
  let total = 0;
  for (let k = 1; k <= n; k++) cdf[k - 1] = total += 1 / k ** s;
  return () => {
    const u = rand() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

try {
  const defs = [
    { name: "income", kind: "offline", dtype: "numeric", ttl_seconds: 300 },
    { name: "debt", kind: "offline", dtype: "numeric", ttl_seconds: 300, fallback: { policy: "default", value: 0 } },
    { name: "age", kind: "offline", dtype: "integer", ttl_seconds: 300 },
    { name: "dti", kind: "online", dtype: "numeric", expression: "ratio(debt, income)", fallback: { policy: "default", value: 0 } },
    { name: "log_income", kind: "online", dtype: "numeric", expression: "log1p(income)" },
    { name: "txn_count_1h", kind: "realtime", dtype: "integer", ttl_seconds: 5, aggregate: { event: "txn", fn: "count", window: "1h" } },
  ];
  for (const d of defs) await post("/admin/features/definitions", { group: "bench", ...d }, admin);

  const rand = mulberry32(42);
  const lines = ["entity,income,debt,age"];
  for (let i = 0; i < ENTITIES; i++) lines.push(`e${i},${(20 + rand() * 200).toFixed(2)},${(rand() * 50).toFixed(2)},${18 + Math.floor(rand() * 60)}`);
  const loadStarted = performance.now();
  const load = await post("/admin/features/loads?group=bench&entity_column=entity", lines.join("\n"), { ...admin, "content-type": "text/csv" });
  let status = load.json;
  while (status.status !== "succeeded" && status.status !== "failed") {
    await new Promise((r) => setTimeout(r, 250));
    status = (await (await fetch(`${server.url}/admin/features/loads/${load.json.id}`, { headers: admin })).json()) as typeof status;
  }
  if (status.status !== "succeeded") throw new Error(`load failed: ${JSON.stringify(status)}`);
  console.log(`\noffline load: ${ENTITIES} entities in ${((performance.now() - loadStarted) / 1000).toFixed(1)} s through the queue (${status.rows_loaded} rows)`);

  const now = Date.now();
  for (let b = 0; b < 10; b++) {
    const events = Array.from({ length: 100 }, (_, i) => ({ group: "bench", entity_id: `e${(b * 100 + i) % 50}`, event: "txn", event_id: `ev-${b}-${i}`, event_time: now - i * 1000, fields: {} }));
    await post("/v1/events", { events });
  }

  // 1. Warm: one entity, every feature fresh in the isolate cache after the first read.
  await getOne("e1");
  const warm = { w: [] as number[], c: [] as number[] };
  for (let i = 0; i < WARM; i++) {
    const r = await getOne("e1");
    warm.w.push(r.inWorker);
    warm.c.push(r.client);
  }
  // 2. Cold: first reads of entities nobody asked for yet.
  const cold = { w: [] as number[], c: [] as number[] };
  for (let i = 0; i < COLD; i++) {
    const r = await getOne(`e${ENTITIES - 1 - i}`);
    cold.w.push(r.inWorker);
    cold.c.push(r.client);
  }
  console.log(`\nget_features, 1 entity, ${FEATURES.length} features (3 offline, 2 online, 1 realtime), sequential requests:`);
  summary("warm cache (same entity)", warm.w, warm.c);
  summary("cold (KV read + DO call)", cold.w, cold.c);
  const profile = (await post("/admin/features/profile", { group: "bench", entity_id: "e1", features: FEATURES, iterations: 20_000 }, admin)).json;
  console.log(
    `warm cache, in-isolate loop of ${profile.iterations}: mean ${profile.mean_ms.toFixed(4)} ms per get_features; ${(profile.share_reading_under_1ms * 100).toFixed(2)}% of calls read under 1 ms (workerd's clock ticks in whole ms, so that share is a lower bound)`,
  );

  // 3. Zipf-distributed entities over the loaded population, 8 requests in flight.
  const pick = zipf(ENTITIES - COLD, ZIPF_S, mulberry32(7));
  let hits = 0;
  let stored = 0;
  const zw: number[] = [];
  const zc: number[] = [];
  let issued = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (issued < ZIPF_REQUESTS) {
        issued++;
        const r = await getOne(`e${pick()}`);
        zw.push(r.inWorker);
        zc.push(r.client);
        for (const f of ["income", "debt", "age", "txn_count_1h"]) {
          if (r.sources[f] === "cache") hits++;
          if (r.sources[f] === "cache" || r.sources[f] === "kv" || r.sources[f] === "durable_object") stored++;
        }
      }
    }),
  );
  console.log(`\nZipf(s=${ZIPF_S}) over ${ENTITIES - COLD} entities, ${ZIPF_REQUESTS} requests: isolate-cache hit rate ${((hits / stored) * 100).toFixed(1)}% of ${stored} stored-feature lookups`);
  summary("zipf mix", zw, zc);

  // 4. Predict by entity vs predict with features, same model.
  const manifest = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-lr.manifest.json"), "utf8"));
  const store: Record<string, unknown> = { Income: { group: "bench", name: "income" }, Debt: { group: "bench", name: "debt" }, Age: { group: "bench", name: "age" } };
  const storeManifest = { ...manifest, name: "credit-store", featureSchema: { ...manifest.featureSchema, features: manifest.featureSchema.features.map((f: { name: string }) => (store[f.name] ? { ...f, store: store[f.name] } : f)) } };
  const form = new FormData();
  form.set("manifest", JSON.stringify(storeManifest));
  form.set("artifact", new Blob([readFileSync(path.join(ROOT, "models/credit-risk-lr.onnx"))]), "model.onnx");
  form.append("alias", "champion");
  const reg = await fetch(`${server.url}/admin/models/credit-store/versions`, { method: "POST", headers: { authorization: admin.authorization }, body: form });
  if (reg.status !== 201) throw new Error(`register: ${reg.status} ${await reg.text()}`);
  const rest = { Seniority: 9, Home: "rent", Time: 60, Marital: "married", Records: "no", Job: "freelance", Expenses: 73, Assets: 0, Amount: 800, Price: 846 };
  const full = { ...rest, Income: 129, Debt: 0, Age: 30 };
  const predictUrl = `${server.url}/v1/models/credit-store/predict`;
  await post("/v1/models/credit-store/predict", { entity_id: "e1", features: rest });
  const run = async (name: string, body: unknown) => {
    const r = await autocannon({ url: predictUrl, connections: CONNECTIONS, duration: SECONDS, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    return { name, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts + r.non2xx };
  };
  const results = [await run("predict with features", { features: full }), await run("predict by entity (warm)", { entity_id: "e1", features: rest })];
  console.log(`\nthroughput: autocannon, ${CONNECTIONS} connections, ${SECONDS} s each`);
  for (const r of results) console.log(`${r.name.padEnd(28)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  errors ${r.errors}`);
  console.log(`predict by entity = ${((results[1].rps / results[0].rps) * 100).toFixed(1)}% of predict with features`);

  const metrics = (await (await fetch(`${server.url}/admin/features/metrics`, { headers: admin })).json()) as { features: { feature: string; lookups: number; cache_hit_rate: number | null; latency_ms: { p50: number; p95: number }; fallbacks: number }[] };
  console.log("\nper-feature metrics of the isolate (GET /admin/features/metrics):");
  for (const f of metrics.features) {
    console.log(
      `  ${f.feature.padEnd(20)} lookups ${String(f.lookups).padStart(7)}  hit rate ${f.cache_hit_rate === null ? "   n/a" : `${(f.cache_hit_rate * 100).toFixed(1)}%`.padStart(6)}  p50 ${f.latency_ms.p50.toFixed(3)} ms  p95 ${f.latency_ms.p95.toFixed(3)} ms  fallbacks ${f.fallbacks}`,
    );
  }
  console.log("\n(shared 2-core machine, wrangler dev: figures vary with other load; see the header of this script)");
} finally {
  await server.stop();
  rmSync(state, { recursive: true, force: true });
}
