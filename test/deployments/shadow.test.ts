/**
 * Shadow scoring runs out of the caller's invocation: the request's waitUntil only hands a copy
 * to the `edge-ml-shadow` Queue, and the comparison appears once the queue's consumer has scored
 * it; messages are cut to the rows that fit a queue message; the consumer records comparisons and
 * shadow failures.
 */
import { createExecutionContext, createMessageBatch, env, getQueueResult, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../../src/index";
import { statsFor } from "../../src/deployments/live-stats";
import { consumeShadow, CpuShare, cpuShareOf, shadowMessage, SHADOW_QUEUE, type ShadowMessage } from "../../src/deployments/shadow";
import { call, register } from "../support/api";
import { repoBytes, repoJson } from "../support/files";
import { admin, createStarted, holdoutSet, setupModel, storeTestSet, until } from "./helpers";

const M = "dep-shadow-queue";

beforeAll(async () => {
  await setupModel(M);
  await storeTestSet(M);
  // 1.2.0: the demo logistic regression with a CPU ballast (same answers, milliseconds per row).
  const manifest = await repoJson("models/credit-risk-lr.manifest.json");
  const slow = await register(M, { ...manifest, name: M, version: "1.2.0" }, await repoBytes("test/fixtures/slow/credit-risk-lr-slow.onnx"));
  expect(slow.status, JSON.stringify(slow.json)).toBe(201);
});

/** The primary's (1.0.0) answers for `rows`, as the prediction listener would put them in a message. */
async function primaryOf(rows: unknown[]) {
  const res = await call("POST", `/v1/models/${M}/predict`, { instances: rows, version: "1.0.0" });
  expect(res.status, res.text).toBe(200);
  return (res.json.predictions as { score: number; label: unknown }[]).map((p) => ({ score: p.score, label: String(p.label) }));
}

function batchOf(messages: ShadowMessage[]) {
  return createMessageBatch<ShadowMessage>(SHADOW_QUEUE, messages.map((body, i) => ({ id: `m${i}`, timestamp: new Date(), attempts: 1, body })));
}

/** A started shadow deployment of the slow copy (1.2.0) and a batch of three messages of the same 20 rows (60 slow rows). */
async function slowShadowBatch() {
  const id = await createStarted({ strategy: "shadow", model: M, version: "1.2.0", fraction: 100 });
  const rows = (await holdoutSet()).rows.slice(0, 20).map((r) => r.features);
  const primary = await primaryOf(rows);
  const message = { deployment: id, model: M, version: "1.2.0", at: Date.now(), rows, primary };
  return { id, batch: batchOf([message, message, message]), ctx: createExecutionContext() };
}

describe("shadow scoring through the queue", () => {
  it("the caller's invocation ends without scoring the shadow; the consumer scores and records it", async () => {
    const id = await createStarted({ strategy: "shadow", model: M, version: "1.1.0", fraction: 100 });
    const features = (await holdoutSet()).rows[3].features;
    const ctx = createExecutionContext();
    const res = await worker.fetch(new Request(`http://worker/v1/models/${M}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ features }) }), env, ctx);
    expect(res.status).toBe(200);
    await waitOnExecutionContext(ctx); // everything the caller's invocation does, including its waitUntil work
    // Scoring in the caller's waitUntil (the old design) would have recorded the comparison by now.
    expect((await statsFor(env, id).summary(0)).shadow.requests).toBe(0);
    const results = await until(
      () => admin("GET", `/${id}/results`),
      (r) => r.json.shadow.requests >= 1,
    );
    expect(results.json.shadow).toMatchObject({ requests: 1, errors: 0, compared_rows: 1 });
    await admin("POST", `/${id}/abort`, {});
  });

  it("the consumer compares the shadow's answers with the primary's and records failures", async () => {
    const id = await createStarted({ strategy: "shadow", model: M, version: "1.1.0", fraction: 100 });
    const rows = (await holdoutSet()).rows.slice(0, 4).map((r) => r.features);
    const good: ShadowMessage = { deployment: id, model: M, version: "1.1.0", at: Date.now(), rows, primary: rows.map(() => ({ score: 0.5, label: "1" })) };
    const bad: ShadowMessage = { ...good, rows: [{ not_a_feature: 1 }], primary: [{ score: 0.5, label: "1" }] };
    const batch = createMessageBatch<ShadowMessage>(SHADOW_QUEUE, [
      { id: "good", timestamp: new Date(), attempts: 1, body: good },
      { id: "bad", timestamp: new Date(), attempts: 1, body: bad },
    ]);
    const ctx = createExecutionContext();
    await worker.queue!(batch as MessageBatch<unknown>, env);
    expect((await getQueueResult(batch, ctx)).explicitAcks.sort()).toEqual(["bad", "good"]);
    const shadow = (await admin("GET", `/${id}/results`)).json.shadow;
    expect(shadow).toMatchObject({ requests: 2, errors: 1, compared_rows: 4 });
    expect(shadow.abs_score_diff.max).toBeGreaterThan(0);
    await admin("POST", `/${id}/abort`, {});
  });

  it("a slow shadow scored in slices gives the same comparison as the primary (the ballast changes no answer)", async () => {
    const id = await createStarted({ strategy: "shadow", model: M, version: "1.2.0", fraction: 100 });
    const rows = (await holdoutSet()).rows.slice(0, 12).map((r) => r.features);
    const primary = await primaryOf(rows);
    const at = Date.now();
    // Several messages, so chunks of 1 row and larger ones (sized from the measured cost) both run.
    const messages = [rows.slice(0, 1), rows.slice(1, 5), rows.slice(5, 12)].map((part, k) => {
      const from = k === 0 ? 0 : k === 1 ? 1 : 5;
      return { deployment: id, model: M, version: "1.2.0", at, rows: part, primary: primary.slice(from, from + part.length) };
    });
    // Slices, not the isolate share, are what this test checks: the share off, every row compared.
    const unshared = { ...env, SHADOW_CPU_SHARE: "100" } as Env;
    await consumeShadow(batchOf(messages) as MessageBatch<ShadowMessage>, unshared);
    const shadow = (await admin("GET", `/${id}/results`)).json.shadow;
    expect(shadow).toMatchObject({ requests: 3, errors: 0, timeouts: 0, compared_rows: 12, skipped_rows: 0, agreement_rate: 1 });
    expect(shadow.abs_score_diff.max).toBeLessThan(1e-6);
    // A shadow that answers differently is seen row by row (the rows line up with the primary's).
    const shifted = { deployment: id, model: M, version: "1.2.0", at, rows: rows.slice(0, 6), primary: primary.slice(1, 7) };
    await consumeShadow(batchOf([shifted]) as MessageBatch<ShadowMessage>, unshared);
    const after = (await admin("GET", `/${id}/results`)).json.shadow;
    expect(after.compared_rows).toBe(18);
    expect(after.abs_score_diff.max).toBeGreaterThan(1e-3);
    await admin("POST", `/${id}/abort`, {});
  });

  it("stops at the invocation's CPU budget and counts the rows it did not score as skipped_rows", async () => {
    const { id, batch, ctx } = await slowShadowBatch();
    // A 1 ms budget: the first chunk (one slow row) spends it; everything after is skipped and counted.
    await consumeShadow(batch as MessageBatch<ShadowMessage>, { ...env, SHADOW_BUDGET_MS: "1" } as Env);
    expect((await getQueueResult(batch, ctx)).explicitAcks.sort()).toEqual(["m0", "m1", "m2"]); // acknowledged, not retried
    const shadow = (await admin("GET", `/${id}/results`)).json.shadow;
    expect(shadow).toMatchObject({ requests: 3, errors: 0, timeouts: 0, agreement_rate: 1 });
    expect(shadow.compared_rows).toBeGreaterThanOrEqual(1);
    expect(shadow.compared_rows).toBeLessThan(20);
    expect(shadow.compared_rows + shadow.skipped_rows).toBe(60); // every row is compared or counted as skipped
    await admin("POST", `/${id}/abort`, {});
  });

  it("keeps to the isolate's SHADOW_CPU_SHARE: rows past the share are skipped and counted, not waited for", async () => {
    const { id, batch, ctx } = await slowShadowBatch();
    // 1%: a 10 ms bucket refilled at 0.01 ms per ms; 60 slow rows cost far more than that, and the
    // default budget (2 s) would have scored them all.
    await consumeShadow(batch as MessageBatch<ShadowMessage>, { ...env, SHADOW_CPU_SHARE: "1" } as Env);
    expect((await getQueueResult(batch, ctx)).explicitAcks.sort()).toEqual(["m0", "m1", "m2"]);
    const shadow = (await admin("GET", `/${id}/results`)).json.shadow;
    expect(shadow).toMatchObject({ requests: 3, errors: 0, timeouts: 0, agreement_rate: 1 });
    expect(shadow.compared_rows).toBeGreaterThanOrEqual(1);
    expect(shadow.skipped_rows).toBeGreaterThan(0);
    expect(shadow.compared_rows + shadow.skipped_rows).toBe(60);
    await admin("POST", `/${id}/abort`, {});
  });

  it("CpuShare: credit refills at share x wall time up to its capacity; a chunk's cost is paid back before the next", () => {
    let t = 0;
    const share = new CpuShare(0.1, 100, () => t);
    expect(share.allows()).toBe(true); // starts full
    share.charge(150); // one 150 ms row: 50 ms in debt
    expect(share.allows()).toBe(false);
    t = 499; // 49.9 ms repaid
    expect(share.allows()).toBe(false);
    t = 501;
    expect(share.allows()).toBe(true);
    t = 1_000_000; // idle for long: capped at capacity, so one capacity's worth empties it
    expect(share.allows()).toBe(true);
    share.charge(100);
    expect(share.allows()).toBe(false);
    const off = new CpuShare(1, 1000, () => t);
    off.charge(1e9);
    expect(off.allows()).toBe(true); // 100% never sheds
    // On by default: 5% of the isolate's time, unless the var says otherwise (100 = off).
    expect(cpuShareOf({ ...env, SHADOW_CPU_SHARE: undefined } as unknown as Env).share).toBe(0.05);
    expect(cpuShareOf({ ...env, SHADOW_CPU_SHARE: "100" } as unknown as Env).share).toBe(1);
  });

  it("cuts a large batch to the leading rows that fit a queue message", () => {
    const row = { a: "x".repeat(500) };
    const rows = Array.from({ length: 1000 }, () => row);
    const predictions = rows.map(() => ({ label: 1, score: 0.25, probabilities: [0.75, 0.25] }));
    const m = shadowMessage("dep", M, "1.1.0", 0, rows, predictions as never)!;
    expect(m.rows.length).toBeGreaterThan(100);
    expect(m.rows.length).toBeLessThan(1000);
    expect(new TextEncoder().encode(JSON.stringify(m)).length).toBeLessThanOrEqual(120_000);
    expect(m.primary.length).toBe(m.rows.length);
    expect(shadowMessage("dep", M, "1.1.0", 0, [{ a: "x".repeat(200_000) }], predictions.slice(0, 1) as never)).toBeNull();
  });
});
