/**
 * Benchmark helpers that reach the workerd process behind `wrangler dev` (Linux only: /proc).
 *
 * `wrangler dev` runs two workerd processes: a proxy on the port it prints, and the runtime that
 * holds our worker and its Durable Objects on a random local port; the wrangler Node process also
 * logs each request. Load sent to the printed port therefore spends most of its CPU in the proxy and
 * the logger (measured here: ~780 + ~360 us of ~1,800 us per /health request), none of which exists
 * when deployed. `runtimeOf` finds the runtime's own port, so a benchmark can load the worker
 * directly, read the runtime's CPU time, and pin it to one core away from the load generator.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { DevServer } from "./dev-server.ts";

export interface RuntimeProcess {
  pid: number;
  /** The worker's own address, bypassing wrangler's proxy. */
  url: string;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** A /proc stat file (`/proc/<pid>` or `/proc/<pid>/task/<tid>`): the command name and the fields after it. */
function readStat(dir: string): { name: string; fields: string[] } {
  const stat = readFileSync(`${dir}/stat`, "utf8");
  return { name: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")), fields: stat.slice(stat.lastIndexOf(")") + 2).split(" ") };
}

/** Fields of /proc/<pid>/stat after the command name: [0] state, [1] ppid, ..., [11] utime, [12] stime. */
function statFields(pid: number | string): string[] {
  return readStat(`/proc/${pid}`).fields;
}

/** utime + stime of a stat file's fields, in seconds. */
const cpuOf = (f: string[]) => (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (Number(statFields(entry)[1]) === pid) out.push(Number(entry));
    } catch {
      /* exited */
    }
  }
  return out;
}

/** Every process below `pid` (children, their children, ...). */
export function descendants(pid: number): number[] {
  const kids = childrenOf(pid);
  return kids.concat(...kids.map(descendants));
}

/**
 * TCP ports the process listens on (from /proc/net/tcp and its socket file descriptors), in the
 * order their sockets were opened: workerd opens the `entry` socket first, so probing in this order
 * reaches it before any internal (Cap'n Proto) socket, which would log a warning on an HTTP probe.
 */
function listeningPorts(pid: number): number[] {
  const fdOf = new Map<string, number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) fdOf.set(m[1], Number(fd));
    } catch {
      /* closed meanwhile */
    }
  }
  const found: { fd: number; port: number }[] = [];
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && f[3] === "0A" && fdOf.has(f[9])) found.push({ fd: fdOf.get(f[9])!, port: parseInt(f[1].split(":")[1], 16) });
  }
  return found.sort((a, b) => a.fd - b.fd).map((x) => x.port);
}

/** The workerd process running the worker under `server`, and the port that reaches it directly. */
export async function runtimeOf(server: DevServer, port: number): Promise<RuntimeProcess> {
  const workerds = descendants(server.child.pid!).filter((p) => {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, "utf8");
      return cmd.includes("workerd") && !cmd.includes(`entry=127.0.0.1:${port}`);
    } catch {
      return false;
    }
  });
  for (const pid of workerds) {
    for (const candidate of listeningPorts(pid)) {
      const url = `http://127.0.0.1:${candidate}`;
      try {
        const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
        if (res.ok && ((await res.json()) as { status?: string }).status === "ok") return { pid, url };
      } catch {
        /* not the worker's entry socket */
      }
    }
  }
  throw new Error("could not find the workerd runtime behind wrangler dev");
}

/** User + system CPU seconds the process has used so far. */
export function cpuSeconds(pid: number): number {
  return cpuOf(statFields(pid));
}

/** System (kernel) CPU seconds the process has used so far: syscalls, such as local storage writes. */
export function systemCpuSeconds(pid: number): number {
  return Number(statFields(pid)[12]) / CLOCK_TICKS;
}

/**
 * CPU seconds of each thread group of `pid`, by thread name with trailing digits dropped (workerd's
 * main thread, V8's background GC workers, ...): where a process-wide difference is spent.
 */
export function threadCpuSeconds(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const { name, fields } = readStat(`/proc/${pid}/task/${tid}`);
      const group = name.replace(/\d+$/, "");
      out.set(group, (out.get(group) ?? 0) + cpuOf(fields));
    } catch {
      /* thread exited */
    }
  }
  return out;
}

/** Pins every thread of `pid` to `cpu` (util-linux taskset); false when taskset is missing. */
export function pin(pid: number, cpu: number): boolean {
  return spawnSync("taskset", ["-a", "-cp", String(cpu), String(pid)], { stdio: "ignore" }).status === 0;
}
