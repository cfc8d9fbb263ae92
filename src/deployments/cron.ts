/**
 * The deployments' cron task (every minute, wrangler.toml): advances canaries whose live metrics
 * are not worse than stable's, rolls back those that are, completes canaries that held 100% for a
 * step without regressing, and refreshes bandit allocations from feedback.
 *
 * Each deployment is handled on its own: one failing (e.g. a stale revision because an admin
 * paused it meanwhile, a 409 that is expected) does not stop the others. Analysis windows start at
 * `stepStartedAt` (bucket-aligned), and canary metrics come from the monitoring objects
 * (canary-metrics.ts).
 */
import { canaryWindow } from "./canary-metrics";
import { ApiError } from "../http/errors";
import { canaryVerdict } from "./analysis";
import { promote, rollback } from "./lifecycle";
import { statsFor } from "./live-stats";
import type { Variant } from "./model";
import { thompsonShares } from "./stats";
import { applyChange, deploymentsDb, listDeployments, type Deployment } from "./store";

const ACTOR = "cron";

export interface CronOutcome {
  deployment: string;
  action: "advance" | "hold" | "rollback" | "complete" | "reweight" | "skip" | "error";
  detail: string;
}

export async function runDeploymentCron(env: Env, now = Date.now()): Promise<CronOutcome[]> {
  const db = deploymentsDb(env.DB);
  const open = await listDeployments(db, { states: ["active", "promoting"] }, 500);
  const outcomes: CronOutcome[] = [];
  for (const d of open) {
    try {
      if (d.strategy === "canary") outcomes.push(await tickCanary(env, d, now));
      else if (d.strategy === "bandit" && d.state === "active") outcomes.push(await tickBandit(env, d));
    } catch (error) {
      if (!(error instanceof ApiError)) console.error(JSON.stringify({ level: "error", msg: "deployment cron failed", deployment: d.id, error: String(error) }));
      outcomes.push({ deployment: d.id, action: "error", detail: error instanceof ApiError ? error.message : "internal error" });
    }
  }
  return outcomes;
}

async function tickCanary(env: Env, d: Deployment, now: number): Promise<CronOutcome> {
  const db = deploymentsDb(env.DB);
  const a = d.config.analysis!;
  if (now - d.stepStartedAt < a.step_minutes * 60_000) return { deployment: d.id, action: "skip", detail: "step still running" };
  const version = (name: string) => d.variants.find((v) => v.name === name)!.version;
  const summary = await canaryWindow(env, d.modelName, { stable: version("stable"), canary: version("canary") }, d.stepStartedAt, now);
  const verdict = canaryVerdict(summary, a, { snapshot: d.state === "promoting" ? d.config.baselineSnapshot : undefined, steps: d.config.steps?.length ?? 1 });
  const config = { ...d.config, lastAnalysis: { at: new Date(now).toISOString(), ...verdict } };
  if (verdict.decision === "rollback") {
    await rollback(db, env, { ...d }, ACTOR, `automatic rollback: ${verdict.reasons.join("; ")}`, "rollback", { analysis: verdict });
    return { deployment: d.id, action: "rollback", detail: verdict.reasons.join("; ") };
  }
  if (verdict.decision === "hold") {
    await recordHold(env, d, verdict.reasons, config);
    return { deployment: d.id, action: "hold", detail: verdict.reasons.join("; ") };
  }
  if (d.state === "promoting") {
    await promote(db, env, d, ACTOR, `canary held 100% for ${a.step_minutes} min without regressing`);
    return { deployment: d.id, action: "complete", detail: "promoted" };
  }
  const steps = d.config.steps!;
  const step = (d.config.step ?? 0) + 1;
  const weight = steps[step];
  const variants: Variant[] = d.variants.map((v) => ({ ...v, weight: v.name === "canary" ? weight : 100 - weight }));
  const reaching100 = weight >= 100;
  await applyChange(db, env, d, {
    action: reaching100 ? "advance_to_full" : "advance",
    actor: ACTOR,
    reason: `canary not worse than stable: step ${step + 1}/${steps.length} (${weight}%)`,
    state: reaching100 ? "promoting" : "active",
    variants,
    config: { ...config, step, ...(reaching100 ? { baselineSnapshot: { error_rate: verdict.stable.error_rate, p95_ms: verdict.stable.p95_ms } } : {}) },
    restartWindow: true,
    details: { weight, analysis: verdict },
  });
  return { deployment: d.id, action: "advance", detail: `canary at ${weight}%` };
}

/**
 * A canary that holds says why in its history: one "hold" event when it starts holding or when the
 * kind of reason changes (counts in the reasons are ignored, so a canary waiting for traffic writes
 * one event, not one a minute). The analysis is kept as the deployment's last_analysis.
 */
async function recordHold(env: Env, d: Deployment, reasons: string[], config: Deployment["config"]) {
  const kind = (r: string[] | undefined) => (r ?? []).join("; ").replace(/\d+(\.\d+)?/g, "#");
  const previous = d.config.lastAnalysis as { decision?: string; reasons?: string[] } | undefined;
  if (previous?.decision === "hold" && kind(previous.reasons) === kind(reasons)) return;
  await applyChange(deploymentsDb(env.DB), env, d, { action: "hold", actor: ACTOR, reason: `canary holds: ${reasons.join("; ")}`, config, details: { reasons } });
}

async function tickBandit(env: Env, d: Deployment): Promise<CronOutcome> {
  const summary = await statsFor(env, d.id).summary(0, 0);
  const arms = Object.fromEntries(
    d.variants.map((v) => {
      const f = summary.variants[v.name]?.feedback ?? { n: 0, positives: 0, correct: 0 };
      const successes = d.config.reward === "conversion" ? f.positives : f.correct;
      return [v.name, { successes, failures: f.n - successes }];
    }),
  );
  const unchanged = d.variants.every((v) => {
    const before = d.config.arms?.[v.name];
    return before && before.successes === arms[v.name].successes && before.failures === arms[v.name].failures;
  });
  if (unchanged) return { deployment: d.id, action: "skip", detail: "no new feedback" };
  const shares = thompsonShares(d.variants.map((v) => arms[v.name]), d.config.floor ?? 0);
  const variants = d.variants.map((v, i) => ({ ...v, weight: Number((shares[i] * 100).toFixed(2)) }));
  await applyChange(deploymentsDb(env.DB), env, d, {
    action: "bandit_update",
    actor: ACTOR,
    reason: "Thompson sampling allocation from feedback",
    variants,
    config: { ...d.config, arms },
    details: { arms, weights: Object.fromEntries(variants.map((v) => [v.name, v.weight])) },
  });
  return { deployment: d.id, action: "reweight", detail: variants.map((v) => `${v.name}=${v.weight}%`).join(", ") };
}
