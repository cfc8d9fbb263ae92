/**
 * The state machine, shared by the admin API and the cron task:
 *
 *   validating --validate(pass)--> validating (validated) --start--> active
 *   active <--pause/resume--> paused          (promoting pauses too and resumes to promoting)
 *   canary: active --cron advance--> active (next step) ... --> promoting (canary at 100%)
 *   active | paused | promoting --promote--> completed   (the alias moves to the winner)
 *   validating --abort--> failed
 *   active | paused | promoting --abort|rollback|cron rollback--> rolled_back
 *   completed --rollback--> rolled_back                  (the alias moves back to the baseline)
 *
 * Traffic routes through the deployment only in active, paused and promoting; otherwise the
 * alias (champion) answers. Every transition is one applyChange (one transaction + history).
 */
import { ApiError } from "../http/errors";
import { findAlias, type Db } from "../registry/store";
import type { DeploymentConfig, State } from "./model";
import { applyChange, listDeployments, type Deployment } from "./store";

function refuse(d: Deployment, action: string, allowed: State[]): never {
  throw new ApiError("conflict", `cannot ${action} deployment ${d.id}: it is ${d.state} (allowed from ${allowed.join(", ")})`);
}

export async function start(db: Db, env: Env, d: Deployment, actor: string, reason?: string) {
  if (d.state !== "validating") refuse(d, "start", ["validating"]);
  if (d.validationStatus !== "passed") {
    throw new ApiError("conflict", d.validationStatus === "failed" ? `deployment ${d.id} failed validation; it cannot take traffic` : `deployment ${d.id} has not been validated; POST /admin/deployments/${d.id}/validate first`);
  }
  return applyChange(db, env, d, { action: "start", actor, reason, state: "active", restartWindow: true, details: { variants: d.variants } });
}

export async function pause(db: Db, env: Env, d: Deployment, actor: string, reason?: string) {
  if (d.state !== "active" && d.state !== "promoting") refuse(d, "pause", ["active", "promoting"]);
  const config: DeploymentConfig & { pausedFrom?: State } = { ...d.config, pausedFrom: d.state };
  return applyChange(db, env, d, { action: "pause", actor, reason, state: "paused", config });
}

export async function resume(db: Db, env: Env, d: Deployment, actor: string, reason?: string) {
  if (d.state !== "paused") refuse(d, "resume", ["paused"]);
  const { pausedFrom, ...config } = d.config as DeploymentConfig & { pausedFrom?: State };
  return applyChange(db, env, d, { action: "resume", actor, reason, state: pausedFrom ?? "active", config, restartWindow: true });
}

/** The version a promote would make stable. */
function promotionTarget(d: Deployment, variant?: string): string {
  if (d.strategy === "ab_test" || d.strategy === "bandit") {
    if (!variant) throw new ApiError("invalid_input", `promote of a ${d.strategy} deployment needs "variant": one of ${d.variants.map((v) => v.name).join(", ")}`, [{ path: "variant", message: "required" }]);
    const v = d.variants.find((x) => x.name === variant);
    if (!v) throw new ApiError("invalid_input", `deployment ${d.id} has no variant '${variant}'; variants: ${d.variants.map((x) => x.name).join(", ")}`, [{ path: "variant", message: "unknown variant" }]);
    return v.version;
  }
  if (variant) {
    const v = d.variants.find((x) => x.name === variant);
    if (!v) throw new ApiError("invalid_input", `deployment ${d.id} has no variant '${variant}'`, [{ path: "variant", message: "unknown variant" }]);
    return v.version;
  }
  return d.config.candidate!;
}

export async function promote(db: Db, env: Env, d: Deployment, actor: string, reason?: string, variant?: string) {
  const allowed: State[] = ["validating", "active", "paused", "promoting"];
  if (!allowed.includes(d.state)) refuse(d, "promote", allowed);
  const target = promotionTarget(d, variant);
  if (target !== d.baselineVersion && d.validationStatus !== "passed") {
    throw new ApiError(
      "conflict",
      d.validationStatus === "failed" ? `cannot promote ${target}: deployment ${d.id} failed validation` : `cannot promote ${target}: deployment ${d.id} has not been validated`,
    );
  }
  return applyChange(db, env, d, { action: "promote", actor, reason, state: "completed", config: { ...d.config, promoted: target }, moveAlias: target, details: { promoted: target } });
}

async function backToBaseline(db: Db, d: Deployment): Promise<string | undefined> {
  if (!d.baselineVersion) return undefined;
  const alias = await findAlias(db, d.modelName, d.config.alias);
  return alias?.version === d.baselineVersion ? undefined : d.baselineVersion;
}

export async function abort(db: Db, env: Env, d: Deployment, actor: string, reason?: string) {
  if (d.state === "validating") return applyChange(db, env, d, { action: "abort", actor, reason, state: "failed" });
  return rollback(db, env, d, actor, reason, "abort");
}

export async function rollback(db: Db, env: Env, d: Deployment, actor: string, reason?: string, action = "rollback", details?: Record<string, unknown>) {
  const allowed: State[] = ["active", "paused", "promoting", "completed"];
  if (!allowed.includes(d.state)) refuse(d, action, allowed);
  if (d.state === "completed") {
    if (!d.baselineVersion) throw new ApiError("conflict", `deployment ${d.id} had no stable version to return to`);
    const [latest] = await listDeployments(db, { model: d.modelName }, 1);
    if (latest && latest.id !== d.id) throw new ApiError("conflict", `deployment ${d.id} is not the model's latest deployment (${latest.id} is); roll that one back instead`);
  }
  const moveAlias = await backToBaseline(db, d);
  return applyChange(db, env, d, { action, actor, reason, state: "rolled_back", moveAlias, details: { returned_to: d.baselineVersion, ...(details ?? {}) } });
}
