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
import { shadowMessage, SHADOW_QUEUE, type ShadowMessage } from "../../src/deployments/shadow";
import { admin, createStarted, holdoutSet, setupModel, storeTestSet, until } from "./helpers";

const M = "dep-shadow-queue";

beforeAll(async () => {
  await setupModel(M);
  await storeTestSet(M);
});

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
