/**
 * `npm run bench:archive`: what the retraining payload archive (src/retraining/archive.ts) costs
 * predict traffic: archive sample rate 1.0 vs 0, everything else equal, in the same run.
 *
 * Two `wrangler dev` servers on scratch state, both with monitoring on (as deployed) and the demo
 * models registered; each gets a retraining config for credit-risk through the admin API, with
 * `sample_rate` 1 ("on": every predicted row archived) or 0 ("off": the config lookup still runs,
 * nothing is archived). Method as in bench-monitoring.ts: load straight to each workerd runtime,
 * runtimes pinned to one core and the load generator to another where there are two, ABBA blocks of
 * short autocannon loads, fresh server pairs per round, a cluster bootstrap over rounds for the 95%
 * interval, and CPU per request from /proc including a pause after each load (so an archive flush
 * triggered by a load is charged to it). Figures are printed, never asserted (target < 3%).
 *
 * BENCH_SECONDS (2), BENCH_ROUNDS (3), BENCH_BLOCKS (4), BENCH_CONNECTIONS (10), BENCH_BATCHES
 * ("1,100"), BENCH_PORTS ("8861,8862"), BENCH_ON_VARS: JSON of extra vars for both servers (e.g.
 * RETRAINING_ARCHIVE_FLUSH_ROWS).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { applyMigrations, ensureDevVars, registerDemoModels, ROOT, setArchiveSampleRate, startDevServer, type DevServer } from "./lib/dev-server.ts";
import { clusterBootstrapMedian } from "./lib/quantiles.ts";
import { cpuSeconds, pin, runtimeOf, type RuntimeProcess } from "./lib/workerd-process.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BLOCKS = Number(process.env.BENCH_BLOCKS ?? 4);
const BATCHES = (process.env.BENCH_BATCHES ?? "1,100").split(",").map(Number);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const PORTS = (process.env.BENCH_PORTS ?? "8861,8862").split(",").map(Number);
const VARS: Record<string, string> = JSON.parse(process.env.BENCH_ON_VARS ?? "{}");
const SETTLE_MS = 2500;

const holdout = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-holdout.json"), "utf8"));
const rows: Record<string, unknown>[] = holdout.rows.map((r: { features: Record<string, unknown> }) => r.features);

type Side = "on" | "off";
type Pair = Record<Side, number>;

async function load(rt: RuntimeProcess, body: unknown): Promise<{ rps: number; cpuUs: number; errors: number; requests: number }> {
  const cpu0 = cpuSeconds(rt.pid);
  const r = await autocannon({ url: `${rt.url}/v1/models/credit-risk/predict`, connections: CONNECTIONS, duration: SECONDS, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  return { rps: r.requests.average, cpuUs: ((cpuSeconds(rt.pid) - cpu0) * 1e6) / r.requests.total, errors: r.errors + r.timeouts + r.non2xx, requests: r.requests.total };
}

async function server(side: Side, port: number, dirs: string[], adminToken: string): Promise<DevServer> {
  const persistTo = mkdtempSync(path.join(tmpdir(), `edge-ml-bench-archive-${side}-`));
  dirs.push(persistTo);
  applyMigrations(persistTo);
  const s = await startDevServer({ port, persistTo, quiet: true, vars: { MONITORING_ENABLED: "true", RATE_LIMITS_ENABLED: "false", ...VARS } });
  await registerDemoModels(s.url, adminToken);
  await setArchiveSampleRate(s.url, adminToken, "credit-risk", side === "on" ? 1 : 0);
  return s;
}

/** Bytes and files under a local persistence directory's R2 storage (the archive's objects). */
function r2Usage(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (d.includes(`${path.sep}r2`)) (files++, (bytes += statSync(p).size));
    }
  };
  walk(dir);
  return { files, bytes };
}

function overhead(rounds: Pair[][], diff: (b: Pair) => number) {
  const { perGroup, ...interval } = clusterBootstrapMedian(rounds.map((blocks) => blocks.map(diff)));
  return { ...interval, perRound: perGroup };
}
const mean = (bs: Pair[], k: Side) => bs.reduce((s, b) => s + b[k], 0) / bs.length;
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const load1 = () => loadavg().map((x) => x.toFixed(2)).join(" ");

