/**
 * `eml retraining …`: the retraining loop from the command line (src/retraining/routes.ts).
 *   config MODEL [FILE.json | --body JSON]  show the configuration (secret redacted), or set it
 *   triggers list MODEL                     each trigger with its last evaluation
 *   triggers define MODEL FILE.json | --body JSON
 *   triggers delete MODEL ID
 *   triggers fire MODEL --reason R          retrain now (a manual trigger; no cool-down)
 *   jobs list MODEL [--state S] [--limit N]
 *   jobs status ID                          the job and its event history
 *   jobs cancel ID [--reason R]
 *   report ID                               the champion/challenger comparison
 */
import { Api } from "../api.ts";
import type { Config } from "../config.ts";
import { fields, jsonArg, positiveInt, table, type Log } from "./output.ts";

export interface RetrainingFlags {
  body?: string;
  reason?: string;
  state?: string;
  limit?: string;
  json?: boolean;
}

type Job = { id: string; model: string; state: string; active: boolean; trigger: { id: string | null; type: string }; reason: string | null; champion_version: string | null; candidate_version: string | null; deployment_id: string | null; error: string | null; created_at: string; finished_at: string | null };
type Event = { revision: number; at: string; actor: string; action: string; from: string | null; to: string | null; details: unknown };
type Trigger = { id: string; type: string; enabled: boolean; last_fired_at: string | null; last_evaluation: unknown } & Record<string, unknown>;

const enc = encodeURIComponent;
const USAGE = "retraining config MODEL [FILE.json], retraining triggers list|define|delete|fire MODEL …, retraining jobs list MODEL | status ID | cancel ID, retraining report ID";

/** The HTTP request a `retraining` verb makes: method, path and JSON body. */
export function retrainingRequest(args: string[], flags: RetrainingFlags): { method: string; path: string; body?: unknown; shows: string } {
  const [group, a, b, c] = args;
  const need = (v: string | undefined, what: string) => {
    if (!v) throw new Error(`retraining ${what}`);
    return v;
  };
  if (group === "triggers") {
    switch (a) {
      case "list":
        return { method: "GET", path: `/admin/retraining/${enc(need(b, "triggers list MODEL"))}/triggers`, shows: "triggers" };
      case "define":
        return { method: "POST", path: `/admin/retraining/${enc(need(b, "triggers define MODEL FILE.json (or --body JSON)"))}/triggers`, body: jsonArg(c ?? flags.body, "retraining triggers define MODEL FILE.json (or --body JSON)"), shows: "trigger" };
      case "delete":
        return { method: "DELETE", path: `/admin/retraining/${enc(need(b, "triggers delete MODEL ID"))}/triggers/${enc(need(c, "triggers delete MODEL ID"))}`, shows: "deleted" };
      case "fire":
        return { method: "POST", path: `/admin/retraining/${enc(need(b, "triggers fire MODEL --reason R"))}/jobs`, body: { reason: need(flags.reason, "triggers fire needs --reason R (why retrain now)") }, shows: "job" };
    }
  } else if (group === "jobs") {
    switch (a) {
      case "list": {
        const q = new URLSearchParams();
        if (flags.state) q.set("state", flags.state);
        const limit = positiveInt(flags.limit, "limit");
        if (limit !== undefined) q.set("limit", String(limit));
        return { method: "GET", path: `/admin/retraining/${enc(need(b, "jobs list MODEL"))}/jobs${q.size ? `?${q}` : ""}`, shows: "jobs" };
      }
      case "status":
        return { method: "GET", path: `/admin/retraining/jobs/${enc(need(b, "jobs status ID"))}`, shows: "status" };
      case "cancel":
        return { method: "POST", path: `/admin/retraining/jobs/${enc(need(b, "jobs cancel ID"))}/cancel`, body: flags.reason ? { reason: flags.reason } : {}, shows: "job" };
    }
  } else if (group === "config") {
    const model = enc(need(a, "config MODEL [FILE.json | --body JSON]"));
    const body = b ?? flags.body;
    return body === undefined ? { method: "GET", path: `/admin/retraining/${model}/config`, shows: "config" } : { method: "PUT", path: `/admin/retraining/${model}/config`, body: jsonArg(body, "retraining config MODEL FILE.json (or --body JSON)"), shows: "config" };
  } else if (group === "report") {
    return { method: "GET", path: `/admin/retraining/jobs/${enc(need(a, "report ID"))}/report`, shows: "report" };
  }
  throw new Error(`retraining: unknown or missing sub-command '${[group, a].filter(Boolean).join(" ")}'; ${USAGE}`);
}

