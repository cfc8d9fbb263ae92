/**
 * Shared by `npm start` and `npm run bench`: prepare local state (secrets file, D1 migrations),
 * start `wrangler dev`, wait until it answers, and register the demo models through the admin API.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
// wrangler runs on the Node running this script (the project's Node 22), whatever `node` PATH finds.
const WRANGLER = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");

/** Demo models registered at start, with the aliases they get on first registration. */
export const DEMO_MODELS = [
  { stem: "credit-risk-lr", aliases: ["champion"] },
  { stem: "credit-risk-gbt", aliases: ["challenger"] },
];

/** Reads .dev.vars, creating it with random local credentials if it does not exist. */
export function ensureDevVars(): Record<string, string> {
  const file = path.join(ROOT, ".dev.vars");
  if (!existsSync(file)) {
    const admin = randomBytes(24).toString("base64url");
    const key = randomBytes(24).toString("base64url");
    writeFileSync(file, `# Local secrets for wrangler dev (not committed).\nADMIN_TOKEN=${admin}\nAPI_KEYS=${key}\n# Empty: /metrics needs no token.\nMETRICS_TOKEN=\n`, { mode: 0o600 });
    console.log(`created .dev.vars with a random ADMIN_TOKEN and API key`);
  }
  const vars: Record<string, string> = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^\s*([A-Z_][A-Z0-9_]*)\s*=\s*(.*)\s*$/.exec(line);
    if (m) vars[m[1]] = m[2].replace(/^"(.*)"$/, "$1");
  }
  return vars;
}

export function applyMigrations(persistTo?: string) {
  const args = ["d1", "migrations", "apply", "DB", "--local", ...(persistTo ? ["--persist-to", persistTo] : [])];
  const result = spawnSync(process.execPath, [WRANGLER, ...args], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, CI: "true" } });
  if (result.status !== 0) throw new Error(`wrangler ${args.join(" ")} failed`);
}

export interface DevServer {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Polls `url`/health until it answers 2xx; kills `child` and throws if it exits first or `timeoutMs` passes. */
export async function waitForHealth(child: ChildProcess, url: string, what: string, timeoutMs: number, pollMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited before it was ready`);
    try {
      if ((await fetch(`${url}/health`)).ok) return;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill("SIGTERM");
      throw new Error(`${what} did not answer /health within ${timeoutMs / 1000} s`);
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

export async function startDevServer(opts: { port: number; persistTo?: string; vars?: Record<string, string>; quiet?: boolean; extraArgs?: string[] }): Promise<DevServer> {
  const args = ["dev", "--ip", "127.0.0.1", "--port", String(opts.port), "--show-interactive-dev-session=false", ...(opts.extraArgs ?? [])];
  if (opts.persistTo) args.push("--persist-to", opts.persistTo);
  for (const [k, v] of Object.entries(opts.vars ?? {})) args.push("--var", `${k}:${v}`);
  const child = spawn(process.execPath, [WRANGLER, ...args], { cwd: ROOT, stdio: opts.quiet ? ["ignore", "ignore", "inherit"] : ["ignore", "inherit", "inherit"], env: { ...process.env } });
  const url = `http://127.0.0.1:${opts.port}`;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await waitForHealth(child, url, "wrangler dev", 90_000, 300);
  return {
    url,
    child,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** Registers the demo models; an already registered version (409) is left as it is. */
export async function registerDemoModels(url: string, adminToken: string): Promise<void> {
  for (const { stem, aliases } of DEMO_MODELS) {
    const manifest = readFileSync(path.join(ROOT, "models", `${stem}.manifest.json`), "utf8");
    await registerModel(url, adminToken, manifest, readFileSync(path.join(ROOT, "models", `${stem}.onnx`)), aliases);
  }
}

/** Registers one model version through the admin API; an already registered version (409) is left as it is. */
export async function registerModel(url: string, adminToken: string, manifest: string, artifact: Uint8Array, aliases: string[], opts: { actor?: string; allowExisting?: boolean } = {}): Promise<void> {
  const form = new FormData();
  form.set("manifest", manifest);
  const { name, version } = JSON.parse(manifest) as { name: string; version: string };
  form.set("artifact", new Blob([artifact]), `${name}.onnx`);
  for (const alias of aliases) form.append("alias", alias);
  const res = await fetch(`${url}/admin/models/${name}/versions`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "x-actor": opts.actor ?? "npm-start" },
    body: form,
  });
  if (res.status === 201) console.log(`registered ${name}@${version}${aliases.length ? ` (${aliases.join(", ")})` : ""}`);
  else if (res.status === 409 && opts.allowExisting !== false) console.log(`${name}@${version} already registered`);
  else throw new Error(`registering ${name}@${version} failed: ${res.status} ${await res.text()}`);
}

/** A JSON admin call for the scripts: the parsed answer, or an Error naming the call and the answer. */
export async function adminApi(url: string, token: string, method: string, pathname: string, body?: unknown, actor?: string): Promise<any> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  if (actor) headers["x-actor"] = actor;
  const res = await fetch(`${url}${pathname}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = (await res.json()) as any;
  if (!res.ok) throw new Error(`${method} ${pathname}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** Gives `model` a retraining config whose payload archive keeps `sampleRate` of its predicted rows (benchmarks of the archive; the trainer is never called). */
export async function setArchiveSampleRate(url: string, token: string, model: string, sampleRate: number): Promise<void> {
  const config = { trainer_url: "https://trainer.example/train", trainer_secret: "bench-secret-0123456789abcdef0123456789", worker_url: "https://worker.example", sample_rate: sampleRate };
  await adminApi(url, token, "PUT", `/admin/retraining/${model}/config`, config);
}
