/**
 * Alert outcomes a receiver can rely on: a firing suppressed by the cool-down is notified once the
 * cool-down ends while it still fires; an alert whose version stops getting traffic moves to a
 * visible `no_data` state that is notified, and resolves when its rule is dropped; history records
 * per target what was queued and delivered (nothing when no target takes the severity); dead
 * letters carry the real attempt count; error-rate and latency thresholds need evidence, not a
 * handful of requests. Evaluations run against the model's real ModelControl
 * object and, for `no_data`, the real monitoring windows; deliveries go through the real Queue to
 * the test webhook sink.
 */
import { createExecutionContext, createMessageBatch, env, getQueueResult } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../../src/index";
import { emptyAggregate } from "../../src/monitoring/aggregate";
import { MINUTE, shardName } from "../../src/monitoring/config";
import { evaluateModel } from "../../src/monitoring/evaluate";
import type { NotificationMessage } from "../../src/monitoring/notify";
import { DEFAULT_SLA, evaluateChecks, type Check } from "../../src/monitoring/sla";
import { binomialUpperTail } from "../../src/stats/binomial";
import { DDSketch } from "../../src/stats/sketch";
import { ADMIN, call, registerStem } from "../support/api";
import { eventually } from "./helpers";

const SECRET = "0123456789abcdef-secret";

async function received(prefix: string): Promise<{ path: string; body: string }[]> {
  return (await env.TEST_WEBHOOK_SINK.fetch(`http://sink/_received?prefix=${encodeURIComponent(prefix)}`)).json();
}

const latency = (firing: boolean, value = firing ? 80 : 20): Check => ({
  rule: "latency_p95",
  severity: "warning",
  firing,
  value,
  threshold: 50,
  message: `p95 latency ${value} ms (5m) vs SLA 50 ms`,
  sla: true,
});

async function setUp(model: string, targets: unknown[], sla: Record<string, unknown>) {
  const control = env.MODEL_CONTROL.getByName(model);
  await control.setSla({ ...DEFAULT_SLA, ...sla }, "test");
  await control.setTargets(targets as never);
  return control;
}

describe("cool-down", () => {
  it("notifies a firing that the cool-down suppressed once the cool-down ends and it still fires", async () => {
    const control = await setUp("cool", [{ id: "hook", type: "webhook", url: "https://hooks.test/cool/hook", secret: SECRET, min_severity: "info", reports: false }], { p95_latency_ms: 50, cooldown_minutes: 15 });
    const t0 = Date.now();
    expect((await control.applyEvaluation("cool", "1.0.0", t0, [latency(true)])).fired).toEqual(["1.0.0:latency_p95"]);
    expect((await control.applyEvaluation("cool", "1.0.0", t0 + MINUTE, [latency(false)])).resolved).toEqual(["1.0.0:latency_p95"]);
    expect((await control.applyEvaluation("cool", "1.0.0", t0 + 2 * MINUTE, [latency(true)])).suppressed).toEqual(["1.0.0:latency_p95"]);
    // Still inside the 15 minutes since the last notification (t0): nothing.
    expect(await control.applyEvaluation("cool", "1.0.0", t0 + 10 * MINUTE, [latency(true)])).toMatchObject({ fired: [], suppressed: [] });
    // The cool-down is over and it still fires: notified now, once.
    expect((await control.applyEvaluation("cool", "1.0.0", t0 + 15 * MINUTE, [latency(true)])).fired).toEqual(["1.0.0:latency_p95"]);
    expect((await control.applyEvaluation("cool", "1.0.0", t0 + 16 * MINUTE, [latency(true)])).fired).toEqual([]);

    const { history } = await control.alerts(10);
    expect(history.map((h) => [h.state, h.notified, (h.at - t0) / MINUTE])).toEqual([
      ["firing", 1, 15],
      ["firing", 0, 2],
      ["resolved", 1, 1],
      ["firing", 1, 0],
    ]);
    await eventually(async () => {
      const states = (await received("/cool/hook")).map((r) => JSON.parse(r.body).state);
      expect(states).toEqual(["firing", "resolved", "firing"]);
    });
  });

  it("resolves a suppressed firing silently: its receivers never heard of it", async () => {
    const control = await setUp("cool-quiet", [{ id: "hook", type: "webhook", url: "https://hooks.test/cool-quiet/hook", secret: SECRET, min_severity: "info", reports: false }], { p95_latency_ms: 50, cooldown_minutes: 15 });
    const t0 = Date.now();
    await control.applyEvaluation("cool-quiet", "1.0.0", t0, [latency(true)]);
    await control.applyEvaluation("cool-quiet", "1.0.0", t0 + MINUTE, [latency(false)]);
    await control.applyEvaluation("cool-quiet", "1.0.0", t0 + 2 * MINUTE, [latency(true)]);
    await control.applyEvaluation("cool-quiet", "1.0.0", t0 + 3 * MINUTE, [latency(false)]);
    const { history } = await control.alerts(10);
    expect(history.map((h) => [h.state, h.notified])).toEqual([
      ["resolved", 0],
      ["firing", 0],
      ["resolved", 1],
      ["firing", 1],
    ]);
  });
});

