/**
 * SLAs, alerts and notifications: threshold and burn-rate checks fire from real windows, alerts
 * deduplicate, resolve and respect the cool-down, notifications travel through the Queue to a
 * Slack-compatible webhook, an HMAC-signed JSON webhook and e-mail, failures are retried and
 * dead letters recorded; compliance is reported; cron runs evaluations and the daily report.
 */
import { createExecutionContext, createMessageBatch, createScheduledController, env, getQueueResult, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../../src/index";
import { emptyAggregate } from "../../src/monitoring/aggregate";
import { MINUTE, shardName } from "../../src/monitoring/config";
import { hmacHex, type NotificationMessage } from "../../src/monitoring/notify";
import { DDSketch } from "../../src/stats/sketch";
import { ADMIN, call, registerStem } from "../support/api";
import { repoJson } from "../support/files";
import { eventually } from "./helpers";

const SECRET = "0123456789abcdef-secret";
const TARGETS = [
  { id: "slack", type: "slack", url: "https://hooks.test/alerts/slack", min_severity: "warning" },
  { id: "hook", type: "webhook", url: "https://hooks.test/alerts/hook", secret: SECRET, min_severity: "info" },
  { id: "mail", type: "email", to: "oncall@example.com", min_severity: "critical", reports: false },
];

async function received(prefix: string): Promise<{ path: string; headers: Record<string, string>; body: string }[]> {
  return (await env.TEST_WEBHOOK_SINK.fetch(`http://sink/_received?prefix=${encodeURIComponent(prefix)}`)).json();
}

/** Ingests a minute of traffic: `requests` with `errors` server errors, all taking `latencyMs`. */
async function traffic(requests: number, errors: number, latencyMs: number) {
  const a = emptyAggregate();
  a.requests = requests;
  a.rows = requests - errors;
  if (errors) a.errors["500 internal_error"] = errors;
  const s = new DDSketch();
  for (let i = 0; i < requests; i++) s.add(latencyMs);
  a.latency = s.toJSON();
  await env.MONITOR_SHARD.getByName(shardName("credit-risk", "1.0.0", 0)).ingest({ model: "credit-risk", version: "1.0.0", buckets: { [String(Math.floor(Date.now() / MINUTE) * MINUTE)]: a } });
}

beforeAll(async () => {
  expect((await registerStem("models", "credit-risk-lr", ["champion"])).status).toBe(201);
});

describe("notification targets", () => {
  it("accepts https targets, refuses anything else, and never shows webhook secrets", async () => {
    const http = await call("PUT", "/admin/monitoring/credit-risk/targets", { targets: [{ id: "x", type: "slack", url: "http://hooks.test/x" }] }, ADMIN);
    expect(http.status).toBe(422);
    expect(http.json.error.details[0].path).toBe("targets[0].url");
    const creds = await call("PUT", "/admin/monitoring/credit-risk/targets", { targets: [{ id: "x", type: "slack", url: "https://u:p@hooks.test/x" }] }, ADMIN);
    expect(creds.status).toBe(422);
    expect((await call("PUT", "/admin/monitoring/credit-risk/targets", { targets: TARGETS })).status).toBe(401);
    const ok = await call("PUT", "/admin/monitoring/credit-risk/targets", { targets: TARGETS }, ADMIN);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json.targets.find((t: any) => t.id === "hook").secret).toBe("<redacted>");
    expect(JSON.stringify((await call("GET", "/admin/monitoring/credit-risk/targets", undefined, ADMIN)).json)).not.toContain(SECRET);
  });
});

