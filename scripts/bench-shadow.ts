/**
 * `npm run bench:shadow`: what a shadow costs the caller, printed (never asserted).
 *
 * Builds a deliberately slow copy of the demo logistic regression (scripts/lib/slow-model.ts: same
 * answers plus a ballast of SHADOW_LAYERS 256x256 MatMul+Tanh layers (SHADOW_WIDTH) run
 * SHADOW_LOOPS times in an ONNX Loop, defaults 8 x 800: ~420 M multiply-adds per row, meant to make
 * a 1-row prediction >= 30 ms slower on a quiet VM; the first line printed is the measured median
 * and runtime CPU of 40 serial 1-row requests to each, so the difference is read, not assumed),
 * starts one `wrangler dev` per consumer setting (BENCH_SETTINGS, a JSON array of vars objects;
 * default `[{"SHADOW_CPU_SHARE":"100"}, {"SHADOW_CPU_SHARE":"10"}, {}]`: no share, a share of 10%,
 * and the defaults (a 5% share)), on ports
 * BENCH_PORT + k (default 8873), each with scratch state, registers the fast model as 1.0.0
 * (champion) and again as 1.0.1 (a fast shadow), the slow one as 1.1.0, and loads each worker's
 * runtime port directly (not wrangler's proxy; scripts/lib/workerd-process.ts) with an open-loop
 * load of Poisson arrivals at BENCH_RATE requests/s (default 10) for BENCH_SECONDS, in three cases: no
 * deployment, a 100% shadow of 1.0.1 (fast), a 100% shadow of 1.1.0 (slow). BENCH_ROUNDS rounds
 * (default 2) run every case on every server interleaved (one server loaded at a time), so drift
 * in the shared machine's load hits all alike; each line prints the 1-minute load average.
 * Reported: caller p50/p90/p99 (ms), and the runtime process's CPU per request (user + system,
 * from /proc, from the load's start until the shadow queue has drained: in this layout it includes
 * the consumer's scoring), and per shadow case the rows compared (in brackets: by the end of the
 * load, i.e. scored while callers were being served) and skipped (budget or share), and the label
 * agreement rate and largest score difference against the primary (1 and ~0: the ballast changes
 * no answer).
 * BENCH_VARS (a vars object) applies to every server, e.g. '{"SHADOW_BUDGET_MS":"500"}'.
 *
 * Layout: wrangler dev runs the queue consumer in the same workerd process and isolate as the
 * requests, and a workerd process runs all its Workers' JavaScript on one thread (npm run
 * probe:workerd-threads), so locally no layout takes the shadow's CPU off the callers' thread;
 * the consumer's slices, budget and share are what bound it. On Cloudflare a queue consumer is
 * its own invocation, which the runtime may place in another isolate or machine; that is not
 * reproduced here (see README, Shadow).
 */
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadavg } from "node:os";
import { adminApi, applyMigrations, ensureDevVars, registerModel, ROOT, startDevServer } from "./lib/dev-server.ts";
import { cpuSeconds, runtimeOf, type RuntimeProcess } from "./lib/workerd-process.ts";
import { slowCopy } from "./lib/slow-model.ts";
import { mulberry32 } from "./lib/prng.ts";
import { quantileSorted } from "./lib/quantiles.ts";

const PORT = Number(process.env.BENCH_PORT ?? 8873);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const EXTRA_VARS: Record<string, string> = JSON.parse(process.env.BENCH_VARS ?? "{}");
/** Consumer settings compared, one server each: defaults, and an isolate CPU share of 5% (SHADOW_CPU_SHARE). */
const SETTINGS: Record<string, string>[] = JSON.parse(process.env.BENCH_SETTINGS ?? '[{"SHADOW_CPU_SHARE":"100"}, {"SHADOW_CPU_SHARE":"10"}, {}]');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const RATE = Number(process.env.BENCH_RATE ?? 10);
const LAYERS = Number(process.env.SHADOW_LAYERS ?? 8);
const LOOPS = Number(process.env.SHADOW_LOOPS ?? 800);
const WIDTH = Number(process.env.SHADOW_WIDTH ?? 256);

const manifest = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-lr.manifest.json"), "utf8"));
const fast = readFileSync(path.join(ROOT, "models/credit-risk-lr.onnx"));
const holdout = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-holdout.json"), "utf8"));
const rows: Record<string, unknown>[] = holdout.rows.map((r: { features: Record<string, unknown> }) => r.features);

