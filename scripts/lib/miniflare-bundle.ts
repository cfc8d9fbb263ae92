/**
 * The deployable bundle, run the way production runs it as closely as this machine allows: the
 * output of `wrangler deploy --dry-run --outdir` (exactly what `wrangler deploy` uploads) loaded
 * into workerd through Miniflare, with the bindings wrangler.toml declares (D1 with the migrations
 * applied, R2, KV, Durable Objects, Queues, Workflows, rate limiters) as wrangler itself translates
 * them (`unstable_getMiniflareWorkerOptions`). No inspector, no dev proxy, no live reload, no
 * `cf` fetch; workerd's log lines go to a handler that counts and drops them.
 *
 * Each `startWorker` is its own workerd process, so a benchmark can pin it to a core and read its
 * CPU time from /proc (scripts/lib/workerd-process.ts). Used by `npm run bench:compare`.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { convertV4MiniflareOptions, Log, LogLevel, Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions, unstable_splitSqlQuery } from "wrangler";
import { ROOT } from "./dev-server.ts";
import { descendants } from "./workerd-process.ts";

const WRANGLER = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");

/** Builds the upload bundle into `outdir` (index.js plus the onnxruntime .wasm module). */
export function buildBundle(outdir: string): void {
  const r = spawnSync(process.execPath, [WRANGLER, "deploy", "--dry-run", "--env=", "--outdir", outdir], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, CI: "true" } });
  if (r.status !== 0) throw new Error("wrangler deploy --dry-run failed");
}

export interface RunningWorker {
  url: string;
  /** The workerd process serving it (all its isolates, Durable Objects included). */
  pid: number;
  mf: Miniflare;
  /** Log lines workerd wrote (console output of the worker). */
  logLines(): number;
  stop(): Promise<void>;
}

function workerdPids(): Set<number> {
  return new Set(
    descendants(process.pid).filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").includes("workerd");
      } catch {
        return false;
      }
    }),
  );
}

async function start(port: number, options: Record<string, unknown>, persistTo?: string): Promise<RunningWorker> {
  let lines = 0;
  const before = workerdPids();
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      host: "127.0.0.1",
      port,
      cf: false,
      log: new Log(LogLevel.WARN),
      handleStructuredLogs: () => void lines++,
      ...(persistTo ? { resourcePersistencePath: persistTo } : {}),
      // For profiling runs only (scripts/profile.ts): the V8 inspector on this port.
      ...(process.env.BENCH_INSPECTOR_PORT ? { inspectorPort: Number(process.env.BENCH_INSPECTOR_PORT) } : {}),
      ...options,
    } as never),
  );
  const url = (await mf.ready).href.replace(/\/$/, "");
  const pid = [...workerdPids()].find((p) => !before.has(p));
  if (pid === undefined) {
    await mf.dispose();
    throw new Error("could not find the workerd process Miniflare started");
  }
  return { url, pid, mf, logLines: () => lines, stop: () => mf.dispose() };
}

/**
 * Runs the bundle in `bundleDir` with wrangler.toml's bindings. `vars` override [vars] and supply
 * the secrets; `persistTo` keeps D1/R2/KV/DO state on disk across instances (cold-start runs).
 */
let fromConfig: ReturnType<typeof unstable_getMiniflareWorkerOptions> | undefined;

/**
 * Durable Objects in another process (`startWorker`'s `objectsApart`): the worker named `script`,
 * started with the same `devRegistry` directory, serves the `bindings` named here (their classes
 * are the bundle's own), as Durable Objects run apart from the isolates calling them when deployed.
 */
export interface ObjectsApart {
  devRegistry: string;
  script: string;
  bindings: string[];
}

export async function startWorker(opts: {
  bundleDir: string;
  port: number;
  vars: Record<string, string>;
  persistTo?: string;
  migrate?: boolean;
  /** The worker's name (default edge-ml-runtime). */
  name?: string;
  /** A dev registry directory to announce this worker in (so another process can reach its Durable Objects). */
  devRegistry?: string;
  /** Durable Object bindings to serve from another process's worker instead of this one. */
  objectsApart?: ObjectsApart;
}): Promise<RunningWorker> {
  // Read once: wrangler warns about secrets missing from .dev.vars (the caller supplies them in `vars`).
  fromConfig ??= unstable_getMiniflareWorkerOptions(path.join(ROOT, "wrangler.toml"));
  const { workerOptions } = fromConfig;
  const modules = readdirSync(opts.bundleDir)
    .filter((f) => f.endsWith(".js") || f.endsWith(".wasm"))
    .sort((a, b) => Number(b === "index.js") - Number(a === "index.js"))
    .map((f) => ({ type: f.endsWith(".wasm") ? "CompiledWasm" : "ESModule", path: path.join(opts.bundleDir, f) }));
  const durableObjects: Record<string, unknown> = { ...(workerOptions.durableObjects ?? {}) };
  for (const b of opts.objectsApart?.bindings ?? []) durableObjects[b] = { ...(durableObjects[b] as object), scriptName: opts.objectsApart!.script };
  const worker = {
    ...workerOptions,
    durableObjects,
    name: opts.name ?? "edge-ml-runtime",
    modulesRules: undefined,
    modulesRoot: opts.bundleDir,
    modules,
    bindings: { ...(workerOptions.bindings ?? {}), ...opts.vars },
  };
  const registry = opts.devRegistry ?? opts.objectsApart?.devRegistry;
  const running = await start(opts.port, { workers: [worker], ...(registry ? { unsafeDevRegistryPath: registry } : {}) }, opts.persistTo);
  if (opts.migrate ?? true) await applyMigrations(running.mf);
  return running;
}

/** The ceiling: a one-line fetch handler in the same runtime and harness. */
export function startTrivialWorker(port: number): Promise<RunningWorker> {
  return start(port, { name: "trivial", modules: true, script: 'export default { fetch() { return new Response("ok"); } };', compatibilityDate: "2026-11-01" });
}

/** Applies migrations/*.sql in order to the worker's D1 database `DB` (what `wrangler d1 migrations apply` runs). */
async function applyMigrations(mf: Miniflare): Promise<void> {
  const db = await mf.getD1Database("DB");
  const dir = path.join(ROOT, "migrations");
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".sql")).sort()) {
    for (const statement of unstable_splitSqlQuery(readFileSync(path.join(dir, file), "utf8"))) await db.prepare(statement).run();
  }
}