describe("SLA evaluation, alerts and delivery", () => {
  it("fires threshold and burn-rate alerts, notifies through the queue, deduplicates, resolves and cools down", async () => {
    const sla = { p95_latency_ms: 50, max_error_rate: 0.01, availability_slo: { target: 0.999 }, latency_slo: { threshold_ms: 100, target: 0.99 }, cooldown_minutes: 15 };
    const put = await call("PUT", "/admin/monitoring/credit-risk/sla", sla, ADMIN);
    expect(put.status, put.text).toBe(200);
    expect((await call("PUT", "/admin/monitoring/credit-risk/sla", { ...sla, max_error_rate: 2 }, ADMIN)).status).toBe(422);
    // A p99 target below the p95 target was accepted; refused, and the stored SLA is unchanged.
    const inverted = await call("PUT", "/admin/monitoring/credit-risk/sla", { ...sla, p99_latency_ms: 40 }, ADMIN);
    expect(inverted.status, inverted.text).toBe(422);
    expect(inverted.json.error.details).toEqual([expect.objectContaining({ path: "p99_latency_ms" })]);
    expect((await call("GET", "/admin/monitoring/credit-risk/sla", undefined, ADMIN)).json.config).toMatchObject({ p95_latency_ms: 50 });
    expect((await call("GET", "/admin/monitoring/credit-risk/sla", undefined, ADMIN)).json.config.p99_latency_ms).toBeUndefined();

    await traffic(200, 20, 120); // 10 % server errors, every request slower than both latency targets

    const first = await call("POST", "/admin/monitoring/credit-risk/evaluate", undefined, ADMIN);
    expect(first.status, first.text).toBe(200);
    const ev = first.json.evaluations[0];
    expect(ev.version).toBe("1.0.0");
    expect(ev.fired.sort()).toEqual(
      ["1.0.0:availability_burn_fast", "1.0.0:availability_burn_slow", "1.0.0:error_rate", "1.0.0:latency_burn_fast", "1.0.0:latency_burn_slow", "1.0.0:latency_p95"].sort(),
    );
    const burn = ev.checks.find((c: any) => c.rule === "availability_burn_fast");
    expect(burn.value).toBeCloseTo(0.1 / 0.001, 6); // burn rate 100x in both the 1 h and 5 min windows

    // Slack-compatible and signed generic webhooks arrive through the queue consumer.
    const slack = await eventually(async () => {
      const r = await received("/alerts/slack");
      expect(r.length).toBe(6); // all six alerts are >= warning
      return r;
    });
    const slackBody = JSON.parse(slack.find((r) => r.body.includes("error_rate"))!.body);
    expect(slackBody.text).toContain("FIRING: error_rate on credit-risk@1.0.0");
    expect(slackBody.blocks[0].type).toBe("section");
    const hooks = await eventually(async () => {
      const r = await received("/alerts/hook");
      expect(r.length).toBe(6);
      return r;
    });
    for (const h of hooks) {
      const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(h.headers["x-edge-ml-signature"])!;
      expect(v1).toBe(await hmacHex(SECRET, `${t}.${h.body}`));
      expect(JSON.parse(h.body)).toMatchObject({ kind: "alert", model: "credit-risk", state: "firing" });
      expect(h.headers["x-edge-ml-delivery"]).toMatch(/^[0-9a-f-]{36}$/);
    }

    // Same conditions again: deduplicated, nothing new is sent.
    const second = await call("POST", "/admin/monitoring/credit-risk/evaluate", undefined, ADMIN);
    expect(second.json.evaluations[0].fired).toEqual([]);
    const alerts = await call("GET", "/v1/monitoring/models/credit-risk/alerts");
    expect(alerts.json.active).toHaveLength(6);
    expect(alerts.json.active.find((a: any) => a.rule === "error_rate").severity).toBe("critical");

    // Compliance: the SLA thresholds (latency p95, error rate) are violated.
    const compliance = await call("GET", "/v1/monitoring/models/credit-risk/sla");
    expect(compliance.json.compliance[0].current).toMatchObject({ compliant: false, violations: ["latency_p95", "error_rate"] });
    expect(compliance.json.compliance[0].windows["24h"]).toEqual({ evaluations: 2, compliant_share: 0 });

    // Loosen the SLA: everything resolves (and is announced).
    await call("PUT", "/admin/monitoring/credit-risk/sla", { p95_latency_ms: 500, max_error_rate: 0.5, cooldown_minutes: 15 }, ADMIN);
    const third = await call("POST", "/admin/monitoring/credit-risk/evaluate", undefined, ADMIN);
    expect(third.json.evaluations[0].resolved).toEqual(expect.arrayContaining(["1.0.0:latency_p95", "1.0.0:error_rate"]));
    await eventually(async () => expect((await received("/alerts/hook")).filter((h) => JSON.parse(h.body).state === "resolved").length).toBeGreaterThanOrEqual(2));
    expect((await call("GET", "/v1/monitoring/models/credit-risk/sla")).json.compliance[0].current.compliant).toBe(true);

    // Tighten again within the cool-down: the alert fires again but is not re-notified.
    await call("PUT", "/admin/monitoring/credit-risk/sla", { p95_latency_ms: 50, cooldown_minutes: 15 }, ADMIN);
    const fourth = await call("POST", "/admin/monitoring/credit-risk/evaluate", undefined, ADMIN);
    expect(fourth.json.evaluations[0].suppressed).toEqual(["1.0.0:latency_p95"]);
    const history = (await call("GET", "/v1/monitoring/models/credit-risk/alerts")).json.history;
    expect(history[0]).toMatchObject({ rule: "latency_p95", state: "firing", notified: 0 });
    expect(history.filter((h: any) => h.rule === "latency_p95").map((h: any) => h.state)).toEqual(["firing", "resolved", "firing"]);
  });
});

