/**
 * Day-to-day verbs over the admin and monitoring APIs, printed as tables (or the API's JSON with
 * --json): models, versions, aliases, promote (move an alias), deployments
 * create/start/pause/resume/promote/rollback/abort/status, and monitoring summary/drift/
 * performance/alerts. Each is one or two API calls; errors surface as the API states them.
 */
import { readFileSync } from "node:fs";
import { Api } from "../api.ts";
import { table } from "./output.ts";
import type { Verb, VerbContext } from "./index.ts";

type Any = Record<string, any>;
const enc = encodeURIComponent;

function need(args: string[], n: number, usage: string): string[] {
  if (args.length < n) throw new Error(`usage: eml ${usage}`);
  return args;
}

function out(ctx: VerbContext, json: unknown, render: () => string) {
  console.log(ctx.flags.json ? JSON.stringify(json, null, 2) : render());
}

const reason = (ctx: VerbContext) => (ctx.flags.reason ? { reason: String(ctx.flags.reason) } : {});

export const models: Verb = async (ctx) => {
  const res = await new Api(ctx.config).get<Any>("/admin/models");
  out(ctx, res, () => table(res.models, ["name", "description", "created_at", "created_by"], 48));
};

/**
 * eml versions MODEL: the versions table. eml versions archive|restore MODEL VERSION [--reason R]:
 * archive a version, or bring an archived one back to registered (the API answers 409 when its
 * artifact is gone from R2); restore --alias A also points alias A at it, in the same transaction. Three arguments mark the sub-verb, so a model named "restore" still lists.
 */
export const versions: Verb = async (ctx) => {
  const [sub, model, version] = ctx.args;
  if ((sub === "archive" || sub === "restore") && ctx.args.length === 3) {
    const alias = sub === "restore" ? (ctx.flags.alias as string[] | undefined)?.[0] : undefined;
    const res = await new Api(ctx.config).post<Any>(`/admin/models/${enc(model)}/versions/${enc(version)}/${sub}`, { ...reason(ctx), ...(alias ? { alias } : {}) });
    return out(ctx, res, () => `${model}@${version}: ${res.status}${alias ? ` (alias ${alias})` : ""}`);
  }
  if (ctx.args.length > 1) throw new Error("usage: eml versions MODEL | versions archive MODEL VERSION [--reason R] | versions restore MODEL VERSION [--alias A] [--reason R]");
  const [name] = need(ctx.args, 1, "versions MODEL");
  const res = await new Api(ctx.config).get<Any>(`/admin/models/${enc(name)}`);
  const aliasesOf = (v: string) => Object.entries(res.aliases as Record<string, string>).filter(([, x]) => x === v).map(([a]) => a).join(",");
  out(ctx, res, () =>
    table(
      res.versions.map((v: Any) => ({ ...v, aliases: aliasesOf(v.version), auc: v.metrics.auc, ks: v.metrics.ks, rmse: v.metrics.rmse })),
      ["version", "status", "task", "environment", "aliases", "auc", "ks", "rmse", "created_at"],
      48,
    ),
  );
};

export const aliases: Verb = async (ctx) => {
  const [name] = need(ctx.args, 1, "aliases MODEL");
  const res = await new Api(ctx.config).get<Any>(`/admin/models/${enc(name)}`);
  out(ctx, res.aliases, () => table(Object.entries(res.aliases).map(([alias, version]) => ({ alias, version })), ["alias", "version"], 48));
};

/** eml promote MODEL VERSION [--alias champion] [--reason R]: points the alias at the version. */
export const promote: Verb = async (ctx) => {
  const [name, version] = need(ctx.args, 2, "promote MODEL VERSION [--alias ALIAS] [--reason R]");
  const alias = (ctx.flags.alias as string[] | undefined)?.[0] ?? "champion";
  const res = await new Api(ctx.config).put<Any>(`/admin/models/${enc(name)}/aliases/${enc(alias)}`, { version, ...reason(ctx) });
  out(ctx, res, () => `${name}: ${alias} -> ${version}`);
};

function deploymentSummary(d: Any): string {
  const variants = (d.variants as Any[]).map((v) => `${v.name}=${v.version}${v.weight !== undefined ? ` ${v.weight}%` : ""}`).join(", ");
  const lines = [
    table([d], ["id", "model", "strategy", "state", "revision", "validation_status"], 48),
    `variants: ${variants}`,
  ];
  const c = d.config ?? {};
  if (c.steps) lines.push(`canary step ${Number(c.step ?? 0) + 1}/${c.steps.length} (steps ${c.steps.join(" -> ")}), step started ${d.step_started_at}`);
  if (c.last_analysis) lines.push(`last verdict: ${c.last_analysis.decision} at ${c.last_analysis.at}: ${(c.last_analysis.reasons ?? []).join("; ")}`);
  return lines.join("\n");
}

