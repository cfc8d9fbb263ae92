/**
 * The retraining cron task (every minute, wrangler.toml): for each model with a retraining
 * configuration, evaluates its triggers against the champion and starts at most one job, subject
 * to the one-active-job rule and the model's cool-down; then watches released candidates
 * (watch.ts). Each model is handled on its own: one failing does not stop the others.
 */
import { registryDb, getVersion, toModelVersion } from "../registry/store";
import { championOf, startJob } from "./jobs";
import { triggerSchema } from "./model";
import { activeJob, latestJob, listConfigs, listTriggers, markTrigger } from "./store";
import { evaluateTrigger } from "./triggers";
import { watchReleases } from "./watch";

export interface CronOutcome {
  model: string;
  action: "started" | "skipped" | "none" | "error";
  detail: string;
  job?: string;
}

export async function runRetrainingCron(env: Env, now = Date.now()): Promise<CronOutcome[]> {
  const db = registryDb(env.DB);
  const [configs, triggers] = await Promise.all([listConfigs(db), listTriggers(db)]);
  const outcomes: CronOutcome[] = [];
  for (const cfg of configs) {
    try {
      outcomes.push(await evaluateModel(env, cfg.model, cfg.config.cooldown_minutes, triggers.filter((t) => t.modelName === cfg.model && t.enabled), now));
    } catch (error) {
      console.error(JSON.stringify({ level: "error", msg: "retraining trigger evaluation failed", model: cfg.model, error: String(error) }));
      outcomes.push({ model: cfg.model, action: "error", detail: String(error) });
    }
  }
  await watchReleases(env, now);
  return outcomes;
}

async function evaluateModel(env: Env, model: string, cooldownMinutes: number, triggers: Awaited<ReturnType<typeof listTriggers>>, now: number): Promise<CronOutcome> {
  if (!triggers.length) return { model, action: "none", detail: "no triggers" };
  const db = registryDb(env.DB);
  const active = await activeJob(db, model);
  if (active) return { model, action: "skipped", detail: `job ${active.id} is ${active.state}` };
  const latest = await latestJob(db, model);
  if (latest && now - latest.createdAt < cooldownMinutes * 60_000) return { model, action: "skipped", detail: `cool-down: previous job ${latest.id} started less than ${cooldownMinutes} min ago` };
  const champion = await championOf(db, model);
  if (!champion) return { model, action: "skipped", detail: "no champion alias" };
  const version = toModelVersion(await getVersion(db, model, champion));
  for (const t of triggers) {
    const trigger = triggerSchema.parse(t.config);
    const evaluation = await evaluateTrigger(env, version, trigger, { firedAt: t.lastFiredAt, createdAt: t.createdAt }, now);
    if (!evaluation.fire) {
      await markTrigger(db, t.id, evaluation);
      continue;
    }
    const job = await startJob(env, { model, triggerId: t.id, triggerType: trigger.type, reason: evaluation.reason, actor: "cron", details: { evaluation } }, now);
    await markTrigger(db, t.id, evaluation, now);
    return { model, action: "started", detail: evaluation.reason, job: job.id };
  }
  return { model, action: "none", detail: "no trigger fired" };
}