describe("queue consumer", () => {
  const message = (target: string, id = crypto.randomUUID()): NotificationMessage => ({
    id,
    model: "credit-risk",
    target,
    notification: { kind: "alert", model: "credit-risk", version: "1.0.0", severity: "critical", state: "firing", rule: "error_rate", title: "FIRING: error_rate", text: "server error rate 0.1", at: Date.now() },
  });

  it("acks delivered messages (webhook and e-mail) and retries when the receiver is down", async () => {
    await call("PUT", "/admin/monitoring/credit-risk/targets", { targets: [...TARGETS, { id: "down", type: "webhook", url: "https://hooks.test/fail/down", secret: SECRET }] }, ADMIN);
    const batch = createMessageBatch("edge-ml-notifications", [
      { id: "m-hook", timestamp: new Date(), attempts: 1, body: message("hook") },
      { id: "m-mail", timestamp: new Date(), attempts: 1, body: message("mail") },
      { id: "m-down", timestamp: new Date(), attempts: 3, body: message("down") },
      { id: "m-gone", timestamp: new Date(), attempts: 1, body: message("removed-target") },
    ]);
    const ctx = createExecutionContext();
    await worker.queue!(batch as MessageBatch<unknown>, env);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks.sort()).toEqual(["m-gone", "m-hook", "m-mail"]);
    expect(result.retryMessages).toMatchObject([{ msgId: "m-down" }]);
  });

  it("records dead letters from the DLQ and replays them", async () => {
    const batch = createMessageBatch("edge-ml-notifications-dlq", [{ id: "d1", timestamp: new Date(), attempts: 9, body: message("down", "dead-1") }]);
    const ctx = createExecutionContext();
    await worker.queue!(batch as MessageBatch<unknown>, env);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(["d1"]);
    const dead = await call("GET", "/admin/monitoring/credit-risk/dead-letters", undefined, ADMIN);
    expect(dead.json.dead_letters).toMatchObject([{ id: "dead-1", attempts: 9, message: { target: "down" } }]);
    const replay = await call("POST", "/admin/monitoring/credit-risk/dead-letters/replay", undefined, ADMIN);
    expect(replay.json.replayed).toBe(1);
    expect((await call("GET", "/admin/monitoring/credit-risk/dead-letters", undefined, ADMIN)).json.dead_letters).toEqual([]);
  });

  it("dispatches a deployed environment's suffixed queues by their base name (QUEUE_SUFFIX)", async () => {
    // deploy:setup names production's queues edge-ml-…-production; its DLQ must still be read as the DLQ.
    const production = { ...env, QUEUE_SUFFIX: "-production" } as Env;
    const batch = createMessageBatch("edge-ml-notifications-dlq-production", [{ id: "p1", timestamp: new Date(), attempts: 9, body: message("down", "dead-prod") }]);
    const ctx = createExecutionContext();
    await worker.queue!(batch as MessageBatch<unknown>, production);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(["p1"]);
    const dead = await call("GET", "/admin/monitoring/credit-risk/dead-letters", undefined, ADMIN);
    expect(dead.json.dead_letters).toMatchObject([{ id: "dead-prod", attempts: 9, message: { target: "down" } }]);
    await call("POST", "/admin/monitoring/credit-risk/dead-letters/replay", undefined, ADMIN);
    // A queue the worker has no consumer for fails its batch (retried, then dead-lettered), never misread.
    const stray = createMessageBatch("edge-ml-unknown-production", [{ id: "s1", timestamp: new Date(), attempts: 1, body: message("down") }]);
    await expect(worker.queue!(stray as MessageBatch<unknown>, production)).rejects.toThrow(/no consumer for queue 'edge-ml-unknown-production'/);
  });
});

