/**
 * `npm run bench:stages`: where the CPU of one prediction request (1 row by default) goes, stage by stage.
 *
 * workerd's clock does not advance during CPU work (and in-process timers would perturb what they
 * measure), so stages are not timed from inside. Instead each stage is removed or bypassed in a
 * scratch copy of the source (a text patch per variant: a stage's result computed once and reused,
 * or the stage skipped), each variant is built as the deployable bundle and run in its own workerd
 * (scripts/lib/miniflare-bundle.ts), all variants side by side, pinned to cpu 1 with the load
 * generator on cpu 0, loaded in interleaved rounds (order rotated each round) with the same 1-row
 * predict of the demo GBDT. A stage's cost is the full build's server CPU per request minus the
 * variant's, per round, median over rounds with a 95% bootstrap interval. Variants exist only to
 * measure: several return the same answer to every request.
 *
 * Knobs: BENCH_SECONDS (3), BENCH_ROUNDS (5), BENCH_CONNECTIONS (10), BENCH_VARIANTS (comma list
 * of variant names; default all), BENCH_PORT (8840; variants use consecutive ports), BENCH_ROWS
 * (1: a single-row `features` body; more: an `instances` body of that many holdout rows).
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import autocannon from "autocannon";
import { registerDemoModels, ROOT } from "./lib/dev-server.ts";
import { startTrivialWorker, startWorker, type RunningWorker } from "./lib/miniflare-bundle.ts";
import { bootstrapMedian } from "./lib/quantiles.ts";
import { VARIANTS, type Variant } from "./lib/stage-variants.ts";
import { cpuSeconds, pin, systemCpuSeconds } from "./lib/workerd-process.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const PORT = Number(process.env.BENCH_PORT ?? 8840);
const ADMIN = "bench-admin-token";
const BASE_VARS = { ADMIN_TOKEN: ADMIN, API_KEYS: "bench-key", METRICS_TOKEN: "", RATE_LIMITS_ENABLED: "false", MONITORING_ENABLED: "true", REQUEST_LOGS: "false" };

/** Copies the sources a build needs into a scratch directory, applies the patches, builds the bundle there. */
function buildVariant(v: Variant, scratch: string): string {
  const dir = path.join(scratch, v.name);
  mkdirSync(dir, { recursive: true });
  for (const entry of ["src", "migrations", "wrangler.toml", "package.json", "tsconfig.json", "worker-configuration.d.ts"]) cpSync(path.join(ROOT, entry), path.join(dir, entry), { recursive: true });
  symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  for (const p of v.patches ?? []) {
    const file = path.join(dir, p.file);
    const text = readFileSync(file, "utf8");
    if (!text.includes(p.from)) throw new Error(`variant ${v.name}: ${p.file} no longer contains ${JSON.stringify(p.from)}; update scripts/bench-stages.ts`);
    writeFileSync(file, text.replace(p.from, p.to));
  }
  const out = path.join(dir, "bundle");
  const r = spawnSync(process.execPath, [path.join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--env=", "--outdir", out], { cwd: dir, stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, CI: "true" } });
  if (r.status !== 0 || !existsSync(path.join(out, "index.js"))) throw new Error(`building variant ${v.name} failed`);
  return out;
}

/** One load; its CPU is read by the caller (from this load's start to the same variant's next load). */
async function loadOnce(w: RunningWorker, body: string, seconds: number): Promise<{ requests: number; rps: number; errors: number }> {
  const r = await autocannon({ url: `${w.url}/v1/models/credit-risk/predict`, connections: CONNECTIONS, duration: seconds, method: "POST", headers: { "content-type": "application/json" }, body });
  return { requests: r.requests.total, rps: r.requests.total / seconds, errors: r.errors + r.timeouts + r.non2xx };
}

const only = process.env.BENCH_VARIANTS?.split(",").map((s) => s.trim());
const variants = VARIANTS.filter((v) => v.name === "full" || !only || only.includes(v.name));
const scratch = mkdtempSync(path.join(tmpdir(), "edge-ml-bench-stages-"));
const holdout = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-holdout.json"), "utf8"));
const ROWS = Number(process.env.BENCH_ROWS ?? 1);
const body = ROWS === 1 ? JSON.stringify({ version: "1.1.0", features: holdout.rows[0].features }) : JSON.stringify({ version: "1.1.0", instances: holdout.rows.slice(0, ROWS).map((r: { features: unknown }) => r.features) });
if (ROWS > holdout.rows.length) throw new Error(`BENCH_ROWS ${ROWS}: the holdout has ${holdout.rows.length} rows`);
const workers: RunningWorker[] = [];
try {
  console.log(`building ${variants.length} variants in ${scratch}`);
  const bundles = variants.map((v) => buildVariant(v, scratch));
  for (const [i, v] of variants.entries()) {
    const w = await startWorker({ bundleDir: bundles[i], port: PORT + i, vars: { ...BASE_VARS, ...v.vars }, persistTo: path.join(scratch, v.name, "state") });
    workers.push(w);
    await registerDemoModels(w.url, ADMIN);
  }
  const trivial = await startTrivialWorker(PORT + variants.length);
  workers.push(trivial);
  const pinned = availableParallelism() >= 2 && workers.every((w) => pin(w.pid, 1)) && pin(process.pid, 0);
  console.log(`${pinned ? "pinned: servers cpu 1, load cpu 0" : "NOT pinned"}; load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  for (const w of workers.slice(0, variants.length)) await loadOnce(w, body, 1);
  // A variant's CPU per request: its process's CPU from the start of its load to the start of its
  // next load (a round later), over the load's requests. The window takes in what the load leaves
  // behind (its last monitoring flush, GC) without a pause after every load; the process is idle
  // otherwise. The last round's windows end 2.5 s after the round (past a monitoring flush).
  const cpu: number[][] = variants.map(() => []);
  const rps: number[][] = variants.map(() => []);
  const sys: number[][] = variants.map(() => []);
  const open: ({ cpu0: number; sys0: number; requests: number } | undefined)[] = variants.map(() => undefined);
  const close = (i: number) => {
    const o = open[i];
    if (o) cpu[i].push(((cpuSeconds(workers[i].pid) - o.cpu0) * 1e6) / Math.max(1, o.requests));
    if (o) sys[i].push(((systemCpuSeconds(workers[i].pid) - o.sys0) * 1e6) / Math.max(1, o.requests));
  };
  const trivialCpu: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < variants.length; k++) {
      const i = (k + round) % variants.length;
      close(i);
      const cpu0 = cpuSeconds(workers[i].pid);
      const sys0 = systemCpuSeconds(workers[i].pid);
      const r = await loadOnce(workers[i], body, SECONDS);
      if (r.errors) throw new Error(`variant ${variants[i].name}: ${r.errors} errors`);
      open[i] = { cpu0, sys0, requests: r.requests };
      rps[i].push(r.rps);
    }
    const c0 = cpuSeconds(trivial.pid);
    const t = await autocannon({ url: `${trivial.url}/`, connections: CONNECTIONS, duration: SECONDS });
    trivialCpu.push(((cpuSeconds(trivial.pid) - c0) * 1e6) / t.requests.total);
    console.log(`round ${round + 1}/${ROUNDS}: ${variants.map((v, i) => `${v.name} ${rps[i].at(-1)!.toFixed(0)}/s`).join(", ")}, trivial ${trivialCpu.at(-1)!.toFixed(0)} us cpu/request`);
  }
  await new Promise((resolve) => setTimeout(resolve, 2500));
  variants.forEach((_, i) => close(i));
  const f = (b: { point: number; lo: number; hi: number }) => `${b.point.toFixed(0)} [${b.lo.toFixed(0)}, ${b.hi.toFixed(0)}]`;
  console.log(`\n| stage removed (variant) | server CPU us/request | cost of the stage (full - variant) | of which kernel (system CPU) | req/s |`);
  console.log("|---|---|---|---|---|");
  for (const [i, v] of variants.entries()) {
    const diff = cpu[0].map((x, r) => x - cpu[i][r]);
    const sysDiff = sys[0].map((x, r) => x - sys[i][r]);
    console.log(`| ${v.stage} (${v.name}) | ${f(bootstrapMedian(cpu[i]))} | ${i === 0 ? "-" : f(bootstrapMedian(diff))} | ${i === 0 ? f(bootstrapMedian(sys[0])) : f(bootstrapMedian(sysDiff))} | ${bootstrapMedian(rps[i]).point.toFixed(0)} |`);
  }
  console.log(`| trivial worker (ceiling) | ${f(bootstrapMedian(trivialCpu))} | - | - | - |`);
  console.log(`\n${ROWS} row(s) per request; ${ROUNDS} rounds x ${SECONDS} s, ${CONNECTIONS} connections; medians over rounds [95% bootstrap interval]; load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
} finally {
  for (const w of workers) await w.stop().catch(() => undefined);
  rmSync(scratch, { recursive: true, force: true });
}
