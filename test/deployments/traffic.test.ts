/**
 * Deployments driven by live traffic and the cron task, through the real worker and its Durable
 * Objects: canary steps advance when the canary is not worse and roll back automatically when it
 * is; routing changes reach an isolate within the documented bound; A/B results report volume,
 * latency, score distribution and a significance test that declares a clear winner; a shadow that
 * throws or hangs changes nothing for the caller; the bandit moves traffic toward rewarded variants.
 */
import { emptyAggregate } from "../../src/monitoring/aggregate";
import { shardName } from "../../src/monitoring/config";
import { DDSketch } from "../../src/stats/sketch";
import { mulberry32 } from "../../src/stats/random";
import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../../src/index";
import { recordFeedback } from "../../src/deployments/listeners";
import { statsFor } from "../../src/deployments/live-stats";
import { routingFor, routingTimings, routingTokenKey } from "../../src/deployments/routing";
import { onPrediction } from "../../src/serving/events";
import { ADMIN, call, registerStem } from "../support/api";
import { admin, createStarted, holdoutSet, predict, setupModel, storeTestSet, until } from "./helpers";

async function runCron(at = Date.now()) {
  const controller = createScheduledController({ scheduledTime: at, cron: "* * * * *" });
  const ctx = createExecutionContext();
  await worker.scheduled(controller, env, ctx);
  await waitOnExecutionContext(ctx);
}

/** Requests the monitoring objects hold for a model over the last 5 minutes, all versions. */
async function monitored(model: string) {
  const r = await call("GET", `/v1/monitoring/models/${model}/summary?window=5m`);
  return (r.json.versions ?? []).reduce((s: number, v: any) => s + v.requests, 0) as number;
}

/** Puts synthetic traffic into a version's monitoring shard, as isolates' flushes do. */
async function ingest(model: string, version: string, o: { ok: number; errors?: number; latencyMs?: number; score?: number }) {
  const agg = emptyAggregate();
  agg.requests = o.ok + (o.errors ?? 0);
  agg.rows = o.ok;
  if (o.errors) agg.errors["500 internal_error"] = o.errors;
  const sketch = new DDSketch(0.01);
  for (let i = 0; i < agg.requests; i++) sketch.add(o.latencyMs ?? 1);
  agg.latency = sketch.toJSON();
  agg.score.sample = { seen: o.ok, values: Array(o.ok).fill(o.score ?? 0.2) };
  const minute = Math.floor(Date.now() / 60_000) * 60_000;
  await env.MONITOR_SHARD.getByName(shardName(model, version, 0)).ingest({ model, version, buckets: { [minute]: agg } });
}

async function requestsRecorded(id: string) {
  const r = await admin("GET", `/${id}/results`);
  return r.json.variants.reduce((s: number, v: any) => s + v.requests, 0) as number;
}

