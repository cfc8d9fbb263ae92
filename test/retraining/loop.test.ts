/**
 * The retraining loop end to end, with the reference trainer (trainer/trainer.ts) running in Node
 * as the TEST_TRAINER service: labelled traffic -> cron (degradation trigger) -> queued ->
 * dispatched -> training -> validating -> promoted; a candidate that is not credibly better ->
 * rejected; a released candidate that does worse live -> rolled back by the watch; trainer down ->
 * retried, dead-lettered, failed, champion untouched.
 */
import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { ADMIN, call } from "../support/api";
import { archived, holdout, job, setupModel, trafficWithLabels, untilState, type HoldoutRow } from "./helpers";

/** A world that changed: the outcome now follows age, which the champion barely uses. */
const shifted = (r: HoldoutRow) => (Number(r.features.Age) > 40 ? 1 : 0);
const real = (r: HoldoutRow) => r.label;

async function cron(now = Date.now()) {
  const ctx = createExecutionContext();
  await worker.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: now }), env, ctx);
  await waitOnExecutionContext(ctx);
}

async function champion(model: string): Promise<string> {
  const res = await call("GET", `/admin/models/${model}`, undefined, ADMIN);
  return res.json.aliases.champion;
}

describe("retraining loop", () => {
  it("degradation trigger -> queued -> dispatched -> training -> validating -> promoted (canary), then rolled back when live AUC falls below the old champion's", async () => {
    const model = "rt-promote";
    await setupModel(model);
    const trig = await call("POST", `/admin/retraining/${model}/triggers`, { type: "degradation", max_auc_drop: 0.1, min_labels: 100 }, ADMIN);
    expect(trig.status, trig.text).toBe(201);
    const rows = await holdout();
    await trafficWithLabels(model, rows, shifted, "shift");
    await archived(model, 10);

    await cron();
    const listed = await call("GET", `/admin/retraining/${model}/jobs`, undefined, ADMIN);
    expect(listed.json.jobs).toHaveLength(1);
    const created = listed.json.jobs[0];
    expect(created.trigger.type).toBe("degradation");
    expect(created.reason).toMatch(/live AUC .* below registered/);

    // One active job per model: a manual run now is refused, nothing is written.
    const dup = await call("POST", `/admin/retraining/${model}/jobs`, { reason: "again please" }, ADMIN);
    expect(dup.status).toBe(409);
    expect((await call("GET", `/admin/retraining/${model}/jobs`, undefined, ADMIN)).json.jobs).toHaveLength(1);

    const done = await untilState(created.id, ["promoted", "rejected", "failed"]);
    expect(done.job.state, JSON.stringify(done.job)).toBe("promoted");
    const path = done.events.filter((e) => e.from !== e.to).map((e) => e.to);
    expect(path).toEqual(["queued", "dispatched", "training", "validating", "promoted"]);
    const report = (await call("GET", `/admin/retraining/jobs/${created.id}/report`, undefined, ADMIN)).json.report;
    expect(report.passed).toBe(true);
    expect(report.candidate.auc).toBeGreaterThan(report.champion.auc + 0.2);
    expect(report.oot.rows).toBeGreaterThanOrEqual(60);
    const candidate = done.job.candidate_version as string;
    expect(candidate).toBe("1.1.0");
    const dep = await call("GET", `/admin/deployments/${done.job.deployment_id}`, undefined, ADMIN);
    expect(dep.json.deployment.strategy).toBe("canary");
    expect(["active", "promoting", "completed"]).toContain(dep.json.deployment.state);

    // Now the world flips back: live labels follow the real outcome, which the old champion predicts better.
    await trafficWithLabels(model, rows, real, "new", { version: candidate });
    await trafficWithLabels(model, rows, real, "old", { version: "1.0.0" });
    await cron();
    const after = await job(created.id);
    expect(after.job.state).toBe("rolled_back");
    expect(after.events.at(-1)!.details.reason).toMatch(/credibly below the old champion/);
    expect(await champion(model)).toBe("1.0.0");
    const depAfter = await call("GET", `/admin/deployments/${done.job.deployment_id}`, undefined, ADMIN);
    expect(depAfter.json.deployment.state).toBe("rolled_back");
  }, 300_000);

  it("a candidate that is not credibly better than the champion is rejected with the comparison report", async () => {
    const model = "rt-reject";
    await setupModel(model, { validation: { min_oot_samples: 60, min_improvement: 0.05 } });
    await trafficWithLabels(model, await holdout(), real, "real");
    await archived(model, 10);
    const run = await call("POST", `/admin/retraining/${model}/jobs`, { reason: "quarterly refresh" }, ADMIN);
    expect(run.status, run.text).toBe(202);
    const done = await untilState(run.json.job.id, ["promoted", "rejected", "failed"]);
    expect(done.job.state, JSON.stringify(done.job)).toBe("rejected");
    const report = (await call("GET", `/admin/retraining/jobs/${run.json.job.id}/report`, undefined, ADMIN)).json.report;
    expect(report.passed).toBe(false);
    expect(report.difference.lower_95).toBeLessThan(0.05);
    expect(report.champion.auc).toBeGreaterThan(0.7);
    expect(await champion(model)).toBe("1.0.0");
    const versions = await call("GET", `/admin/models/${model}/versions`, undefined, ADMIN);
    expect(versions.json.versions.map((v: { version: string }) => v.version)).toEqual(["1.0.0"]);
  }, 300_000);

  it("trainer down: dispatch is retried, dead-lettered, and the job fails; the champion is untouched", async () => {
    const model = "rt-down";
    await setupModel(model, { trainer_url: "https://trainer.test/down/train" });
    await trafficWithLabels(model, (await holdout()).slice(0, 200), real, "d");
    const run = await call("POST", `/admin/retraining/${model}/jobs`, { reason: "manual test" }, ADMIN);
    expect(run.status, run.text).toBe(202);
    const done = await untilState(run.json.job.id, ["failed", "dispatched", "training"]);
    expect(done.job.state).toBe("failed");
    expect(done.job.error).toMatch(/trainer unreachable after \d+ attempt\(s\); last: trainer answered 503/);
    expect(done.events.filter((e) => e.action === "dispatch_retry").length).toBeGreaterThanOrEqual(2);
    expect(await champion(model)).toBe("1.0.0");
    // After the failure the model may run again (the one-active-job rule released it).
    const again = await call("POST", `/admin/retraining/${model}/jobs`, { reason: "retry after fixing the trainer" }, ADMIN);
    expect(again.status).toBe(202);
    const cancel = await call("POST", `/admin/retraining/jobs/${again.json.job.id}/cancel`, { reason: "not now" }, ADMIN);
    expect(cancel.json.job.state).toBe("cancelled");
  }, 300_000);
});
