/**
 * The per-isolate session cache: one session per artifact even under concurrent first requests,
 * bounded by artifact bytes with least-recently-used eviction, failed loads not cached.
 */
import { describe, expect, it } from "vitest";
import { SessionCache } from "../src/inference/sessions";
import { call, registerStem } from "./support/api";
import { repoBytes, repoJson } from "./support/files";

async function sessionsCreated(): Promise<number> {
  const text = (await call("GET", "/metrics")).text;
  return Number(/^edge_ml_sessions_created_total (\d+)$/m.exec(text)![1]);
}

describe("session cache", () => {
  it("concurrent first requests through the worker create one session", async () => {
    expect((await registerStem("test/fixtures/onnx", "tree-regressor", ["champion"])).status).toBe(201);
    const rows = (await repoJson("test/fixtures/onnx/tree-regressor.expected.json")).rows.map((r: any) => r.features);
    const before = await sessionsCreated();
    const results = await Promise.all(Array.from({ length: 25 }, (_, i) => call("POST", "/v1/models/fixture-tree-regressor/predict", { features: rows[i % rows.length] })));
    expect(results.map((r) => r.status)).toEqual(Array(25).fill(200));
    expect((await sessionsCreated()) - before).toBe(1);
    const values = results.map((r) => r.json.prediction.value);
    results.forEach((r, i) => expect(r.json.prediction.value).toBe(values[i % rows.length]));
  });

  it("loads once per artifact, evicts least recently used beyond its byte budget", async () => {
    const a = await repoBytes("test/fixtures/onnx/lr-gemm-sigmoid.onnx");
    const b = await repoBytes("test/fixtures/onnx/linear-classifier.onnx");
    const c = await repoBytes("test/fixtures/onnx/tree-regressor.onnx");
    const cache = new SessionCache(a.byteLength + Math.max(b.byteLength, c.byteLength)); // room for two, not three
    let loads = 0;
    const loader = (bytes: Uint8Array) => async () => {
      loads++;
      return bytes;
    };
    const [m1, m2] = await Promise.all([cache.get("a", a.byteLength, loader(a)), cache.get("a", a.byteLength, loader(a))]);
    expect(m1).toBe(m2);
    expect(loads).toBe(1);
    await cache.get("b", b.byteLength, loader(b));
    await cache.get("a", a.byteLength, loader(a)); // a is now the most recently used
    await cache.get("c", c.byteLength, loader(c)); // evicts b
    expect(cache.stats()).toMatchObject({ created: 3, evicted: 1, entries: 2 });
    await cache.get("a", a.byteLength, loader(a));
    expect(loads).toBe(3);
    await cache.get("b", b.byteLength, loader(b));
    expect(loads).toBe(4);
  });

  it("does not cache a failed load; the next call retries", async () => {
    const cache = new SessionCache(1 << 20);
    await expect(cache.get("bad", 10, async () => new TextEncoder().encode("not onnx"))).rejects.toThrow(/not an ONNX model/);
    expect(cache.stats().entries).toBe(0);
    const good = await repoBytes("test/fixtures/onnx/lr-gemm-sigmoid.onnx");
    await expect(cache.get("bad", good.byteLength, async () => good)).resolves.toMatchObject({ inputNames: expect.any(Array) });
  });
});