type MetricRow = { metric: string; direction: string; role: string; requirement: Record<string, number>; champion: number | null; candidate: number | null; delta: number | null; interval: { lower: number | null; upper: number | null }; verdict: string };
type Report = { passed: boolean; reasons: string[]; oot: Record<string, number>; champion: { version: string | null }; candidate: { version: string }; metrics?: MetricRow[]; alpha?: number; bootstrap?: { iterations: number; seed: number }; min_oot_samples: number; compared_at: string };

/** The comparison report as text: the verdict, the OOT set, then one line per business metric. */
export function reportText(r: Report): string {
  const head = fields([
    ["verdict", r.passed ? "passed" : "rejected"],
    ["champion", r.champion.version],
    ["candidate", r.candidate.version],
    ["oot rows", Object.entries(r.oot).map(([k, v]) => `${k} ${v}`).join(", ")],
    ["rule", r.alpha === undefined ? `min ${r.min_oot_samples} rows` : `one-sided alpha ${r.alpha}, ${r.bootstrap?.iterations} paired bootstrap resamples (seed ${r.bootstrap?.seed}), min ${r.min_oot_samples} rows`],
    ["compared", r.compared_at],
  ]);
  const need = (m: MetricRow) => ("min_improvement" in m.requirement ? `better by > ${m.requirement.min_improvement}` : `worse by <= ${m.requirement.max_degradation}`);
  const metrics = r.metrics?.length
    ? table<MetricRow>(r.metrics, [["metric", (m) => m.metric], ["better", (m) => m.direction], ["role", (m) => m.role], ["requirement", need], ["champion", (m) => m.champion], ["candidate", (m) => m.candidate], ["delta", (m) => m.delta], ["bounds", (m) => (m.interval.lower === null ? null : `[${m.interval.lower}, ${m.interval.upper}]`)], ["verdict", (m) => m.verdict]])
    : "";
  return [head, "", ...(metrics ? [metrics, ""] : []), ...r.reasons.map((x) => `- ${x}`)].join("\n");
}

const jobFields = (j: Job) =>
  fields([["job", j.id], ["model", j.model], ["state", `${j.state}${j.active ? "" : " (finished)"}`], ["trigger", j.trigger.type], ["reason", j.reason], ["champion", j.champion_version], ["candidate", j.candidate_version], ["deployment", j.deployment_id], ["error", j.error], ["created", j.created_at], ["finished", j.finished_at]]);

export async function retraining(config: Config, args: string[], flags: RetrainingFlags, log: Log = console.log): Promise<void> {
  const req = retrainingRequest(args, flags);
  const res = await new Api(config).request<any>(req.method, req.path, req.body);
  if (flags.json) return log(JSON.stringify(res, null, 2));
  switch (req.shows) {
    case "triggers":
      return log(table<Trigger>(res.triggers, [["id", (t) => t.id], ["type", (t) => t.type], ["enabled", (t) => (t.enabled ? "yes" : "no")], ["settings", (t) => Object.fromEntries(Object.entries(t).filter(([k]) => !["id", "type", "enabled", "last_fired_at", "last_evaluation"].includes(k)))], ["last_fired", (t) => t.last_fired_at], ["last_evaluation", (t) => t.last_evaluation]]));
    case "config":
      return log(fields(Object.entries(res)));
    case "trigger":
      return log(`trigger ${res.id} (${res.type}) defined for ${res.model}`);
    case "deleted":
      return log(`trigger ${res.deleted} deleted`);
    case "job":
      return log(jobFields(res.job));
    case "jobs":
      return log(table<Job>(res.jobs, [["job", (j) => j.id], ["state", (j) => j.state], ["trigger", (j) => j.trigger.type], ["champion", (j) => j.champion_version], ["candidate", (j) => j.candidate_version], ["created", (j) => j.created_at], ["finished", (j) => j.finished_at]]));
    case "status":
      log(jobFields(res.job));
      log("");
      return log(table<Event>(res.events, [["#", (e) => e.revision], ["at", (e) => e.at], ["action", (e) => e.action], ["from", (e) => e.from], ["to", (e) => e.to], ["actor", (e) => e.actor], ["details", (e) => e.details]]));
    case "report":
      log(`job ${res.job} ${res.state}`);
      return log(res.report == null ? "no report yet (it is written when the candidate has been validated)" : reportText(res.report));
  }
}