describe("canary", () => {
  const M = "dep-canary";
  beforeAll(async () => {
    await setupModel(M, [{ stem: "credit-risk-lr", version: "1.0.1" }]);
    await storeTestSet(M);
  });

  it("advances step by step on healthy live metrics and completes, moving the champion", async () => {
    // Latency under a loaded test machine is not what this test is about: a wide p95 allowance.
    const analysis = { step_minutes: 0, min_requests: 5, max_psi: 5, p95_slack_ms: 10_000 };
    const id = await createStarted({ strategy: "canary", model: M, version: "1.0.1", steps: [20, 60, 100], analysis });
    const weights: number[] = [];
    let sent = 0;
    for (let round = 0; round < 3; round++) {
      const state = (await admin("GET", `/${id}`)).json.deployment;
      weights.push(state.variants.find((v: any) => v.name === "canary").weight);
      const variants = new Set<string>();
      for (let i = 0; i < 60; i++) variants.add((await predict(M, { unit: `r${round}-u${i}`, row: i })).variant!);
      sent += 60;
      await until(() => monitored(M), (n) => n >= sent);
      await runCron();
      if (round === 0) expect(variants).toEqual(new Set(["stable", "canary"]));
      const after = (await admin("GET", `/${id}`)).json.deployment;
      expect(after.config.step ?? 0, `cron did not advance round ${round}: ${JSON.stringify(after.config.last_analysis)} ${JSON.stringify((await admin("GET", `/${id}/history`)).json.events.at(-1))}`).toBe(round === 2 ? after.config.step : round + 1);
    }
    expect(weights).toEqual([20, 60, 100]);
    const done = (await admin("GET", `/${id}`)).json.deployment;
    expect(done.state, JSON.stringify((await admin("GET", `/${id}/history`)).json.events.at(-1))).toBe("completed");
    expect((await call("GET", `/admin/models/${M}`, undefined, ADMIN)).json.aliases.champion).toBe("1.0.1");
    const actions = (await admin("GET", `/${id}/history`)).json.events.map((e: any) => `${e.actor}:${e.action}`);
    expect(actions).toEqual(["admin:create", "admin:validate", "admin:start", "cron:advance", "cron:advance_to_full", "cron:promote"]);
    // Put the champion back for the next test.
    expect((await admin("POST", `/${id}/rollback`, { reason: "reset" })).status).toBe(200);
  });

  it("rolls back automatically when the canary's error rate is worse, and holds without enough data", async () => {
    const id = await createStarted({ strategy: "canary", model: M, version: "1.1.0", steps: [10, 100], analysis: { step_minutes: 0, min_requests: 20 } });
    await ingest(M, "1.1.0", { ok: 0, errors: 10 });
    await runCron();
    expect((await admin("GET", `/${id}`)).json.deployment.state).toBe("active"); // 10 < min_requests: hold
    await ingest(M, "1.0.0", { ok: 100 });
    await ingest(M, "1.1.0", { ok: 20 });
    await runCron();
    const d = (await admin("GET", `/${id}`)).json.deployment;
    expect(d.state).toBe("rolled_back");
    const last = (await admin("GET", `/${id}/history`)).json.events.at(-1);
    expect(last).toMatchObject({ actor: "cron", action: "rollback" });
    expect(last.reason).toMatch(/automatic rollback: error rate 33\.33% \(10\/30\) vs stable 0\.00%: lower bound of the increase/);
    expect((await predict(M)).version).toBe("1.0.0");
  });

  it("a paused canary is not advanced; manual promote works at any step", async () => {
    const id = await createStarted({ strategy: "canary", model: M, version: "1.1.0", analysis: { step_minutes: 0, min_requests: 1, max_psi: 5 } });
    await admin("POST", `/${id}/pause`, { reason: "hold on" });
    await ingest(M, "1.0.0", { ok: 5, score: 0.3 });
    await ingest(M, "1.1.0", { ok: 5, score: 0.3 });
    await runCron();
    const paused = (await admin("GET", `/${id}`)).json.deployment;
    expect([paused.state, paused.config.step]).toEqual(["paused", 0]);
    expect((await admin("POST", `/${id}/promote`, { reason: "confident" })).json.deployment.state).toBe("completed");
    expect((await predict(M)).version).toBe("1.1.0");
    await admin("POST", `/${id}/rollback`, {});
  });
});

describe("configuration propagation", () => {
  const M = "dep-propagate";
  beforeAll(async () => {
    await setupModel(M);
    await storeTestSet(M);
  });

  it("an isolate follows a change made elsewhere within the check interval (KV) and the max staleness (D1)", async () => {
    const { checkMs, maxStaleMs } = routingTimings(env);
    expect([checkMs, maxStaleMs]).toEqual([2000, 10_000]);
    const t0 = Date.now() + 60_000; // a clock ahead of anything cached so far
    expect(await routingFor(env, M, t0)).toBeNull();
    // Another isolate starts a deployment: D1 row + KV token. This isolate's cache is not told.
    const id = await createStarted({ strategy: "blue_green", model: M, version: "1.1.0" });
    await routingFor(env, M, t0 + 1); // (the test shares the worker's isolate; re-prime the stale view)
    await env.DB.prepare("UPDATE deployments SET state = 'rolled_back' WHERE id = ?").bind(id).run();
    await env.CONFIG.put(routingTokenKey(M), "changed-elsewhere");
    const t1 = t0 + 1;
    expect((await routingFor(env, M, t1 + checkMs - 1))?.deployment.id).toBe(id); // still cached
    expect(await routingFor(env, M, t1 + checkMs)).toBeNull(); // token changed: reloaded
    // Without a KV bump the D1 max staleness still bounds it.
    await env.DB.prepare("UPDATE deployments SET state = 'active' WHERE id = ?").bind(id).run();
    const t2 = t1 + checkMs;
    expect(await routingFor(env, M, t2 + checkMs)).toBeNull(); // token unchanged: cached view kept
    expect((await routingFor(env, M, t2 + maxStaleMs))?.deployment.id).toBe(id);
    await env.DB.prepare("UPDATE deployments SET state = 'rolled_back' WHERE id = ?").bind(id).run();
    await env.CONFIG.put(routingTokenKey(M), "reset");
  });
});