/** The fast model plus a CPU ballast that does not change its outputs (scripts/lib/slow-model.ts). */
const slowModel = (): Uint8Array => slowCopy(fast, LAYERS, WIDTH, 7, LOOPS);

const register = (url: string, token: string, version: string, artifact: Uint8Array, aliases: string[]) =>
  registerModel(url, token, JSON.stringify({ ...manifest, name: "bench-shadow", version }), artifact, aliases, { actor: "bench-shadow", allowExisting: false });

/** Median wall time of `n` serial requests (and, given the runtime, its CPU ms per request). */
async function serial(url: string, body: (i: number) => unknown, n = 40, rt?: RuntimeProcess): Promise<{ median: number; cpuMs: number }> {
  const times: number[] = [];
  const cpu0 = rt ? cpuSeconds(rt.pid) : 0;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body(i)) });
    await res.arrayBuffer();
    times.push(performance.now() - t);
  }
  const cpuMs = rt ? ((cpuSeconds(rt.pid) - cpu0) * 1000) / n : NaN;
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(n / 2)], cpuMs };
}

/**
 * Open-loop load with Poisson arrivals at RATE per second for SECONDS (exponential gaps from a
 * seeded generator, so each round's cases see the same arrival times): every request is sent at its
 * scheduled time whatever the earlier ones are doing, and its latency counts from that time (no
 * coordinated omission). A fixed-rate load phase-locks with the shadow queue's batches, which the
 * requests themselves trigger, so whether callers met the consumer's work was luck: the same slow
 * shadow case read p90 18 ms in one round and 272 ms in another.
 */
async function load(url: string, seed: number) {
  const rand = mulberry32(seed);
  const start = performance.now();
  const pending: Promise<void>[] = [];
  const latencies: number[] = [];
  let errors = 0;
  for (let t = 0, i = 0; ; i++) {
    t += (-Math.log(1 - rand()) / RATE) * 1000;
    if (t > SECONDS * 1000) break;
    const scheduled = start + t;
    const wait = scheduled - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const body = JSON.stringify({ features: rows[i % rows.length] });
    pending.push(
      fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body }).then(
        async (res) => {
          await res.arrayBuffer();
          if (res.ok) latencies.push(performance.now() - scheduled);
          else errors++;
        },
        () => void errors++,
      ),
    );
  }
  await Promise.all(pending);
  latencies.sort((x, y) => x - y);
  const q = (p: number) => (latencies.length ? Math.round(quantileSorted(latencies, p)) : NaN);
  return { n: latencies.length + errors, p50: q(0.5), p90: q(0.9), p99: q(0.99), errors };
}

type Case = { label: string; version: string | null };
const CASES: Case[] = [
  { label: "no shadow", version: null },
  { label: "fast shadow (1.0.1)", version: "1.0.1" },
  { label: "slow shadow (1.1.0)", version: "1.1.0" },
];

/** Waits until the deployment's shadow results stop growing (the queue has drained), at most 60 s. */
async function drained(url: string, token: string, id: string) {
  let last = -1;
  for (let i = 0; i < 60; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    const { shadow } = await adminApi(url, token, "GET", `/admin/deployments/${id}/results`);
    const seen = shadow.requests;
    if (seen === last) return shadow;
    last = seen;
  }
  return (await adminApi(url, token, "GET", `/admin/deployments/${id}/results`)).shadow;
}

async function runCase(url: string, rt: RuntimeProcess, token: string, c: Case, seed: number) {
  let id: string | undefined;
  if (c.version) {
    const { deployment } = await adminApi(url, token, "POST", "/admin/deployments", { model: "bench-shadow", strategy: "shadow", version: c.version, fraction: 100, validation: { latency_budget_ms: 10_000 } });
    id = deployment.id as string;
    const { report } = await adminApi(url, token, "POST", `/admin/deployments/${id}/validate`, {});
    if (!report.passed) throw new Error(`validation failed: ${JSON.stringify(report)}`);
    await adminApi(url, token, "POST", `/admin/deployments/${id}/start`, {});
  }
  const predict = `${rt.url}/v1/models/bench-shadow/predict`;
  await serial(predict, (i) => ({ features: rows[i % rows.length] }), 10); // routing picked up, sessions warm
  if (id) await drained(url, token, id);
  const load1 = loadavg()[0];
  const cpu0 = cpuSeconds(rt.pid);
  const l = await load(predict, seed);
  // Rows compared by the end of the load: scoring that overlapped the callers (the rest ran after it).
  const duringLoad = id ? ((await adminApi(url, token, "GET", `/admin/deployments/${id}/results`)).shadow.compared_rows as number) : undefined;
  const shadow = id ? await drained(url, token, id) : undefined;
  const cpuMs = ((cpuSeconds(rt.pid) - cpu0) * 1000) / Math.max(1, l.n);
  if (id) await adminApi(url, token, "POST", `/admin/deployments/${id}/abort`, {});
  return { ...l, load1, cpuMs, shadow, duringLoad };
}

