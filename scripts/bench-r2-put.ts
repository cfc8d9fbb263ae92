/**
 * `npm run bench:r2-put`: what one R2 put of N bytes costs the local workerd process, the cost that
 * bench:archive and bench:stages charge to each payload-archive flush (src/retraining/archive.ts).
 *
 * Locally, R2 is Miniflare's implementation running inside the same workerd process as the worker,
 * so a put's CPU (the binding call, the simulator's checksum, blob write and SQLite metadata) all
 * lands on the process the benchmarks measure; deployed, only the binding call runs in the isolate.
 * This separates a put's fixed cost from its per-byte cost, which decides whether the archive
 * should put fewer, larger objects or smaller ones. One worker, requests one at a time (each puts N
 * bytes, or nothing for N = 0), the sizes interleaved in rounds, CPU from /proc over a fixed number
 * of requests; the median over rounds is printed with every round's figure. Pinned to one core.
 *
 * BENCH_ROUNDS (5), BENCH_REQUESTS (100 per size per round), BENCH_SIZES ("0,64,65536,262144,1048576"),
 * BENCH_PORT (8885).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import path from "node:path";
import { convertV4MiniflareOptions, Log, LogLevel, Miniflare } from "miniflare";
import { cpuSeconds, descendants, pin } from "./lib/workerd-process.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 100);
const SIZES = (process.env.BENCH_SIZES ?? "0,64,65536,262144,1048576").split(",").map(Number);
const PORT = Number(process.env.BENCH_PORT ?? 8885);

const script = `export default { async fetch(req, env) {
  const n = Number(new URL(req.url).searchParams.get("n"));
  const body = new Uint8Array(n);
  for (let i = 0; i < n; i += 97) body[i] = i & 255;
  if (n > 0) await env.B.put("k/" + crypto.randomUUID(), body);
  return new Response("ok");
} };`;
const dir = mkdtempSync(path.join(tmpdir(), "edge-ml-bench-r2-put-"));
const before = new Set(descendants(process.pid));
const mf = new Miniflare(convertV4MiniflareOptions({ host: "127.0.0.1", port: PORT, cf: false, log: new Log(LogLevel.WARN), resourcePersistencePath: dir, name: "r2-put", modules: true, script, compatibilityDate: "2026-11-01", r2Buckets: ["B"] } as never));
try {
  const url = (await mf.ready).href;
  const pid = descendants(process.pid).find((p) => !before.has(p) && readFileSync(`/proc/${p}/cmdline`, "utf8").includes("workerd"));
  if (pid === undefined) throw new Error("no workerd process found");
  const pinned = availableParallelism() >= 2 && pin(pid, 1) && pin(process.pid, 0);
  const get = async (n: number) => void (await (await fetch(`${url}?n=${n}`)).text());
  const cpu = new Map<number, number[]>(SIZES.map((n) => [n, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < SIZES.length; k++) {
      const n = SIZES[(k + round) % SIZES.length];
      for (let i = 0; i < 5; i++) await get(n);
      const c0 = cpuSeconds(pid);
      for (let i = 0; i < REQUESTS; i++) await get(n);
      cpu.get(n)!.push(((cpuSeconds(pid) - c0) * 1e6) / REQUESTS);
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const base = median(cpu.get(SIZES[0])!);
  console.log(`| bytes per put | workerd CPU µs per request | minus the ${SIZES[0]}-byte request | by round |`);
  console.log("|---|---|---|---|");
  for (const n of SIZES) console.log(`| ${n} | ${median(cpu.get(n)!).toFixed(0)} | ${(median(cpu.get(n)!) - base).toFixed(0)} | ${cpu.get(n)!.map((x) => x.toFixed(0)).join(", ")} |`);
  console.log(`\n${ROUNDS} rounds x ${REQUESTS} sequential requests per size; ${pinned ? "workerd pinned to cpu 1" : "not pinned"}; load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
} finally {
  await mf.dispose();
  rmSync(dir, { recursive: true, force: true });
}
