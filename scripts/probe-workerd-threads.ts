/**
 * `npm run probe:workerd-threads`: does the local runtime run two Workers (two scripts, so two
 * isolates) at the same time on different threads? The question decides whether moving shadow
 * scoring into a second Worker could take its CPU off the callers' path under `wrangler dev` /
 * `npm start`, which run every Worker of a session in one workerd process.
 *
 * It writes two trivial Workers and runs them with the workerd binary wrangler uses, in three
 * layouts: both Workers in one workerd process (as `wrangler dev -c a.toml -c b.toml`, Miniflare's
 * `workers: [...]` and the vitest plugin do), each in its own process, and (control) one Worker.
 * Worker A's /busy spins the CPU for BUSY_MS (200 ms); 50 ms after starting it, a trivial /ping is
 * timed, to A itself (same isolate) or to B. A fourth layout is `wrangler dev -c a.toml -c b.toml`
 * itself (port PROBE_PORT + 2): there only the first Worker has a port, so A's /b-busy makes B spin
 * through a service binding (A only awaits I/O meanwhile) and A's /ping is timed. A ping that waits ~150 ms waited for the busy loop; one
 * of a few ms ran beside it. Also printed: the workerd process's threads (from /proc). Ports
 * PROBE_PORT and PROBE_PORT + 1 (default 8874, 8875). Prints findings, asserts nothing.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { ROOT } from "./lib/dev-server.ts";

const PORT = Number(process.env.PROBE_PORT ?? 8874);
const BUSY_MS = 200;
const TRIALS = 5;
/** The workerd binary wrangler runs (its own copy when it pins a different version). */
const WORKERD = ["node_modules/wrangler/node_modules/workerd/bin/workerd", "node_modules/workerd/bin/workerd"].map((p) => path.join(ROOT, p)).find((p) => existsSync(p))!;
const WRANGLER = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");

const WORKER = `export default {
  async fetch(request) {
    if (new URL(request.url).pathname === "/busy") {
      const end = Date.now() + ${BUSY_MS}; // the clock advances during CPU work locally
      let spins = 0;
      while (Date.now() < end) spins++;
      return new Response("busy " + spins);
    }
    return new Response("ping");
  },
};
`;

const workerConfig = (name: string) => `const ${name} :Workerd.Worker = (modules = [(name = "${name}.js", esModule = embed "${name}.js")], compatibilityDate = "2025-01-01");`;

/** A capnp config serving each named Worker on its own port (in the order given). */
function config(workers: { name: string; port: number }[]): string {
  return [
    `using Workerd = import "/workerd/workerd.capnp";`,
    `const config :Workerd.Config = (`,
    `  services = [${workers.map((w) => `(name = "${w.name}", worker = .${w.name})`).join(", ")}],`,
    `  sockets = [${workers.map((w) => `(name = "${w.name}", address = "127.0.0.1:${w.port}", http = (), service = "${w.name}")`).join(", ")}],`,
    `);`,
    ...workers.map((w) => workerConfig(w.name)),
  ].join("\n");
}

const dir = mkdtempSync(path.join(tmpdir(), "edge-ml-probe-"));
const children: ChildProcess[] = [];

async function serve(file: string, text: string, ports: number[]): Promise<ChildProcess> {
  writeFileSync(path.join(dir, file), text);
  const child = spawn(WORKERD, ["serve", file], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  children.push(child);
  for (let i = 0; i < 100; i++) {
    const up = await Promise.all(ports.map((p) => fetch(`http://127.0.0.1:${p}/ping`).then((r) => r.ok, () => false)));
    if (up.every(Boolean)) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`workerd (${file}) did not answer on ${ports.join(", ")}`);
}

/** Milliseconds a /ping to `pingPort` takes when sent 50 ms after a /busy to `busyPort` started. */
async function pingDuringBusy(busyPort: number, pingPort: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const busy = fetch(`http://127.0.0.1:${busyPort}/busy`).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 50));
    const t = performance.now();
    await (await fetch(`http://127.0.0.1:${pingPort}/ping`)).text();
    out.push(performance.now() - t);
    await busy;
  }
  return out;
}