/** One `wrangler dev` per consumer setting (port PORT + k, its own scratch state), the versions registered. */
async function startSetting(k: number, settingVars: Record<string, string>, token: string) {
  const state = mkdtempSync(path.join(tmpdir(), "edge-ml-bench-shadow-"));
  applyMigrations(state);
  const port = PORT + k;
  const server = await startDevServer({ port, persistTo: state, quiet: true, vars: { RATE_LIMITS_ENABLED: "false", ...EXTRA_VARS, ...settingVars } });
  const rt = await runtimeOf(server, port);
  await register(server.url, token, "1.0.0", fast, ["champion"]);
  await register(server.url, token, "1.0.1", fast, []);
  await register(server.url, token, "1.1.0", slowModel(), []);
  await adminApi(server.url, token, "PUT", "/admin/deployments/test-sets/bench-shadow", { rows: holdout.rows.slice(0, 50) });
  const label = Object.keys(settingVars).length ? Object.entries(settingVars).map(([k, v]) => `${k}=${v}`).join(" ") : "defaults";
  return { server, rt, state, label };
}

const vars = ensureDevVars();
const token = vars.ADMIN_TOKEN;
const settings: Awaited<ReturnType<typeof startSetting>>[] = [];
try {
  for (const [k, v] of SETTINGS.entries()) settings.push(await startSetting(k, v, token));
  const { rt } = settings[0];
  const predict = `${rt.url}/v1/models/bench-shadow/predict`;
  const body = (version: string) => (i: number) => ({ features: rows[i % rows.length], version });
  await serial(predict, body("1.0.0"), 5);
  await serial(predict, body("1.1.0"), 5); // sessions created
  const f = await serial(predict, body("1.0.0"), 40, rt);
  const s = await serial(predict, body("1.1.0"), 40, rt);
  console.log(
    `\nsingle 1-row request, 40 serial each (load1 ${loadavg()[0].toFixed(2)}): median fast 1.0.0 ${f.median.toFixed(1)} ms, slow 1.1.0 ${s.median.toFixed(1)} ms, slow - fast ${(s.median - f.median).toFixed(1)} ms; ` +
      `runtime CPU per request fast ${f.cpuMs.toFixed(1)} ms, slow ${s.cpuMs.toFixed(1)} ms (ballast ${LAYERS} x ${WIDTH}x${WIDTH} layers x ${LOOPS} loops)`,
  );
  console.log(`layout: wrangler dev, the shadow consumer in the callers' workerd process and isolate (one server per consumer setting, loaded one at a time)`);
  console.log(`caller latency at ${RATE} req/s (Poisson arrivals, open loop, seeded by round), ${SECONDS} s per case, ${ROUNDS} rounds (on each runtime port; vars for all ${JSON.stringify(EXTRA_VARS)})`);
  console.log("round  consumer setting         case                     load1  requests  p50 ms  p90 ms  p99 ms  errors  CPU ms/req  compared (by load end)  skipped  agreement  max |diff|");
  for (let round = 1; round <= ROUNDS; round++) {
    for (const c of CASES) {
      for (const setting of settings) {
        const r = await runCase(setting.server.url, setting.rt, token, c, round);
        const sh = r.shadow;
        console.log(
          `${String(round).padStart(5)}  ${setting.label.padEnd(24)} ${c.label.padEnd(23)} ${r.load1.toFixed(2).padStart(6)} ${String(r.n).padStart(9)} ${String(r.p50).padStart(7)} ${String(r.p90).padStart(7)} ${String(r.p99).padStart(7)} ${String(r.errors).padStart(7)} ${r.cpuMs.toFixed(2).padStart(11)} ${String(sh?.compared_rows ?? "-").padStart(9)} ${(r.duringLoad === undefined ? "" : `(${r.duringLoad})`).padStart(13)} ${String(sh?.skipped_rows ?? "-").padStart(8)} ${String(sh?.agreement_rate ?? "-").padStart(10)} ${String(sh?.abs_score_diff?.max ?? "-").padStart(10)}`,
        );
      }
    }
  }
} finally {
  for (const { server, state } of settings) {
    await server.stop();
    rmSync(state, { recursive: true, force: true });
  }
}
