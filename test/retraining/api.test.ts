/**
 * Retraining admin API, triggers and the trainer-facing routes, without a full training run:
 * validation of configs and triggers (4xx, nothing written), schedules, cron with the cool-down and
 * one-active-job rules, signed trainer routes, and the dispatch consumer's idempotency.
 */
import { createExecutionContext, createMessageBatch, createScheduledController, env, getQueueResult, introspectWorkflowInstance, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { registryDb } from "../../src/registry/store";
import { runRetrainingCron } from "../../src/retraining/cron";
import { lastDue } from "../../src/retraining/triggers";
import { sign, SIGNATURE_HEADER } from "../../src/retraining/signing";
import { createJob, findJob } from "../../src/retraining/store";
import { dispatchDelaySeconds } from "../../src/retraining/dispatch";
import { aucEstimate, upperBound } from "../../src/retraining/compare";
import { ADMIN, call } from "../support/api";
import { TEST_TRAINER_SECRET } from "../support/trainer-service";
import { configBody, eventually, holdout, setupModel, type HoldoutRow } from "./helpers";

const at = (iso: string) => Date.parse(iso);

describe("retraining configuration", () => {
  it("refuses bad configs with 4xx naming the fields, and stores nothing", async () => {
    await setupModel("rt-api");
    const bad = await call("PUT", "/admin/retraining/rt-cfg/config", { ...configBody(), trainer_url: "http://trainer.test/train", trainer_secret: "short", sample_rate: 2 }, ADMIN);
    expect(bad.status).toBe(422);
    const paths = bad.json.error.details.map((d: { path: string }) => d.path);
    expect(paths).toEqual(expect.arrayContaining(["trainer_url", "trainer_secret", "sample_rate"]));
    expect((await call("GET", "/admin/retraining/rt-cfg/config", undefined, ADMIN)).status).toBe(404);
    // Release steps follow the canary's rule (before, [50, 25] was stored and failed only at release, after training).
    for (const [steps, message] of [[[50, 25, 100], "steps must increase strictly"], [[5, 50], "the last step must be 100"]] as const) {
      const badSteps = await call("PUT", "/admin/retraining/rt-api/config", { ...configBody(), release: { steps, step_minutes: 0 } }, ADMIN);
      expect(badSteps.status, badSteps.text).toBe(422);
      expect(badSteps.json.error.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: "release.steps", message })]));
    }
    expect((await call("GET", "/admin/retraining/rt-api/config", undefined, ADMIN)).json.release.steps).toEqual([50, 100]);
    // Unknown model: 404, not a dangling config.
    expect((await call("PUT", "/admin/retraining/no-such-model/config", configBody(), ADMIN)).status).toBe(404);
    // No credentials: 401.
    expect((await call("GET", "/admin/retraining/rt-api/config")).status).toBe(401);
    const shown = await call("GET", "/admin/retraining/rt-api/config", undefined, ADMIN);
    expect(shown.status).toBe(200);
    expect(shown.json.trainer_secret).toBe("<redacted>");
    expect(shown.text).not.toContain(TEST_TRAINER_SECRET);
  });

  it("validates triggers and manual runs", async () => {
    const badTrigger = await call("POST", "/admin/retraining/rt-api/triggers", { type: "schedule", every: "hourly", at: "25:00" }, ADMIN);
    expect(badTrigger.status).toBe(422);
    // A day on a daily schedule was stored and ignored.
    const dailyDay = await call("POST", "/admin/retraining/rt-api/triggers", { type: "schedule", every: "daily", day: 3, at: "02:00" }, ADMIN);
    expect(dailyDay.status, dailyDay.text).toBe(422);
    expect(dailyDay.json.error.details).toEqual([expect.objectContaining({ path: "day" })]);
    expect((await call("GET", "/admin/retraining/rt-api/triggers", undefined, ADMIN)).json.triggers.filter((t: { every?: string }) => t.every === "daily")).toEqual([]);
    // A feature-drift trigger needing more drifting features than the model has could never fire (credit-risk-lr has 13).
    const tooMany = await call("POST", "/admin/retraining/rt-api/triggers", { type: "drift", on: "features", psi: 0.2, min_features: 14, window: "24h" }, ADMIN);
    expect(tooMany.status, tooMany.text).toBe(422);
    expect(tooMany.json.error.details).toEqual([expect.objectContaining({ path: "min_features", message: expect.stringMatching(/at most 13 features/) })]);
    const enough = await call("POST", "/admin/retraining/rt-api/triggers", { type: "drift", on: "features", psi: 0.2, min_features: 13, window: "24h" }, ADMIN);
    expect(enough.status, enough.text).toBe(201);
    expect((await call("DELETE", `/admin/retraining/rt-api/triggers/${enough.json.id}`, undefined, ADMIN)).status).toBeLessThan(300);
    const badDrift = await call("POST", "/admin/retraining/rt-api/triggers", { type: "drift", psi: 0.2, min_samples: 10 }, ADMIN);
    expect(badDrift.status).toBe(422);
    expect(badDrift.json.error.details[0].path).toBe("min_samples");
    expect((await call("GET", "/admin/retraining/rt-api/triggers", undefined, ADMIN)).json.triggers).toEqual([]);
    const badRun = await call("POST", "/admin/retraining/rt-api/jobs", { reason: "" }, ADMIN);
    expect(badRun.status).toBe(422);
    expect((await call("GET", "/admin/retraining/rt-api/jobs", undefined, ADMIN)).json.jobs).toEqual([]);
    expect((await call("GET", "/admin/retraining/rt-api/jobs?state=bogus", undefined, ADMIN)).status).toBe(400);
  });
});