describe("A/B results", () => {
  const M = "dep-ab";
  beforeAll(async () => {
    await setupModel(M, [{ stem: "credit-risk-lr", version: "1.0.1" }]);
    await storeTestSet(M);
  });

  it("reports volume, latency and scores per variant, and a clear winner once labels say so", async () => {
    const variants = [
      { name: "control", version: "1.0.0", weight: 50 },
      { name: "trees", version: "1.1.0", weight: 30 },
      { name: "copy", version: "1.0.1", weight: 20 },
    ];
    const id = await createStarted({ strategy: "ab_test", model: M, variants, metric: "conversion" });
    const counts: Record<string, number> = {};
    for (let i = 0; i < 120; i++) {
      const r = await predict(M, { unit: `ab-${i}`, row: i });
      counts[r.variant!] = (counts[r.variant!] ?? 0) + 1;
    }
    await until(() => requestsRecorded(id), (n) => n >= 120);
    let res = await admin("GET", `/${id}/results`);
    expect(res.status).toBe(200);
    for (const v of res.json.variants) {
      expect(v.requests).toBe(counts[v.name] ?? 0);
      if (v.requests) {
        expect(v.latency_ms.p95).not.toBeNull();
        expect(v.score.rows).toBe(v.requests);
        expect(v.score.histogram.reduce((a: number, b: number) => a + b, 0)).toBe(v.requests);
      }
    }
    expect(res.json.winner).toMatchObject({ clear: false, variant: null });

    // Labels arrive as feedback events (emitted by the monitoring capability's feedback join).
    const rand = mulberry32(5);
    const rates: Record<string, number> = { control: 0.1, trees: 0.3, copy: 0.1 };
    for (const v of variants) {
      for (let i = 0; i < 300; i++) {
        await recordFeedback(env, { requestId: `r-${v.name}-${i}`, row: 0, model: M, version: v.version, deployment: id, variant: v.name, score: rand(), actual: rand() < rates[v.name] ? 1 : 0, predictedAt: Date.now(), at: Date.now() });
      }
    }
    res = await admin("GET", `/${id}/results`);
    expect(res.json.winner).toMatchObject({ clear: true, variant: "trees" });
    expect(res.json.comparisons).toHaveLength(2);
    for (const c of res.json.comparisons) expect(c.p_value).toBeLessThan(0.025);
    const trees = res.json.variants.find((v: any) => v.name === "trees");
    expect(trees.feedback.labelled).toBe(300);
    expect(trees.feedback.conversion).toBeGreaterThan(0.2);
    expect((await admin("POST", `/${id}/promote`, { variant: "trees", reason: "clear winner" })).json.deployment.config.promoted).toBe("1.1.0");
  });
});