describe("no data", () => {
  const M = "alert-nodata";
  beforeAll(async () => {
    expect((await registerStem("models", "credit-risk-lr", ["champion"], { name: M })).status).toBe(201);
  });

  it("moves a firing alert whose version gets no more traffic to no_data, notified; data coming back resolves it", async () => {
    const control = await setUp(M, [{ id: "hook", type: "webhook", url: "https://hooks.test/nodata/hook", secret: SECRET, min_severity: "warning", reports: false }], { p95_latency_ms: 50, cooldown_minutes: 15 });
    // One minute of slow traffic, then none.
    const a = emptyAggregate();
    a.requests = 50;
    a.rows = 50;
    const sketch = new DDSketch();
    for (let i = 0; i < 50; i++) sketch.add(120);
    a.latency = sketch.toJSON();
    const now = Date.now();
    await env.MONITOR_SHARD.getByName(shardName(M, "1.0.0", 0)).ingest({ model: M, version: "1.0.0", buckets: { [String(Math.floor(now / MINUTE) * MINUTE)]: a } });
    await control.touch("1.0.0", shardName(M, "1.0.0", 0));

    const first = await evaluateModel(env, M, now);
    expect(first[0].fired).toContain("1.0.0:latency_p95");
    // Ten minutes later the 5-minute window is empty: the check has no data.
    const later = await evaluateModel(env, M, now + 10 * MINUTE);
    expect(later[0].checks.find((c) => c.rule === "latency_p95")).toBeUndefined();
    expect((later[0] as unknown as { no_data: string[] }).no_data).toEqual(["1.0.0:latency_p95"]);
    const alerts = (await call("GET", `/v1/monitoring/models/${M}/alerts`)).json;
    expect(alerts.active.map((x: any) => x.rule)).not.toContain("latency_p95");
    expect(alerts.no_data).toMatchObject([{ rule: "latency_p95", state: "no_data", version: "1.0.0" }]);
    expect(alerts.history[0]).toMatchObject({ rule: "latency_p95", state: "no_data", notified: 1 });
    await eventually(async () => {
      const bodies = (await received("/nodata/hook")).map((r) => JSON.parse(r.body));
      expect(bodies.map((b) => b.state)).toEqual(["firing", "no_data"]);
      expect(bodies[1].title).toBe(`NO DATA: latency_p95 on ${M}@1.0.0`);
    });
    // Another evaluation without data: no repeat.
    expect((await evaluateModel(env, M, now + 11 * MINUTE))[0]).toMatchObject({ fired: [], resolved: [] });
    // Healthy data again: resolved (and announced).
    expect((await control.applyEvaluation(M, "1.0.0", now + 12 * MINUTE, [latency(false)])).resolved).toEqual(["1.0.0:latency_p95"]);
    expect((await control.alerts(1)).no_data).toEqual([]);
  });

  it("resolves a firing alert whose rule is no longer configured", async () => {
    const control = await setUp("dropped-rule", [], { p95_latency_ms: 50 });
    const t0 = Date.now();
    await control.applyEvaluation("dropped-rule", "1.0.0", t0, [latency(true)]);
    await control.setSla({ ...DEFAULT_SLA }, "test");
    const r = await control.applyEvaluation("dropped-rule", "1.0.0", t0 + MINUTE, []);
    expect(r).toMatchObject({ resolved: ["1.0.0:latency_p95"], no_data: [] });
    expect((await control.alerts(1)).history[0]).toMatchObject({ state: "resolved", message: "latency_p95 is no longer configured in the SLA" });
  });
});

describe("deliveries per target", () => {
  it("records nothing sent when no target takes the severity, and each target's delivery otherwise", async () => {
    const targets = [
      { id: "crit-hook", type: "webhook", url: "https://hooks.test/deliv/crit", secret: SECRET, min_severity: "critical", reports: false },
      { id: "warn-slack", type: "slack", url: "https://hooks.test/deliv/slack", min_severity: "warning", reports: false },
      { id: "down", type: "webhook", url: "https://hooks.test/fail/deliv", secret: SECRET, min_severity: "warning", reports: false },
    ];
    const control = await setUp("deliv", targets, { p95_latency_ms: 50, max_error_rate: 0.01 });
    const t0 = Date.now();
    const info: Check = { ...latency(true), severity: "info", rule: "feature_drift", value: 2, threshold: 0, message: "feature drift: a, b", sla: false };
    await control.applyEvaluation("deliv", "1.0.0", t0, [info]);
    const quiet = (await control.alerts(1)).history[0];
    expect(quiet).toMatchObject({ rule: "feature_drift", state: "firing", notified: 0, deliveries: [] });

    await control.applyEvaluation("deliv", "1.0.0", t0 + MINUTE, [info, latency(true)]);
    const warned = await eventually(async () => {
      const h = (await control.alerts(1)).history[0];
      expect(h.deliveries.find((d) => d.target === "warn-slack")?.state, JSON.stringify(h)).toBe("delivered");
      expect(h.deliveries.find((d) => d.target === "down")?.state).toBe("retrying");
      return h;
    });
    expect(warned.notified).toBe(2); // the critical-only hook does not take warnings
    expect(warned.deliveries.map((d) => d.target)).toEqual(["down", "warn-slack"]);
    expect(warned.deliveries.find((d) => d.target === "warn-slack")).toMatchObject({ attempts: 1, error: null });
    expect(warned.deliveries.find((d) => d.target === "down")).toMatchObject({ attempts: 1, error: "receiver answered 503" });
  });
});

