/**
 * Concurrent first requests on a cold cache (a soak once saw a 500 "Cannot perform I/O on behalf
 * of a different request"). The registry resolver, the routing table and the session cache are
 * per isolate; they may share resolved values across requests, never a promise that wraps one
 * request's D1/KV/R2 I/O (a second request awaiting it depends on the first request's I/O, and
 * fails or hangs when that request is cancelled). Checked here: concurrent cold lookups each get
 * their own promise, a stalled creation does not hold up the next request, and many concurrent
 * cold requests through the worker (the first one cancelled by its caller) are all answered 200.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { routingFor, routingTimings } from "../src/deployments/routing";
import { SessionCache } from "../src/inference/sessions";
import { resolveVersion } from "../src/registry/resolver";
import { registerStem } from "./support/api";
import { repoBytes, repoJson } from "./support/files";

async function predict(model: string, features: unknown, signal?: AbortSignal) {
  const res = await SELF.fetch(`http://worker/v1/models/${model}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ features }), signal });
  return { status: res.status, text: await res.text() };
}

describe("cold caches under concurrent first requests", () => {
  it("the resolver gives concurrent cold lookups their own promises and shares only the resolved version", async () => {
    expect((await registerStem("test/fixtures/onnx", "lr-gemm-sigmoid", ["champion"], { name: "cold-resolver" })).status).toBe(201);
    const first = resolveVersion(env, "cold-resolver", {});
    const second = resolveVersion(env, "cold-resolver", {});
    expect(second).not.toBe(first); // a shared promise would carry the first caller's D1 I/O
    const [a, b] = await Promise.all([first, second]);
    expect(a.version.version).toBe("1.0.0");
    expect(b.version).toBe(a.version); // one parsed copy
    expect((await resolveVersion(env, "cold-resolver", {})).version).toBe(a.version); // now cached
  });

  it("routing: concurrent cold reads are each their own; during a refresh others keep the entry they have", async () => {
    const { checkMs } = routingTimings(env);
    const t0 = Date.now() + 3_600_000; // a time no other test has primed
    const first = routingFor(env, "cold-routing", t0);
    const second = routingFor(env, "cold-routing", t0);
    expect(second).not.toBe(first);
    expect(await first).toBeNull();
    expect(await second).toBeNull();
    const refreshing = routingFor(env, "cold-routing", t0 + checkMs); // due for a check: this call refreshes
    expect(refreshing).toBeInstanceOf(Promise);
    expect(routingFor(env, "cold-routing", t0 + checkMs)).toBeNull(); // the entry it has, not the refresh's promise
    expect(await refreshing).toBeNull();
  });

  it("a session creation that never finishes (its request cancelled) does not hold up the next request", async () => {
    const bytes = await repoBytes("test/fixtures/onnx/lr-gemm-sigmoid.onnx");
    const cache = new SessionCache(1 << 22, 50); // waiters give up on another request's creation after 50 ms
    void cache.get("stalled", bytes.byteLength, () => new Promise<Uint8Array>(() => {})); // R2 read that never returns
    const model = await cache.get("stalled", bytes.byteLength, async () => bytes);
    expect(model.inputNames.length).toBeGreaterThan(0);
    expect(await cache.get("stalled", bytes.byteLength, async () => bytes)).toBe(model); // cached for the next
  }, 10_000);

  it("a cancelled first request does not fail or stall the requests that arrived with it", async () => {
    // A new model and artifact each round: cold resolver entries and a cold session.
    for (const stem of ["tree-regressor", "lr-gemm-sigmoid", "linear-classifier", "lr-matmul-softmax"]) {
      const rows = (await repoJson(`test/fixtures/onnx/${stem}.expected.json`)).rows.map((r: any) => r.features);
      const name = `cold-${stem}`;
      expect((await registerStem("test/fixtures/onnx", stem, ["champion"], { name })).status).toBe(201);
      const abort = new AbortController();
      const first = predict(name, rows[0], abort.signal).catch((e) => ({ status: 0, text: String(e) }));
      const others = Array.from({ length: 12 }, (_, i) => predict(name, rows[(i + 1) % rows.length]));
      await new Promise((r) => setTimeout(r, 0));
      abort.abort();
      await first;
      const answered = await Promise.all(others);
      for (const a of answered) expect(a.status, a.text).toBe(200);
    }
  });
});