describe("shadow", () => {
  const M = "dep-shadow";
  beforeAll(async () => {
    await setupModel(M);
    await storeTestSet(M);
  });

  it("scores a copy of the traffic in the background and records agreement and score differences", async () => {
    const id = await createStarted({ strategy: "shadow", model: M, version: "1.1.0", fraction: 100 });
    for (let i = 0; i < 10; i++) {
      const r = await predict(M, { row: i });
      expect([r.status, r.version, r.variant]).toEqual([200, "1.0.0", "primary"]);
    }
    // Every row is accounted for: compared, or skipped by the isolate's SHADOW_CPU_SHARE (default 5%).
    // On a loaded machine the shadow's first session load can use the share up (a full run once
    // read compared_rows 3), so the test waits for all ten and needs at least one compared.
    const res = await until(
      () => admin("GET", `/${id}/results`),
      (r) => r.json.shadow.requests >= 10 && r.json.shadow.compared_rows + r.json.shadow.skipped_rows >= 10,
    );
    expect(res.json.shadow).toMatchObject({ version: "1.1.0", requests: 10, errors: 0 });
    expect(res.json.shadow.compared_rows + res.json.shadow.skipped_rows).toBe(10);
    expect(res.json.shadow.compared_rows).toBeGreaterThan(0);
    expect(res.json.shadow.agreement_rate).toBeGreaterThan(0.5);
    expect(res.json.shadow.abs_score_diff.mean).toBeGreaterThan(0);
    await admin("POST", `/${id}/abort`, {});
  });

  it("a shadow that throws or hangs changes nothing for the caller", async () => {
    // Fault injection: a shadow version the live rows do not fit (it throws on every request),
    // forced active without validation, plus a prediction listener that hangs until the test
    // releases it (after every caller has its answer).
    expect((await registerStem("test/fixtures/onnx", "lr-gemm-sigmoid", [], { name: M, version: "3.0.0" })).status).toBe(201);
    const created = await admin("POST", "/", { strategy: "shadow", model: M, version: "3.0.0" });
    const id = created.json.deployment.id;
    await env.DB.prepare("UPDATE deployments SET state = 'active' WHERE id = ?").bind(id).run();
    await env.CONFIG.put(routingTokenKey(M), `forced-${Date.now()}`);
    let hung = 0;
    let released = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    onPrediction(async (_env, event) => {
      if (event.dispatch.deployment !== id) return;
      hung++;
      await gate;
      released++;
    });
    const direct = await call("POST", `/v1/models/${M}/predict`, { features: (await holdoutSet()).rows[0].features, version: "1.0.0" });
    await new Promise((r) => setTimeout(r, Number(env.ROUTING_CHECK_SECONDS) * 1000 + 50)); // let this isolate pick the change up
    for (let i = 0; i < 5; i++) {
      const r = await predict(M, { row: 0 });
      expect([r.status, r.version, r.json.prediction.score]).toEqual([200, "1.0.0", direct.json.prediction.score]);
    }
    expect(released).toBe(0); // the caller got every answer while the hanging listener still hung
    release();
    const res = await until(
      () => admin("GET", `/${id}/results`),
      (r) => r.json.shadow.errors >= 5,
    );
    expect(res.json.shadow).toMatchObject({ requests: 5, errors: 5, compared_rows: 0 });
    expect(hung).toBe(5);
    await admin("POST", `/${id}/abort`, {});
  });
});

describe("bandit", () => {
  const M = "dep-bandit";
  beforeAll(async () => {
    await setupModel(M);
    await storeTestSet(M);
  });

  it("moves traffic toward the rewarded variant, keeping the floor", async () => {
    const id = await createStarted({ strategy: "bandit", model: M, variants: [{ name: "lr", version: "1.0.0" }, { name: "gbt", version: "1.1.0" }], floor: 0.1, reward: "conversion" });
    const before = (await admin("GET", `/${id}`)).json.deployment.variants.map((v: any) => v.weight);
    expect(before).toEqual([50, 50]);
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) seen.add((await predict(M, { row: i })).headers.get("x-variant")!);
    expect(seen).toEqual(new Set(["lr", "gbt"]));
    for (let i = 0; i < 200; i++) {
      for (const [variant, rate] of [["lr", 0.05], ["gbt", 0.6]] as const) {
        await recordFeedback(env, { requestId: `b-${i}`, row: 0, model: M, version: "x", deployment: id, variant, score: 0.5, actual: i % 100 < rate * 100 ? 1 : 0, predictedAt: Date.now(), at: Date.now() });
      }
    }
    await runCron();
    const after = (await admin("GET", `/${id}`)).json.deployment;
    const w = Object.fromEntries(after.variants.map((v: any) => [v.name, v.weight]));
    expect(w.gbt).toBeGreaterThan(85);
    expect(w.lr).toBeGreaterThanOrEqual(10);
    expect(after.config.arms).toEqual({ lr: { successes: 10, failures: 190 }, gbt: { successes: 120, failures: 80 } });
    const counts: Record<string, number> = { lr: 0, gbt: 0 };
    for (let i = 0; i < 60; i++) counts[(await predict(M, { row: i })).variant!]++;
    expect(counts.gbt).toBeGreaterThan(counts.lr);
    expect((await admin("GET", `/${id}/history`)).json.events.at(-1)).toMatchObject({ actor: "cron", action: "bandit_update" });
  });
});