describe("schedules", () => {
  it("computes the last due instant of daily, weekly, monthly and quarterly schedules (UTC)", () => {
    const now = at("2026-12-01T15:00:00Z"); // a Tuesday
    expect(new Date(lastDue({ type: "schedule", every: "daily", at: "02:00" }, now)).toISOString()).toBe("2026-12-01T02:00:00.000Z");
    expect(new Date(lastDue({ type: "schedule", every: "daily", at: "16:30" }, now)).toISOString()).toBe("2026-11-30T16:30:00.000Z");
    expect(new Date(lastDue({ type: "schedule", every: "weekly", at: "02:00", day: 1 }, now)).toISOString()).toBe("2026-11-30T02:00:00.000Z");
    expect(new Date(lastDue({ type: "schedule", every: "weekly", at: "16:00", day: 2 }, now)).toISOString()).toBe("2026-11-24T16:00:00.000Z");
    expect(new Date(lastDue({ type: "schedule", every: "monthly", at: "03:00", day: 15 }, now)).toISOString()).toBe("2026-11-15T03:00:00.000Z");
    expect(new Date(lastDue({ type: "schedule", every: "quarterly", at: "00:00", day: 1 }, now)).toISOString()).toBe("2026-10-01T00:00:00.000Z");
    expect(new Date(lastDue({ type: "schedule", every: "quarterly", at: "00:00", day: 5 }, at("2026-01-02T00:00:00Z"))).toISOString()).toBe("2025-10-05T00:00:00.000Z");
  });

  it("the cron fires a due schedule once, then respects the one-active-job rule and the cool-down", async () => {
    await setupModel("rt-sched", { trainer_url: "https://trainer.test/down/train", cooldown_minutes: 60 });
    const created = await call("POST", "/admin/retraining/rt-sched/triggers", { type: "schedule", every: "daily", at: "00:00" }, ADMIN);
    expect(created.status, created.text).toBe(201);
    // The trigger was created now; the next due instant is tomorrow 00:00.
    const tomorrow = Math.floor(Date.now() / 86_400_000 + 1) * 86_400_000 + 60_000;
    expect((await runRetrainingCron(env, Date.now()))).toContainEqual(expect.objectContaining({ model: "rt-sched", action: "none" }));
    const fired = await runRetrainingCron(env, tomorrow);
    const started = fired.find((o) => o.model === "rt-sched")!;
    expect(started.action).toBe("started");
    expect(started.detail).toMatch(/scheduled daily run due at/);
    expect((await runRetrainingCron(env, tomorrow + 60_000)).find((o) => o.model === "rt-sched")!.detail).toMatch(/^job .* is /);
    const cancel = await call("POST", `/admin/retraining/jobs/${started.job}/cancel`, { reason: "testing cool-down" }, ADMIN);
    expect(cancel.json.job.state).toBe("cancelled");
    // Cancelling again is a 409 and keeps the first cancel's reason and time (it rewrote them).
    const again = await call("POST", `/admin/retraining/jobs/${started.job}/cancel`, { reason: "again" }, ADMIN);
    expect(again.status, again.text).toBe(409);
    expect(again.json.error.message).toMatch(/already cancelled/);
    const kept = (await call("GET", `/admin/retraining/jobs/${started.job}`, undefined, ADMIN)).json.job;
    expect([kept.error, kept.finished_at]).toEqual([cancel.json.job.error, cancel.json.job.finished_at]);
    // A cancelled job frees the model, but the cool-down holds further automatic runs.
    expect((await runRetrainingCron(env, tomorrow + 120_000)).find((o) => o.model === "rt-sched")!.detail).toMatch(/^cool-down/);
    // The cron task is wired into the worker's scheduled handler.
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), env, ctx);
    await waitOnExecutionContext(ctx);
    const trig = (await call("GET", "/admin/retraining/rt-sched/triggers", undefined, ADMIN)).json.triggers[0];
    expect(trig.last_fired_at).toBe(new Date(tomorrow).toISOString());
  });
});

