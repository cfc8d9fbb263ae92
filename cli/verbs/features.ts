/**
 * `eml features …`: the feature store from the command line (src/features/routes.ts).
 *   define FILE.json | --body JSON        POST /admin/features/definitions
 *   list --group G                         every version of every feature of the group
 *   retire GROUP NAME [--version N]        one version, or all of them
 *   load FILE --group G --entity-column C [--time-column T] [--max-rejected N] [--wait]
 *                                          uploads a CSV/NDJSON file; --wait follows the load
 *   loads --group G                        recent loads of a group
 *   get ENTITY --group G --features a,b [--as-of T]
 */
import { Api } from "../api.ts";
import type { Config } from "../config.ts";
import { bytes, dataType, fields, jsonArg, positiveInt, sleep, table, type Log } from "./output.ts";
import { withProgressLine } from "../progress.ts";

export interface FeatureFlags {
  group?: string;
  body?: string;
  version?: string;
  "entity-column"?: string;
  "time-column"?: string;
  "max-rejected"?: string;
  wait?: boolean;
  features?: string[];
  "as-of"?: string;
  json?: boolean;
  /** Poll interval while waiting (ms); tests shorten it. */
  pollMs?: number;
}

type Definition = { group: string; name: string; version: number; kind: string; dtype: string; status: string; ttl_seconds?: number | null; expression?: string; aggregate?: unknown; description?: string | null };
type Load = { id: string; group: string; status: string; progress: { bytes_done: number; bytes_total: number; fraction: number }; rows_loaded: number; rows_rejected: number; rejected?: { row: number; message: string }[]; error?: string; created_at: string };

const need = (v: string | undefined, what: string): string => {
  if (!v) throw new Error(what);
  return v;
};
const names = (v: string[] | undefined) => (v ?? []).flatMap((s) => s.split(",")).map((s) => s.trim()).filter(Boolean);

/** The HTTP request a `features` verb makes (method, path, JSON body), for the verbs that send JSON. */
export function featureRequest(sub: string | undefined, args: string[], flags: FeatureFlags): { method: string; path: string; body?: unknown } {
  const group = () => encodeURIComponent(need(flags.group, `features ${sub} needs --group G`));
  switch (sub) {
    case "define":
      return { method: "POST", path: "/admin/features/definitions", body: jsonArg(args[0] ?? flags.body, "features define FILE.json (or --body JSON)") };
    case "list":
      return { method: "GET", path: `/admin/features/definitions?group=${group()}` };
    case "loads":
      return { method: "GET", path: `/admin/features/loads?group=${group()}` };
    case "retire": {
      const [g, name] = args;
      if (!g || !name) throw new Error("features retire GROUP NAME [--version N]");
      const version = positiveInt(flags.version, "version");
      return { method: "POST", path: `/admin/features/definitions/${encodeURIComponent(g)}/${encodeURIComponent(name)}/retire`, body: version === undefined ? {} : { version } };
    }
    case "get": {
      const entity = need(args[0], "features get ENTITY --group G --features a,b");
      const wanted = names(flags.features);
      if (!wanted.length) throw new Error("features get needs --features a,b (the features to read)");
      const asOf = flags["as-of"];
      return { method: "POST", path: "/v1/features/get", body: { group: need(flags.group, "features get needs --group G"), entity_id: entity, features: wanted, ...(asOf ? { as_of: /^\d+$/.test(asOf) ? Number(asOf) : asOf } : {}) } };
    }
    default:
      throw new Error(`features: unknown or missing sub-command '${sub ?? ""}'; one of define, list, retire, load, loads, get`);
  }
}

function describeLoad(l: Load): string {
  const pct = (l.progress.fraction * 100).toFixed(0);
  return `load ${l.id} ${l.status}: ${pct}% of ${bytes(l.progress.bytes_total)}, ${l.rows_loaded} rows loaded, ${l.rows_rejected} rejected${l.error ? ` (${l.error})` : ""}`;
}

export async function features(config: Config, sub: string | undefined, args: string[], flags: FeatureFlags, log: Log = console.log): Promise<void> {
  const api = new Api(config);
  if (sub === "load") {
    const file = need(args[0], "features load FILE --group G --entity-column C [--time-column T] [--max-rejected N] [--wait]");
    const { contentType } = dataType(file);
    const q = new URLSearchParams({ group: need(flags.group, "features load needs --group G"), entity_column: need(flags["entity-column"], "features load needs --entity-column C") });
    if (flags["time-column"]) q.set("time_column", flags["time-column"]);
    const maxRejected = positiveInt(flags["max-rejected"], "max-rejected");
    if (maxRejected !== undefined) q.set("max_rejected", String(maxRejected));
    let load = await withProgressLine((progress) => api.upload<Load>(`/admin/features/loads?${q}`, file, contentType, progress), (flags as { quiet?: boolean }).quiet);
    if (flags.json && !flags.wait) return log(JSON.stringify(load, null, 2));
    log(describeLoad(load));
    if (!flags.wait) return log(`follow it: eml features loads --group ${load.group}  (or --wait)`);
    while (load.status !== "succeeded" && load.status !== "failed") {
      await sleep(flags.pollMs ?? 1000);
      load = await api.get<Load>(`/admin/features/loads/${encodeURIComponent(load.id)}`);
      process.stderr.write(`\r${describeLoad(load)}   `);
    }
    process.stderr.write("\n");
    if (flags.json) log(JSON.stringify(load, null, 2));
    else {
      log(describeLoad(load));
      if (load.rejected?.length) log(table(load.rejected, [["row", (r) => r.row], ["rejected because", (r) => r.message]]));
    }
    if (load.status === "failed") throw new Error(`load ${load.id} failed${load.error ? `: ${load.error}` : ""}`);
    return;
  }
  const req = featureRequest(sub, args, flags);
  const res = await api.request<any>(req.method, req.path, req.body);
  if (flags.json) return log(JSON.stringify(res, null, 2));
  switch (sub) {
    case "define":
      return log(`${res.group}.${res.name} version ${res.version} (${res.kind}, ${res.dtype}) ${res.status}`);
    case "list":
      return log(table<Definition>(res.definitions, [["name", (d) => d.name], ["version", (d) => d.version], ["kind", (d) => d.kind], ["dtype", (d) => d.dtype], ["status", (d) => d.status], ["ttl_s", (d) => d.ttl_seconds], ["description", (d) => d.description]]));
    case "retire":
      return log(table<Definition>(res.versions, [["name", (d) => d.name], ["version", (d) => d.version], ["status", (d) => d.status]]));
    case "loads":
      return log(table<Load>(res.loads, [["id", (l) => l.id], ["status", (l) => l.status], ["done", (l) => `${(l.progress.fraction * 100).toFixed(0)}%`], ["rows", (l) => l.rows_loaded], ["rejected", (l) => l.rows_rejected], ["created", (l) => l.created_at]]));
    case "get": {
      log(fields([["group", res.group], ["entity", res.entity_id]]));
      const rows = Object.keys(res.values).map((f) => ({ f, v: res.values[f], s: res.sources[f], fb: res.fell_back.includes(f) }));
      return log(table(rows, [["feature", (r) => r.f], ["value", (r) => r.v], ["source", (r) => r.s], ["fallback", (r) => (r.fb ? "yes" : "")]]));
    }
  }
}