/** Milliseconds of `TRIALS` serial /ping requests with nothing else running. */
async function idlePings(port: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const t = performance.now();
    await (await fetch(`http://127.0.0.1:${port}/ping`)).text();
    out.push(performance.now() - t);
  }
  return out;
}

const threadsOf = (pid: number) => readdirSync(`/proc/${pid}/task`).map((tid) => readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim());
const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(", ");

try {
  writeFileSync(path.join(dir, "a.js"), WORKER);
  writeFileSync(path.join(dir, "b.js"), WORKER);
  console.log(`workerd ${path.relative(ROOT, WORKERD)}, /busy spins ${BUSY_MS} ms, ${TRIALS} trials each, load1 ${loadavg()[0].toFixed(2)}`);

  const both = await serve("both.capnp", config([{ name: "a", port: PORT }, { name: "b", port: PORT + 1 }]), [PORT, PORT + 1]);
  console.log(`one process, Workers a and b: threads ${JSON.stringify(threadsOf(both.pid!))}`);
  console.log(`  ping b (other Worker, other isolate) during a's busy loop: ${fmt(await pingDuringBusy(PORT, PORT + 1))} ms`);
  console.log(`  ping a (same isolate) during a's busy loop:                ${fmt(await pingDuringBusy(PORT, PORT))} ms`);
  console.log(`  ping b with nothing busy:                                  ${fmt(await idlePings(PORT + 1))} ms`);
  both.kill("SIGTERM");
  await new Promise((r) => both.once("exit", r));

  await serve("a.capnp", config([{ name: "a", port: PORT }]), [PORT]);
  await serve("b.capnp", config([{ name: "b", port: PORT + 1 }]), [PORT + 1]);
  console.log(`two processes, a and b in their own:`);
  console.log(`  ping b during a's busy loop: ${fmt(await pingDuringBusy(PORT, PORT + 1))} ms`);

  // wrangler dev with two configs: B is reached only through A's service binding.
  writeFileSync(path.join(dir, "front.js"), `export default { async fetch(request, env) {
  if (new URL(request.url).pathname === "/b-busy") return env.B.fetch("http://b/busy");
  return new Response("ping");
} };\n`);
  writeFileSync(path.join(dir, "front.toml"), `name = "probe-a"\nmain = "front.js"\ncompatibility_date = "2025-01-01"\n[[services]]\nbinding = "B"\nservice = "probe-b"\n`);
  writeFileSync(path.join(dir, "back.toml"), `name = "probe-b"\nmain = "b.js"\ncompatibility_date = "2025-01-01"\n`);
  const devPort = PORT + 2;
  const dev = spawn(process.execPath, [WRANGLER, "dev", "-c", "front.toml", "-c", "back.toml", "--ip", "127.0.0.1", "--port", String(devPort), "--show-interactive-dev-session=false"], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  children.push(dev);
  let up = false;
  for (let i = 0; i < 600 && !up; i++) {
    up = await fetch(`http://127.0.0.1:${devPort}/ping`).then((r) => r.ok, () => false);
    if (!up) await new Promise((r) => setTimeout(r, 100));
  }
  if (!up) throw new Error("wrangler dev -c front.toml -c back.toml did not start");
  const viaBinding: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const busy = fetch(`http://127.0.0.1:${devPort}/b-busy`).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 50));
    const t = performance.now();
    await (await fetch(`http://127.0.0.1:${devPort}/ping`)).text();
    viaBinding.push(performance.now() - t);
    await busy;
  }
  console.log(`wrangler dev -c a.toml -c b.toml (one session):`);
  console.log(`  ping a while b spins (called through a's service binding): ${fmt(viaBinding)} ms`);
} finally {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
}