describe("drift trigger", () => {
  it("fires on score PSI measured from live traffic, not before min_samples observations", async () => {
    await setupModel("rt-drift", { trainer_url: "https://trainer.test/down/train" });
    const created = await call("POST", "/admin/retraining/rt-drift/triggers", { type: "drift", on: "score", psi: 0.2, window: "1h", min_samples: 150 }, ADMIN);
    expect(created.status, created.text).toBe(201);
    // Only applicants the champion scores as high risk: the score distribution leaves the reference.
    const risky = (await holdout()).filter((r) => r.features.Records === "yes").slice(0, 100);
    expect(risky.length).toBeGreaterThan(50);
    const predict = (rows: HoldoutRow[]) => call("POST", "/v1/models/rt-drift/predict", { instances: rows.map((r) => r.features) });
    expect((await predict(risky)).status).toBe(200);
    await eventually(async () => {
      const out = (await runRetrainingCron(env)).find((o) => o.model === "rt-drift")!;
      expect(out.action).toBe("none");
      const t = (await call("GET", "/admin/retraining/rt-drift/triggers", undefined, ADMIN)).json.triggers[0];
      expect(t.last_evaluation.reason).toMatch(/not measurable: \d+ of 150 observations/);
      expect(t.last_evaluation.details.n).toBeGreaterThan(0);
    });
    expect((await predict(risky)).status).toBe(200);
    const fired = await eventually(async () => {
      const out = (await runRetrainingCron(env)).find((o) => o.model === "rt-drift")!;
      expect(out.action, out.detail).toBe("started");
      return out;
    });
    expect(fired.detail).toMatch(/^score PSI [\d.]+ over 1h > 0.2$/);
    const psi = Number(/PSI ([\d.]+)/.exec(fired.detail)![1]);
    expect(psi).toBeGreaterThan(0.2);
    await call("POST", `/admin/retraining/jobs/${fired.job}/cancel`, {}, ADMIN);
  });
});

