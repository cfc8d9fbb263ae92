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
 *   ab_test active | paused --reweight--> same state     (weights change in place; a new results period)
 *
 * Traffic routes through the deployment only in active, paused and promoting; otherwise the
 * alias (champion) answers. Every transition is one applyChange (one transaction + history).
 */
import { ApiError } from "../http/errors";
import { findAlias, type Db } from "../registry/store";
import type { DeploymentConfig, State } from "./model";
import { reweightSegments, segmentsOf } from "./assignment";
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

/**
 * Where a rollback moves the deployment's alias: back to the baseline when the alias points at one
 * of the deployment's own versions (it moved it there), and nowhere when someone moved it elsewhere
 * since. A completed deployment whose alias was moved elsewhere is not rolled back at all (409):
 * returning to its baseline would silently undo that later move.
 */
async function backToBaseline(db: Db, d: Deployment): Promise<string | undefined> {
  if (!d.baselineVersion) return undefined;
  const alias = await findAlias(db, d.modelName, d.config.alias);
  if (alias?.version === d.baselineVersion) return undefined;
  if (alias && !d.variants.some((v) => v.version === alias.version)) {
    if (d.state === "completed") throw new ApiError("conflict", `cannot roll back deployment ${d.id}: alias '${d.config.alias}' now points at ${alias.version}, moved there after this deployment; move the alias by hand instead`);
    return undefined;
  }
  return d.baselineVersion;
}

/** Ends a deployment without promoting it (validating, active, paused or promoting); a completed one is undone only by `rollback`. */
export async function abort(db: Db, env: Env, d: Deployment, actor: string, reason?: string) {
  if (d.state === "validating") return applyChange(db, env, d, { action: "abort", actor, reason, state: "failed" });
  const allowed: State[] = ["validating", "active", "paused", "promoting"];
  if (!allowed.includes(d.state)) refuse(d, "abort", allowed);
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

/**
 * Changes an A/B test's weights in place (active or paused): same salt, same variants, no
 * re-validation; the ranges are re-laid so only the share the new weights require moves
 * (assignment.ts), and a new weight period begins (results are kept per period).
 */
export async function reweight(db: Db, env: Env, d: Deployment, actor: string, weights: { name: string; weight: number }[], reason?: string, now = Date.now()) {
  if (d.strategy !== "ab_test") {
    throw new ApiError("conflict", `deployment ${d.id} is a ${d.strategy} deployment; only ab_test weights are set by hand (canaries follow their steps, bandits their feedback)`);
  }
  if (d.state !== "active" && d.state !== "paused") refuse(d, "change the weights of", ["active", "paused"]);
  const names = d.variants.map((v) => v.name);
  const issues: { path: string; message: string }[] = [];
  weights.forEach((w, i) => {
    if (!names.includes(w.name)) issues.push({ path: `variants[${i}].name`, message: `deployment ${d.id} has no variant '${w.name}'; variants: ${names.join(", ")}` });
    else if (weights.findIndex((x) => x.name === w.name) !== i) issues.push({ path: `variants[${i}].name`, message: `variant '${w.name}' appears twice` });
  });
  for (const n of names) if (!weights.some((w) => w.name === n)) issues.push({ path: "variants", message: `variant '${n}' is missing: give every variant's weight` });
  const total = weights.reduce((s, w) => s + w.weight, 0);
  if (Math.abs(total - 100) > 1e-9) issues.push({ path: "variants", message: `weights sum to ${total}, not 100` });
  if (issues.length) throw new ApiError("invalid_input", `invalid weights: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`, issues);
  const next = d.variants.map((v) => ({ ...v, weight: weights.find((w) => w.name === v.name)!.weight }));
  if (next.every((v, i) => v.weight === d.variants[i].weight)) throw new ApiError("invalid_input", "the weights are unchanged", [{ path: "variants", message: "same as the current weights" }]);
  const { segments, moved } = reweightSegments(segmentsOf(d.variants, d.config.segments), next.map((v) => v.weight));
  const weightsOf = (vs: { name: string; weight: number }[]) => Object.fromEntries(vs.map((v) => [v.name, v.weight]));
  const periods = [...(d.config.periods ?? [{ from: 0, weights: weightsOf(d.variants) }]), { from: now, weights: weightsOf(next) }];
  return applyChange(db, env, d, {
    action: "reweight",
    actor,
    reason,
    variants: next,
    config: { ...d.config, segments, periods },
    details: { from: weightsOf(d.variants), to: weightsOf(next), moved_share: Number(moved.toFixed(6)) },
  });
}