const vars = ensureDevVars();
const CORES = availableParallelism();
const cases = BATCHES.map((n) => ({ name: `predict ${n} row${n === 1 ? "" : "s"}`, body: n === 1 ? { features: rows[0] } : { instances: rows.slice(0, n) } }));
const results = cases.map(() => ({ throughput: [] as Pair[][], cpu: [] as Pair[][], errors: 0, requests: { on: 0, off: 0 } }));
const storage: { on: { files: number; bytes: number }; off: { files: number; bytes: number } }[] = [];
const loads: string[] = [load1()];
console.log(`\npayload archive sample rate 1.0 ("on") vs 0 ("off"), monitoring on for both: ${ROUNDS} rounds x ${BLOCKS} ABBA blocks of ${SECONDS} s loads, ${CONNECTIONS} connections; load average ${load1()}`);
for (let round = 0; round < ROUNDS; round++) {
  const dirs: string[] = [];
  const servers: DevServer[] = [];
  try {
    const on = await server("on", PORTS[0], dirs, vars.ADMIN_TOKEN);
    servers.push(on);
    const off = await server("off", PORTS[1], dirs, vars.ADMIN_TOKEN);
    servers.push(off);
    const rt = { on: await runtimeOf(on, PORTS[0]), off: await runtimeOf(off, PORTS[1]) };
    const pinned = CORES >= 2 && pin(rt.on.pid, 1) && pin(rt.off.pid, 1) && pin(process.pid, 0);
    console.log(`round ${round + 1}: servers started (${pinned ? "runtimes pinned to cpu 1, load generator to cpu 0" : "not pinned"}); load average ${load1()}`);
    for (const r of [rt.on, rt.off]) for (let i = 0; i < 50; i++) await fetch(`${r.url}/v1/models/credit-risk/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ features: rows[i] }) });
    for (const c of cases) for (const side of ["on", "off"] as const) await load(rt[side], c.body);
    for (const [i, c] of cases.entries()) {
      const res = results[i];
      const throughput: Pair[] = [];
      const cpu: Pair[] = [];
      for (let b = 0; b < BLOCKS; b++) {
        const t = { on: 0, off: 0 };
        const u = { on: 0, off: 0 };
        for (const side of ["on", "off", "off", "on"] as const) {
          const r = await load(rt[side], c.body);
          t[side] += r.rps / 2;
          u[side] += r.cpuUs / 2;
          res.errors += r.errors;
          res.requests[side] += r.requests;
        }
        throughput.push(t);
        cpu.push(u);
        console.log(`  ${c.name.padEnd(17)} round ${round + 1} block ${String(b + 1).padStart(2)}: on ${t.on.toFixed(0).padStart(5)} req/s ${u.on.toFixed(0).padStart(5)} us cpu/req, off ${t.off.toFixed(0).padStart(5)} req/s ${u.off.toFixed(0).padStart(5)} us cpu/req`);
      }
      res.throughput.push(throughput);
      res.cpu.push(cpu);
    }
    storage.push({ on: r2Usage(dirs[0]), off: r2Usage(dirs[1]) });
    loads.push(load1());
  } finally {
    for (const s of servers) await s.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}
for (const [i, c] of cases.entries()) {
  const { throughput, cpu, errors } = results[i];
  const o = overhead(throughput, (b) => 1 - b.on / b.off);
  const k = overhead(cpu, (b) => b.on / b.off - 1);
  console.log(
    `${c.name.padEnd(17)} throughput on ${mean(throughput.flat(), "on").toFixed(0)} vs off ${mean(throughput.flat(), "off").toFixed(0)} req/s: overhead ${pct(o.point)} (95% CI ${pct(o.lo)} .. ${pct(o.hi)}; target < 3%); by round: ${o.perRound.map(pct).join(", ")}\n` +
      `${"".padEnd(17)} cpu/request on ${mean(cpu.flat(), "on").toFixed(0)} vs off ${mean(cpu.flat(), "off").toFixed(0)} us: overhead ${pct(k.point)} (95% CI ${pct(k.lo)} .. ${pct(k.hi)}); by round: ${k.perRound.map(pct).join(", ")}; errors ${errors}`,
  );
}
console.log(`R2 storage after each round (on vs off; the archive's objects are the difference): ${storage.map((s) => `${s.on.files} files ${(s.on.bytes / 1024).toFixed(0)} KiB vs ${s.off.files} files ${(s.off.bytes / 1024).toFixed(0)} KiB`).join("; ")}`);
console.log(`load average (1, 5, 15 min) at the start and after each round: ${loads.join(" | ")} on ${CORES} cores`);