describe("trainer routes and dispatch", () => {
  async function queuedJob(model: string) {
    return createJob(registryDb(env.DB), { model, triggerType: "manual", reason: "test", championVersion: "1.0.0", actor: "test" });
  }

  it("refuses unsigned, wrongly signed and stale callbacks; the job does not change", async () => {
    await setupModel("rt-sign");
    const job = await queuedJob("rt-sign");
    const path = `/retraining/jobs/${job.id}/status`;
    const body = JSON.stringify({ status: "training" });
    expect((await call("POST", path, body)).status).toBe(401);
    const wrong = await sign("another-secret-0123456789abcdef0123", "POST", path, body);
    expect((await call("POST", path, body, { [SIGNATURE_HEADER]: wrong })).status).toBe(401);
    const stale = await sign(TEST_TRAINER_SECRET, "POST", path, body, Date.now() - 3_600_000);
    expect((await call("POST", path, body, { [SIGNATURE_HEADER]: stale })).json.error.message).toMatch(/window/);
    const otherBody = await sign(TEST_TRAINER_SECRET, "POST", path, JSON.stringify({ status: "training", detail: "x" }));
    expect((await call("POST", path, body, { [SIGNATURE_HEADER]: otherBody })).status).toBe(401);
    const badBody = JSON.stringify({ status: "done" });
    const res = await call("POST", path, badBody, { [SIGNATURE_HEADER]: await sign(TEST_TRAINER_SECRET, "POST", path, badBody) });
    expect(res.status).toBe(422);
    expect((await findJob(registryDb(env.DB), job.id))!.state).toBe("queued");
    const ok = await call("POST", path, body, { [SIGNATURE_HEADER]: await sign(TEST_TRAINER_SECRET, "POST", path, body) });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json.state).toBe("training");
  });

  it("dispatches once: a redelivered message for a dispatched job is acknowledged without calling the trainer", async () => {
    await setupModel("rt-idem");
    const job = await queuedJob("rt-idem");
    const first = createMessageBatch("edge-ml-retraining-dispatch", [{ id: "m1", timestamp: new Date(), attempts: 1, body: { job_id: job.id } }]);
    let ctx = createExecutionContext();
    await worker.queue!(first as MessageBatch<unknown>, env);
    expect((await getQueueResult(first, ctx)).explicitAcks).toEqual(["m1"]);
    expect((await findJob(registryDb(env.DB), job.id))!.state).toBe("dispatched");
    // Point the model at a trainer that is down: if the redelivery called it, the message would be retried.
    await call("PUT", "/admin/retraining/rt-idem/config", configBody({ trainer_url: "https://trainer.test/down/train" }), ADMIN);
    const again = createMessageBatch("edge-ml-retraining-dispatch", [{ id: "m1", timestamp: new Date(), attempts: 2, body: { job_id: job.id } }]);
    ctx = createExecutionContext();
    await worker.queue!(again as MessageBatch<unknown>, env);
    const result = await getQueueResult(again, ctx);
    expect(result.explicitAcks).toEqual(["m1"]);
    expect(result.retryMessages).toEqual([]);
  });

  it("a trainer that is down gets the message back with exponential back-off", async () => {
    await setupModel("rt-backoff", { trainer_url: "https://trainer.test/down/train" });
    const job = await queuedJob("rt-backoff");
    const batch = createMessageBatch("edge-ml-retraining-dispatch", [{ id: "b1", timestamp: new Date(), attempts: 3, body: { job_id: job.id } }]);
    const ctx = createExecutionContext();
    await worker.queue!(batch as MessageBatch<unknown>, { ...env, RETRAINING_DISPATCH_BACKOFF_SECONDS: "30" } as Env);
    expect((await getQueueResult(batch, ctx)).retryMessages).toEqual([{ msgId: "b1" }]);
    expect([1, 2, 3, 4, 12].map((n) => dispatchDelaySeconds(n, 30))).toEqual([30, 60, 120, 240, 3600]);
    const j = await call("GET", `/admin/retraining/jobs/${job.id}`, undefined, ADMIN);
    expect(j.json.job.state).toBe("queued");
    expect(j.json.events.at(-1)).toMatchObject({ action: "dispatch_retry", details: { attempt: 3, error: "trainer answered 503: trainer down" } });
  });
});

describe("workflow", () => {
  it("a trainer that never calls back: the wait times out and the job fails with the reason", async () => {
    await setupModel("rt-timeout", { trainer_url: "https://trainer.test/down/train" });
    const job = await createJob(registryDb(env.DB), { model: "rt-timeout", triggerType: "manual", reason: "timeout test", championVersion: "1.0.0", actor: "test" });
    await using instance = await introspectWorkflowInstance(env.RETRAINING_WORKFLOW, job.id);
    await instance.modify(async (m) => {
      await m.forceEventTimeout({ name: "wait for trainer" });
    });
    await env.RETRAINING_WORKFLOW.create({ id: job.id, params: { job_id: job.id } });
    await instance.waitForStatus("complete");
    expect(await instance.getOutput()).toEqual({ state: "failed" });
    const j = await call("GET", `/admin/retraining/jobs/${job.id}`, undefined, ADMIN);
    expect(j.json.job.state).toBe("failed");
    expect(j.json.job.error).toBe("no completion callback from the trainer within 24 h");
    expect(j.json.job.export).toMatchObject({ train_rows: 0, oot_rows: 0 });
    expect(j.json.job.active).toBe(false);
  });
});

describe("AUC confidence bound", () => {
  it("matches the Hanley-McNeil standard error", () => {
    // 4 positives, 4 negatives: AUC = 14/16; reference SE computed by hand from the formula.
    const e = aucEstimate([1, 1, 1, 1, 0, 0, 0, 0], [0.9, 0.8, 0.7, 0.3, 0.6, 0.4, 0.2, 0.1]);
    const a = 14 / 16;
    const q1 = a / (2 - a);
    const q2 = (2 * a * a) / (1 + a);
    expect(e.auc).toBeCloseTo(a, 12);
    expect(e.se).toBeCloseTo(Math.sqrt((a * (1 - a) + 3 * (q1 - a * a) + 3 * (q2 - a * a)) / 16), 12);
    expect(upperBound(e, 0.05)).toBeCloseTo(a + 1.6448536 * e.se!, 6);
  });
});