describe("dead letters", () => {
  const message = (target: string, id = crypto.randomUUID()): NotificationMessage => ({
    id,
    model: "dead",
    target,
    notification: { kind: "alert", model: "dead", version: "1.0.0", severity: "critical", state: "firing", rule: "error_rate", title: "FIRING: error_rate", text: "x", at: Date.now() },
  });

  it("parks a message after its last failed attempt with the real attempt count and error", async () => {
    await setUp("dead", [{ id: "down", type: "webhook", url: "https://hooks.test/fail/dead", secret: SECRET, min_severity: "info", reports: false }], {});
    const batch = createMessageBatch("edge-ml-notifications", [
      { id: "early", timestamp: new Date(), attempts: 4, body: message("down", "dead-early") },
      { id: "last", timestamp: new Date(), attempts: 9, body: message("down", "dead-last") },
    ]);
    const ctx = createExecutionContext();
    await worker.queue!(batch as MessageBatch<unknown>, env);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual(["last"]);
    expect(result.retryMessages).toMatchObject([{ msgId: "early" }]);
    const dead = await env.MODEL_CONTROL.getByName("dead").deadLetters();
    expect(dead).toMatchObject([{ id: "dead-last", attempts: 9 }]);
  });

  it("a message that reaches the dead-letter queue is recorded with at least the attempts the queue gave it, not the DLQ's own count", async () => {
    const batch = createMessageBatch("edge-ml-notifications-dlq", [{ id: "d", timestamp: new Date(), attempts: 1, body: message("down", "dead-dlq") }]);
    const ctx = createExecutionContext();
    await worker.queue!(batch as MessageBatch<unknown>, env);
    await getQueueResult(batch, ctx);
    const dead = await env.MODEL_CONTROL.getByName("dead").deadLetters();
    expect(dead.find((d) => d.id === "dead-dlq")?.attempts).toBe(9);
  });
});

describe("threshold alerts on small windows", () => {
  const window5m = (requests: number, errors: number, slow: number, slowMs = 200) => {
    const a = emptyAggregate();
    a.requests = requests;
    if (errors) a.errors["500 internal_error"] = errors;
    const sketch = new DDSketch();
    for (let i = 0; i < requests - errors; i++) sketch.add(i < slow ? slowMs : 5);
    a.latency = sketch.toJSON();
    return a;
  };
  const checks = (a: ReturnType<typeof emptyAggregate>) =>
    evaluateChecks({ ...DEFAULT_SLA, max_error_rate: 0.01, p95_latency_ms: 50 }, { windows: { "5m": a, "30m": a, "1h": a, "6h": a }, drift: null, performance: null });
  const rule = (cs: Check[], name: string) => cs.find((c) => c.rule === name)!;

  it("one error in two requests, or two slow requests in ten, is not a breach", () => {
    const few = checks(window5m(2, 1, 0));
    expect(rule(few, "error_rate")).toMatchObject({ value: 0.5, firing: false });
    expect(rule(few, "error_rate").message).toMatch(/\(1\/2, 5m\) vs SLA 0\.01 \(p = 0\.0199\)/);
    const slowOne = checks(window5m(10, 0, 2));
    expect(rule(slowOne, "latency_p95").value).toBeGreaterThan(50);
    expect(rule(slowOne, "latency_p95").firing).toBe(false);
  });

  it("fires once the window is evidence: 20 errors in 200 requests, 30 of 200 slower than the SLA", () => {
    const many = checks(window5m(200, 20, 30));
    expect(rule(many, "error_rate").firing).toBe(true);
    expect(rule(many, "latency_p95").firing).toBe(true);
  });

  it("binomial tails match scipy.stats.binom.sf", () => {
    // python3 -c "from scipy.stats import binom; print(binom.sf(k - 1, n, p))"
    for (const [k, n, p, ref] of [
      [9, 50, 0.05, 0.0007559846912214758],
      [3, 100, 0.01, 0.07937320225218046],
      [20, 200, 0.01, 2.892428691572964e-14],
      [1, 2, 0.01, 0.0199],
      [40, 1000, 0.05, 0.9401851209480968],
      [50, 1000, 0.05, 0.5202589429126795],
      [5000, 100000, 0.05, 0.5020259614598019],
    ]) {
      expect(binomialUpperTail(k, n, p) / ref).toBeCloseTo(1, 8);
    }
  });
});
