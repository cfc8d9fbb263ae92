/**
 * The watch after a release (run by the retraining cron every minute): for each promoted job still
 * on probation, compare the new version's live AUC (labels since release) with the old champion's
 * (its labels from one watch period before release onwards). When both have `min_labels` labels of
 * both classes and the new one is credibly worse (one-sided z test on the AUC difference at
 * `alpha`, compare.ts), roll the deployment back (moving the champion alias back if it had already
 * moved), mark the job rolled_back and alert. A deployment the canary analysis rolled back on its
 * own also marks the job rolled_back. When the watch period ends, the job stays promoted and stops
 * being the model's active job.
 */
import { rollback } from "../deployments/lifecycle";
import { deploymentsDb, getDeployment } from "../deployments/store";
import { fleetLabels } from "../monitoring/fleet";
import { positiveClassOf } from "../monitoring/performance";
import { getVersion, registryDb, toModelVersion } from "../registry/store";
import { aucEstimate, usable, worseThan } from "./compare";
import { ACTOR, announce, championOf } from "./jobs";
import { getConfig, listJobs, updateJob, type JobRow } from "./store";

export interface WatchOutcome {
  job: string;
  action: "rolled_back" | "watch_ended" | "holding";
  detail: string;
}

export async function watchReleases(env: Env, now = Date.now()): Promise<WatchOutcome[]> {
  const db = registryDb(env.DB);
  const jobs = (await listJobs(db, { state: "promoted" }, 200)).filter((j) => j.active === 1);
  const out: WatchOutcome[] = [];
  for (const job of jobs) {
    try {
      out.push(await watchOne(env, job, now));
    } catch (error) {
      console.error(JSON.stringify({ level: "error", msg: "retraining watch failed", job: job.id, error: String(error) }));
    }
  }
  return out;
}

async function rolledBack(env: Env, job: JobRow, reason: string, details: Record<string, unknown>): Promise<WatchOutcome> {
  const row = await updateJob(registryDb(env.DB), job.id, (j) => (j.state === "promoted" ? { action: "rollback", actor: ACTOR, state: "rolled_back", set: { error: reason }, details: { reason, ...details } } : null));
  await announce(env, row, "critical", `retrained ${job.candidateVersion} rolled back`, reason);
  return { job: job.id, action: "rolled_back", detail: reason };
}

async function watchOne(env: Env, job: JobRow, now: number): Promise<WatchOutcome> {
  const db = registryDb(env.DB);
  const cfg = await getConfig(db, job.modelName);
  const d = job.deploymentId ? await getDeployment(deploymentsDb(env.DB), job.deploymentId) : null;
  if (d && (d.state === "rolled_back" || d.state === "failed")) return rolledBack(env, job, `deployment ${d.id} was ${d.state.replace("_", " ")} by its canary analysis or an admin`, { deployment: d.id });
  const { min_labels, alpha, hours } = cfg.config.watch;
  if (d?.state === "completed" && job.candidateVersion) {
    // The champion was moved by hand after the release: the release is no longer what serves, and
    // rolling back would undo that move (the deployment refuses it), so the watch ends here.
    const champion = await championOf(db, job.modelName);
    if (champion !== job.candidateVersion) {
      const detail = `the champion was moved to ${champion ?? "nothing"} after the release; nothing of this job's left to watch`;
      await updateJob(db, job.id, (j) => (j.state === "promoted" && j.active === 1 ? { action: "watch_end", actor: ACTOR, set: { active: 0 }, details: { reason: detail } } : null));
      return { job: job.id, action: "watch_ended", detail };
    }
  }
  if (job.candidateVersion && job.championVersion && job.promotedAt) {
    const v = toModelVersion(await getVersion(db, job.modelName, job.candidateVersion));
    const positive = positiveClassOf(v);
    if (positive !== null) {
      const [candidate, old] = await Promise.all([fleetLabels(env, job.modelName, job.candidateVersion, job.promotedAt), fleetLabels(env, job.modelName, job.championVersion, job.promotedAt - hours * 3_600_000)]);
      const est = (rows: typeof candidate) => aucEstimate(rows.map((r) => (r.actual === positive ? 1 : 0)), rows.map((r) => r.score));
      const c = est(candidate);
      const o = est(old);
      if (usable(c, min_labels) && usable(o, min_labels)) {
        const test = worseThan(c, o, alpha);
        const details = { candidate_auc: c.auc, candidate_labels: c.n, champion_auc: o.auc, champion_labels: o.n, z: test.z, alpha };
        if (test.worse) {
          if (d && ["active", "paused", "promoting", "completed"].includes(d.state)) await rollback(deploymentsDb(env.DB), env, d, ACTOR, `retraining watch: live AUC ${c.auc!.toFixed(4)} below old champion's ${o.auc!.toFixed(4)} (z=${test.z.toFixed(2)})`);
          return rolledBack(env, job, `live AUC ${c.auc!.toFixed(4)} (n=${c.n}) credibly below the old champion's ${o.auc!.toFixed(4)} (n=${o.n}); z=${test.z.toFixed(2)}, alpha=${alpha}`, details);
        }
      }
    }
  }
  if (job.watchUntil !== null && now >= job.watchUntil) {
    await updateJob(db, job.id, (j) => (j.state === "promoted" && j.active === 1 ? { action: "watch_end", actor: ACTOR, set: { active: 0 }, details: { watched_hours: hours } } : null));
    return { job: job.id, action: "watch_ended", detail: "watch period over; release kept" };
  }
  return { job: job.id, action: "holding", detail: "no credible regression" };
}