/** eml deployments [list|create|start|pause|resume|promote|rollback|abort|status|history] … */
export const deployments: Verb = async (ctx) => {
  const api = new Api(ctx.config);
  const [sub = "list", id] = ctx.args;
  if (sub === "list") {
    const q = new URLSearchParams();
    if (ctx.flags.model) q.set("model", String(ctx.flags.model));
    if (ctx.flags.state) q.set("state", String(ctx.flags.state));
    const res = await api.get<Any>(`/admin/deployments${q.size ? `?${q}` : ""}`);
    return out(ctx, res, () => table(res.deployments.map((d: Any) => ({ ...d, variants: d.variants.map((v: Any) => `${v.name}=${v.version}${v.weight !== undefined ? `:${v.weight}` : ""}`).join(" ") })), ["id", "model", "strategy", "state", "variants", "updated_at"], 60));
  }
  if (sub === "create") {
    const body = ctx.flags.body ? JSON.parse(String(ctx.flags.body).startsWith("@") ? readFileSync(String(ctx.flags.body).slice(1), "utf8") : String(ctx.flags.body)) : undefined;
    if (!body) throw new Error(`usage: eml deployments create --body '{"model":…,"strategy":…}' (or --body @file.json)`);
    const res = await api.post<Any>("/admin/deployments", body);
    return out(ctx, res, () => deploymentSummary(res.deployment));
  }
  if (!id) throw new Error(`usage: eml deployments ${sub} ID`);
  const base = `/admin/deployments/${enc(id)}`;
  if (sub === "status") {
    const res = await api.get<Any>(base);
    return out(ctx, res, () => deploymentSummary(res.deployment));
  }
  if (sub === "history") {
    const res = await api.get<Any>(`${base}/history`);
    return out(ctx, res, () => table(res.events, ["revision", "at", "actor", "action", "from_state", "to_state", "reason"], 80));
  }
  if (sub === "validate") {
    const res = await api.post<Any>(`${base}/validate`, {});
    return out(ctx, res, () => `${deploymentSummary(res.deployment)}\nvalidation: ${res.report?.passed ? "passed" : "FAILED"}`);
  }
  if (!["start", "pause", "resume", "promote", "rollback", "abort"].includes(sub)) throw new Error(`unknown deployments verb '${sub}'`);
  const res = await api.post<Any>(`${base}/${sub}`, reason(ctx));
  out(ctx, res, () => deploymentSummary(res.deployment));
};

/** eml monitoring summary|drift|performance|alerts MODEL [--window W] */
export const monitoring: Verb = async (ctx) => {
  const [sub, model] = need(ctx.args, 2, "monitoring summary|drift|performance|alerts MODEL [--window 5m]");
  const api = new Api(ctx.config);
  const q = ctx.flags.window ? `?window=${enc(String(ctx.flags.window))}` : "";
  if (sub === "alerts") {
    const res = await api.get<Any>(`/v1/monitoring/models/${enc(model)}/alerts${ctx.flags.limit ? `?limit=${enc(String(ctx.flags.limit))}` : ""}`);
    return out(ctx, res, () => [`firing: ${JSON.stringify(res.firing ?? res.active ?? [])}`, table(res.history ?? [], ["at", "rule", "severity", "state", "message"], 70)].join("\n"));
  }
  if (!["summary", "drift", "performance"].includes(sub)) throw new Error(`unknown monitoring verb '${sub}'`);
  const res = await api.get<Any>(`/v1/monitoring/models/${enc(model)}/${sub}${q}`);
  out(ctx, res, () => {
    const rows = (res.versions as Any[]).map((v) => {
      const flat: Any = { version: v.version };
      for (const [k, val] of Object.entries(v)) if (k !== "version" && (typeof val !== "object" || val === null)) flat[k] = val;
      if (v.latency_ms) Object.assign(flat, { p50: v.latency_ms.p50, p95: v.latency_ms.p95, p99: v.latency_ms.p99 });
      return flat;
    });
    const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))].slice(0, 10);
    return `${model} ${sub} (window ${res.window})\n${table(rows, cols, 48)}`;
  });
};