describe("cron", () => {
  it("every minute evaluates; at 06:00 publishes the daily drift report to R2 and announces it", async () => {
    const holdout = (await repoJson("models/credit-risk-holdout.json")).rows;
    // Every third holdout row: the file's order is not random (its first rows differ from training in Expenses).
    const sample = holdout.filter((_: unknown, i: number) => i % 3 === 0).map((r: any) => r.features);
    expect((await call("POST", "/v1/models/credit-risk/predict", { instances: sample })).status).toBe(200);
    await eventually(async () => expect((await call("GET", "/v1/monitoring/models/credit-risk/summary?window=5m")).json.versions[0].rows).toBeGreaterThanOrEqual(297));

    await call("PUT", "/admin/monitoring/credit-risk/sla", { p95_latency_ms: 10_000 }, ADMIN);
    const now = Date.now();
    const minute = createScheduledController({ cron: "* * * * *", scheduledTime: now });
    let ctx = createExecutionContext();
    await worker.scheduled!(minute, env, ctx);
    await waitOnExecutionContext(ctx);
    const compliance = (await call("GET", "/v1/monitoring/models/credit-risk/sla")).json.compliance[0];
    expect(compliance.current.evaluated_at).toBe(now);

    const daily = createScheduledController({ cron: "0 6 * * *", scheduledTime: now });
    ctx = createExecutionContext();
    await worker.scheduled!(daily, env, ctx);
    await waitOnExecutionContext(ctx);
    const date = new Date(now).toISOString().slice(0, 10);
    const json = await env.ARTIFACTS.get(`reports/drift/credit-risk/1.0.0/${date}.json`);
    expect(json).not.toBeNull();
    const report = await json!.json<any>();
    expect(report).toMatchObject({ model: "credit-risk", version: "1.0.0", date });
    expect(report.drift.has_drift, JSON.stringify(report.drift.drifted_features)).toBe(false);
    expect(report.summary.rows).toBeGreaterThanOrEqual(297);
    const html = await call("GET", `/admin/monitoring/credit-risk/reports/1.0.0/${date}.html`, undefined, ADMIN);
    expect(html.status).toBe(200);
    expect(html.text).toContain("Drift report: credit-risk@1.0.0");
    // Announced to targets that take reports (the webhook and Slack; the e-mail target opted out).
    await eventually(async () => expect((await received("/alerts/hook")).some((h) => JSON.parse(h.body).kind === "report")).toBe(true));
  });
});
