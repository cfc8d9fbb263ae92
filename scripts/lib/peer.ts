/**
 * The FastAPI peer (scripts/peer/server.py) for `npm run bench:compare`: checks that Debian's
 * python3-fastapi, python3-uvicorn and python3-sklearn are importable by the system Python,
 * installs them with apt-get when they are not (as root, or through sudo; otherwise it stops and
 * prints the command), starts one uvicorn worker and waits until it answers.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { ROOT, waitForHealth } from "./dev-server.ts";

/** The Debian packages' interpreter: a pyenv or venv `python3` earlier on PATH would not see them. */
const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
const PACKAGES = ["python3-fastapi", "python3-uvicorn", "python3-sklearn"];

const importable = () => spawnSync(PYTHON, ["-c", "import fastapi, uvicorn, sklearn, numpy"], { stdio: "ignore" }).status === 0;

/** Makes sure the peer's packages are there; throws with the exact command when it cannot install them. */
export function ensurePeerPackages(): void {
  if (importable()) return;
  const command = ["apt-get", "install", "-y", "--no-install-recommends", ...PACKAGES];
  const root = process.getuid?.() === 0;
  const hasSudo = spawnSync("sh", ["-c", "command -v sudo"], { stdio: "ignore" }).status === 0;
  const printable = `${root ? "" : "sudo "}${command.join(" ")}`;
  if (!root && !hasSudo) throw new Error(`the FastAPI peer needs Debian packages; install them with: ${printable}`);
  console.log(`installing the FastAPI peer's packages: ${printable}`);
  const r = spawnSync(root ? command[0] : "sudo", root ? command.slice(1) : command, { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  if (r.status !== 0 || !importable()) throw new Error(`installing the peer's packages failed; run: ${printable}`);
}

export interface Peer {
  url: string;
  pid: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts scripts/peer/server.py (trains its model at start-up, a few seconds) and waits for /health. */
export async function startPeer(port: number): Promise<Peer> {
  const child = spawn(PYTHON, [path.join(ROOT, "scripts/peer/server.py"), "--port", String(port)], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  await waitForHealth(child, url, "the FastAPI peer", 120_000, 250);
  return {
    url,
    pid: child.pid!,
    child,
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
