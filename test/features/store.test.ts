/**
 * The feature store end to end, through real HTTP (SELF.fetch) against local D1, KV, R2, the
 * load queue and the aggregate Durable Objects: definitions (versions, cycles, retire), offline
 * loads (CSV upload, NDJSON from R2, multi-chunk, rejected rows, idempotency, a failed load leaving
 * the previous values serving, point-in-time reads), get_features single and batch with tiers and
 * fallbacks, realtime events (windows, late and duplicate events), prediction by entity id,
 * registration checks, and per-feature metrics.
 */
import { createExecutionContext, createMessageBatch, env, getQueueResult, runInDurableObject } from "cloudflare:test";
import { shardOf } from "../../src/features/realtime";
import { sweepFeatureLoads } from "../../src/features/offline";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../../src/index";
import { predictLogistic } from "../../scripts/lib/predict-reference";
import { ADMIN, call, register } from "../support/api";
import { repoBytes, repoJson } from "../support/files";
import { eventually } from "../monitoring/helpers";
import { logShardName } from "../../src/monitoring/config";

const define = (body: unknown) => call("POST", "/admin/features/definitions", body, ADMIN);
const get = (body: unknown) => call("POST", "/v1/features/get", body);
const versionsOf = async (group: string, name: string) => (await call("GET", `/admin/features/definitions/${group}/${name}`, undefined, ADMIN)).json?.versions ?? [];

async function upload(format: "csv" | "ndjson", text: string, query: Record<string, string>) {
  const qs = new URLSearchParams(query).toString();
  return call("POST", `/admin/features/loads?${qs}`, text, { ...ADMIN, "content-type": format === "csv" ? "text/csv" : "application/x-ndjson" });
}

async function finished(id: string) {
  return eventually(async () => {
    const res = await call("GET", `/admin/features/loads/${id}`, undefined, ADMIN);
    expect(["succeeded", "failed"]).toContain(res.json.status);
    return res.json;
  }, 60_000);
}

const T1 = Date.parse("2026-01-01T00:00:00Z");
const T2 = Date.parse("2026-06-01T00:00:00Z");
const CSV1 = [
  "customer_id,event_time,income,debt,segment,age",
  `c1,${T1},100,20,gold,40`,
  `c1,2026-06-01T00:00:00Z,120,30,gold,41`,
  `c2,${T2},"80",10,"silver, plus",30`,
  `c3,${T2},50,,bronze,22`,
  `c4,${T2},70,1,bronze,33`,
].join("\n");

beforeAll(async () => {
  const defs = [
    { group: "customers", name: "income", kind: "offline", dtype: "numeric", fallback: { policy: "error" } },
    { group: "customers", name: "debt", kind: "offline", dtype: "numeric", fallback: { policy: "default", value: 5 } },
    { group: "customers", name: "segment", kind: "offline", dtype: "categorical", ttl_seconds: 0, fallback: { policy: "last_known" } },
    { group: "customers", name: "age", kind: "offline", dtype: "integer" },
    { group: "customers", name: "dti", kind: "online", dtype: "numeric", expression: "ratio(debt, income)" },
    { group: "customers", name: "high_debt", kind: "online", dtype: "boolean", expression: "dti > 0.2" },
    { group: "customers", name: "txn_count_1h", kind: "realtime", dtype: "integer", aggregate: { event: "txn", fn: "count", window: "1h" } },
    { group: "customers", name: "txn_sum_24h", kind: "realtime", dtype: "numeric", aggregate: { event: "txn", field: "amount", fn: "sum", window: "24h" } },
    { group: "customers", name: "txn_mean_24h", kind: "realtime", dtype: "numeric", aggregate: { event: "txn", field: "amount", fn: "mean", window: "24h" }, fallback: { policy: "default", value: -1 } },
    { group: "customers", name: "txn_max_7d", kind: "realtime", dtype: "numeric", aggregate: { event: "txn", field: "amount", fn: "max", window: "7d" } },
  ];
  for (const d of defs) expect((await define(d)).status, d.name).toBe(201);
});

describe("definitions", () => {
  it("versions a redefinition, and answers an identical one with the current version", async () => {
    const again = await define({ group: "customers", name: "income", kind: "offline", dtype: "numeric", fallback: { policy: "error" } });
    expect(again.status).toBe(200);
    expect(again.json.version).toBe(1);
    const v2 = await define({ group: "customers", name: "age", kind: "offline", dtype: "integer", description: "age in years" });
    expect(v2.status).toBe(201);
    expect(v2.json).toMatchObject({ version: 2, status: "active", description: "age in years" });
    expect((await versionsOf("customers", "age")).map((v: any) => v.version)).toEqual([2, 1]);
    const list = await call("GET", "/admin/features/definitions?group=customers", undefined, ADMIN);
    expect(list.json.definitions.length).toBe(11);
  });

  it("refuses bad definitions with 4xx naming the problem, writing nothing", async () => {
    const cases: [unknown, number, RegExp][] = [
      [{ group: "customers", name: "x1", kind: "online", dtype: "numeric", expression: "income +" }, 422, /malformed expression: unexpected end/],
      [{ group: "customers", name: "x1", kind: "online", dtype: "numeric", expression: "nosuch * 2" }, 422, /unknown feature 'nosuch'/],
      [{ group: "customers", name: "x1", kind: "online", dtype: "numeric", expression: "x1 + 1" }, 422, /cycle: x1 -> x1/],
      [{ group: "customers", name: "x1", kind: "offline", dtype: "numeric", fallback: { policy: "default", value: "a" } }, 422, /not a numeric value/],
      [{ group: "customers", name: "x1", kind: "realtime", dtype: "categorical", aggregate: { event: "txn", fn: "count", window: "1h" } }, 422, /realtime aggregates are numeric/],
      [{ group: "Customers", name: "x1", kind: "offline", dtype: "numeric" }, 422, /invalid request body/],
      [{ group: "customers", name: "constructor", kind: "offline", dtype: "numeric" }, 422, /invalid request body/],
      [{ group: "customers", name: "x1", kind: "realtime", dtype: "numeric", aggregate: { event: "txn", fn: "sum", window: "1h" } }, 422, /invalid request body/],
      [{ group: "customers", name: "income", kind: "online", dtype: "numeric", expression: "1" }, 409, /is offline; retire it/],
    ];
    for (const [body, status, message] of cases) {
      const res = await define(body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.json.error.message).toMatch(message);
    }
    expect(await versionsOf("customers", "x1")).toEqual([]);
    const bad = await define({ group: "customers", name: "x1", kind: "sometimes", dtype: "numeric" });
    expect(bad.json.error.details[0].path).toBe("kind");
  });

  it("rejects a definition that closes a cycle through other features", async () => {
    expect((await define({ group: "loop", name: "base", kind: "offline", dtype: "numeric" })).status).toBe(201);
    expect((await define({ group: "loop", name: "a", kind: "online", dtype: "numeric", expression: "base + 1" })).status).toBe(201);
    expect((await define({ group: "loop", name: "b", kind: "online", dtype: "numeric", expression: "a * 2" })).status).toBe(201);
    const cycle = await define({ group: "loop", name: "a", kind: "online", dtype: "numeric", expression: "b - 1" });
    expect(cycle.status).toBe(422);
    expect(cycle.json.error.message).toMatch(/cycle: (a -> b -> a|b -> a -> b)/);
    expect((await versionsOf("loop", "a")).length).toBe(1);
  });

  it("retires a feature only when no active online feature reads it", async () => {
    const blocked = await call("POST", "/admin/features/definitions/loop/a/retire", {}, ADMIN);
    expect(blocked.status).toBe(409);
    expect(blocked.json.error.message).toMatch(/read by active online feature\(s\) b/);
    expect((await call("POST", "/admin/features/definitions/loop/b/retire", {}, ADMIN)).json.versions[0].status).toBe("retired");
    const retired = await call("POST", "/admin/features/definitions/loop/a/retire", { version: 1 }, ADMIN);
    expect(retired.status).toBe(200);
    expect(retired.json.versions[0]).toMatchObject({ version: 1, status: "retired" });
    const served = await get({ group: "loop", entity_id: "e", features: ["a"] });
    expect(served.status).toBe(404);
    expect(served.json.error.message).toMatch(/unknown or retired feature\(s\) in group 'loop': a/);
    expect((await call("POST", "/admin/features/definitions/loop/zz/retire", {}, ADMIN)).status).toBe(404);
  });
});

describe("offline loads", () => {
  let first: any;

  it("loads a CSV upload through the queue, with progress, and serves it from KV then the cache", async () => {
    const res = await upload("csv", CSV1, { group: "customers", entity_column: "customer_id", time_column: "event_time" });
    expect(res.status).toBe(202);
    expect(res.json.status).toBe("queued");
    first = await finished(res.json.id);
    expect(first).toMatchObject({ status: "succeeded", rows_loaded: 5, rows_rejected: 0, progress: { fraction: 1 } });

    const a = await get({ group: "customers", entity_id: "c2", features: ["income", "debt", "segment"] });
    expect(a.status).toBe(200);
    expect(a.json.values).toEqual({ income: 80, debt: 10, segment: "silver, plus" });
    expect(a.json.sources).toEqual({ income: "kv", debt: "kv", segment: "kv" });
    const b = await get({ group: "customers", entity_id: "c2", features: ["income", "debt"] });
    expect(b.json.sources).toEqual({ income: "cache", debt: "cache" });
    expect(b.json.fell_back).toEqual([]);
  });

  it("serves the latest row per entity, and the row as of a past moment", async () => {
    const now = await get({ group: "customers", entity_id: "c1", features: ["income", "age@1"] });
    expect(now.json.values).toEqual({ income: 120, "age@1": 41 });
    const past = await get({ group: "customers", entity_id: "c1", features: ["income"], as_of: "2026-03-01T00:00:00Z" });
    expect(past.json.values).toEqual({ income: 100 });
    const before = await get({ group: "customers", entity_id: "c1", features: ["income"], as_of: T1 - 1 });
    expect(before.status).toBe(404);
    expect(before.json.error.message).toMatch(/no offline values in group 'customers' at that time/);
  });

  it("is idempotent: the same file and options give the same load", async () => {
    const res = await upload("csv", CSV1, { group: "customers", entity_column: "customer_id", time_column: "event_time" });
    expect(res.status).toBe(200);
    expect(res.json.id).toBe(first.id);
  });

  it("is a new load when a feature of the group was redefined since: the same file is validated against the new type", async () => {
    expect((await define({ group: "redef", name: "level", kind: "offline", dtype: "numeric" })).status).toBe(201);
    const csv = "id,level\nu1,5\n";
    // Read as of now: past the in-isolate cache, which may hold the previous load's record for its TTL.
    const level = async () => {
      const res = await get({ group: "redef", entity_id: "u1", features: ["level"], as_of: new Date().toISOString() });
      expect(res.status, res.text).toBe(200);
      return res.json.values.level;
    };
    const a = await finished((await upload("csv", csv, { group: "redef", entity_column: "id" })).json.id);
    expect(await level()).toBe(5);
    // Redefined as categorical (nobody reads it), then back to numeric: each time the same file loads again.
    expect((await define({ group: "redef", name: "level", kind: "offline", dtype: "categorical" })).status).toBe(201);
    const b = await upload("csv", csv, { group: "redef", entity_column: "id" });
    expect(b.json.id).not.toBe(a.id);
    await finished(b.json.id);
    expect(await level()).toBe("5");
    expect((await define({ group: "redef", name: "level", kind: "offline", dtype: "numeric" })).status).toBe(201);
    const c = await upload("csv", csv, { group: "redef", entity_column: "id" });
    expect([a.id, b.json.id]).not.toContain(c.json.id);
    await finished(c.json.id);
    expect(await level()).toBe(5);
  });

  it("acknowledges a re-delivered chunk of a finished load without touching it", async () => {
    const batch = createMessageBatch("edge-ml-feature-loads", [{ id: "dup-1", timestamp: new Date(), attempts: 1, body: { kind: "feature_load", load: first.id, offset: 0 } }]);
    const ctx = createExecutionContext();
    await worker.queue!(batch as MessageBatch<unknown>, env);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(["dup-1"]);
    expect((await call("GET", `/admin/features/loads/${first.id}`, undefined, ADMIN)).json).toEqual(first);
  });

  it("refuses a header that does not match the group, creating no load", async () => {
    const before = (await call("GET", "/admin/features/loads?group=customers", undefined, ADMIN)).json.loads.length;
    const res = await upload("csv", "customer_id,income,shoe_size\nc1,1,2", { group: "customers", entity_column: "customer_id" });
    expect(res.status).toBe(422);
    expect(res.json.error.details).toContainEqual({ path: "columns.shoe_size", message: "'shoe_size' is not an active offline feature of group 'customers'" });
    const noEntity = await upload("csv", "id,income\nc1,1", { group: "customers", entity_column: "customer_id" });
    expect(noEntity.json.error.details[0]).toEqual({ path: "entity_column", message: "CSV header has no column 'customer_id'" });
    expect((await upload("csv", "customer_id\nc1", { group: "nogroup", entity_column: "customer_id" })).json.error.message).toMatch(/no active offline features/);
    expect((await call("POST", "/admin/features/loads", { group: "customers", format: "csv", r2_key: "nope.csv", entity_column: "customer_id" }, ADMIN)).status).toBe(404);
    expect((await call("GET", "/admin/features/loads?group=customers", undefined, ADMIN)).json.loads.length).toBe(before);
  });

  it("fails a load with too many rejected rows, reports them, and keeps the previous values serving", async () => {
    // The first chunk (400 rows) is written under the new load's keys before the bad rows further on are reached.
    const filler = Array.from({ length: 450 }, (_, i) => `f${i},1,1,gold,50`);
    const bad = ["customer_id,income,debt,segment,age", "c4,999,1,gold,50", ...filler, "c2,lots,1,gold,50", "c3,1,1,gold,2.5", "c5,1,1,gold,3"].join("\n");
    const res = await upload("csv", bad, { group: "customers", entity_column: "customer_id", max_rejected: "1" });
    const load = await finished(res.json.id);
    expect(load.status).toBe("failed");
    expect(load.error).toMatch(/2 rejected row\(s\), more than max_rejected 1/);
    expect(load.rows_loaded).toBe(400);
    expect(load.rejected).toEqual([
      { row: 453, message: `'income': expected a number, got "lots"` },
      { row: 454, message: `'age': expected an integer, got "2.5"` },
    ]);
    expect(await env.CONFIG.get("fp:customers", "json")).toEqual({ load: first.id, previous: [] });
    const c4 = await get({ group: "customers", entity_id: "c4", features: ["income"], timeout_ms: 5000 });
    expect(c4.json.values.income).toBe(70);
    expect((await get({ group: "customers", entity_id: "f1", features: ["income"] })).status).toBe(404);
  });

  it("loads NDJSON named by R2 key in several chunks, then serves the new snapshot (older one still readable as of its time)", async () => {
    const lines = [];
    for (let i = 0; i < 1000; i++) lines.push(JSON.stringify({ id: `n${i}`, ts: T2 + i, income: i * 1.5, segment: i % 2 ? "odd" : "even", age: i % 90 }));
    lines.push(JSON.stringify({ id: "c3", ts: "2026-07-01T00:00:00Z", income: 77, debt: null }));
    lines.push('{"id": "n-bad", "ts": 1, "income": "x"}');
    lines.push("not json");
    lines.push(JSON.stringify({ id: "n-deep", ts: 1 }).replace(/\}$/, `,"income":${"[".repeat(40)}${"]".repeat(40)}}`));
    await env.ARTIFACTS.put("imports/customers.ndjson", lines.join("\n") + "\n");
    const res = await call("POST", "/admin/features/loads", { group: "customers", format: "ndjson", r2_key: "imports/customers.ndjson", entity_column: "id", time_column: "ts", max_rejected: 5 }, ADMIN);
    expect(res.status).toBe(202);
    const load = await finished(res.json.id);
    expect(load).toMatchObject({ status: "succeeded", rows_loaded: 1001, rows_rejected: 3 });
    expect(load.rejected[0]).toEqual({ row: 1002, message: `'income': expected a number, got "x"` });
    expect(load.rejected[1].row).toBe(1003);
    expect(load.rejected[1].message).toMatch(/^line 1003 is not valid JSON: /);
    // The request paths' nesting bound (32) holds for file rows too, and the rejection names the line.
    expect(load.rejected[2]).toEqual({ row: 1004, message: "line 1004 nests arrays/objects deeper than 32 levels" });
    await eventually(async () => {
      const n = await get({ group: "customers", entity_id: "n777", features: ["income", "segment", "age"] });
      expect(n.json.values).toEqual({ income: 777 * 1.5, segment: "odd", age: 777 % 90 });
    });
    // c3 in the new snapshot: income 77, no debt (the default, reported as a fallback).
    const c3 = await eventually(async () => {
      const r = await get({ group: "customers", entity_id: "c3", features: ["income", "debt"], timeout_ms: 5000 });
      expect(r.json.values.income).toBe(77);
      return r;
    });
    expect(c3.json.values.debt).toBe(5);
    expect(c3.json.sources.debt).toBe("default");
    expect(c3.json.fell_back).toEqual(["debt"]);
    // c1 is not in the new snapshot; as of June it is found in the previous load.
    const c1Past = await get({ group: "customers", entity_id: "c1", features: ["income"], as_of: T2 + 10 });
    expect(c1Past.json.values.income).toBe(120);
  });
});

describe("stale-while-revalidate", () => {
  it("serves a stale cached value of a feature that allows it, refreshes it in the background, and not for one that does not", async () => {
    expect((await define({ group: "swr", name: "score", kind: "offline", dtype: "numeric", ttl_seconds: 0, stale_seconds: 3600 })).status).toBe(201);
    expect((await define({ group: "swr", name: "plain", kind: "offline", dtype: "numeric", ttl_seconds: 0 })).status).toBe(201);
    const defined = await call("GET", "/admin/features/definitions/swr/score", undefined, ADMIN);
    expect(defined.json.versions[0].stale_seconds).toBe(3600);
    const load = async (v: number) => {
      const res = await upload("csv", `id,score,plain\ns1,${v},${v}`, { group: "swr", entity_column: "id" });
      expect(res.status).toBe(202);
      expect((await finished(res.json.id)).status).toBe("succeeded");
    };
    await load(1);
    const first = await get({ group: "swr", entity_id: "s1", features: ["score"] });
    expect(first.json).toMatchObject({ values: { score: 1 }, sources: { score: "kv" } });
    await load(2);
    // TTL 0: the cached record is past its TTL at once, but within stale_seconds; served as it is.
    const stale = await get({ group: "swr", entity_id: "s1", features: ["score"] });
    expect(stale.json).toMatchObject({ values: { score: 1 }, sources: { score: "stale_cache" }, fell_back: [] });
    // The refresh ran after that response: the next read serves the new value (still from the cache).
    await eventually(async () => {
      const next = await get({ group: "swr", entity_id: "s1", features: ["score"] });
      expect(next.json).toMatchObject({ values: { score: 2 }, sources: { score: "stale_cache" } });
    });
    // A feature without stale_seconds in the same read makes the record be read fresh from KV.
    await load(3);
    const mixed = await get({ group: "swr", entity_id: "s1", features: ["score", "plain"] });
    expect(mixed.json).toMatchObject({ values: { score: 3, plain: 3 }, sources: { score: "kv", plain: "kv" } });
  });
});

describe("cache warming", () => {
  it("precomputes entities through the queue into the Cache API tier; a warmed entity is a cache_api hit, others read KV", async () => {
    expect((await define({ group: "warmg", name: "limit", kind: "offline", dtype: "numeric" })).status).toBe(201);
    const res = await upload("csv", "id,limit\nw1,10\nw2,20\nw3,30", { group: "warmg", entity_column: "id" });
    expect((await finished(res.json.id)).status).toBe("succeeded");

    const queued = await call("POST", "/admin/features/warm", { group: "warmg", entity_ids: ["w1", "w2", "w1"] }, ADMIN);
    expect(queued.status).toBe(202);
    expect(queued.json).toEqual({ group: "warmg", entities: 2, messages: 1 });
    // The consumer run directly, so the test knows it finished before reading.
    const batch = createMessageBatch("edge-ml-feature-loads", [{ id: "warm-1", timestamp: new Date(), attempts: 1, body: { kind: "feature_warm", group: "warmg", entities: ["w1", "w2"] } }]);
    const ctx = createExecutionContext();
    await worker.queue!(batch as MessageBatch<unknown>, env);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(["warm-1"]);

    const w1 = await get({ group: "warmg", entity_id: "w1", features: ["limit"] });
    expect(w1.json).toMatchObject({ values: { limit: 10 }, sources: { limit: "cache_api" } });
    const w3 = await get({ group: "warmg", entity_id: "w3", features: ["limit"] });
    expect(w3.json).toMatchObject({ values: { limit: 30 }, sources: { limit: "kv" } });

    expect((await call("POST", "/admin/features/warm", { group: "nogroup", entity_ids: ["w1"] }, ADMIN)).status).toBe(404);
    expect((await call("POST", "/admin/features/warm", { group: "warmg", entity_ids: [] }, ADMIN)).status).toBe(422);
    expect((await call("POST", "/admin/features/warm", { group: "warmg", entity_ids: ["w1"] })).status).toBe(401);
  });
});

describe("computed features as TypeScript functions", () => {
  it("serves a feature computed by a registered function over the features it reads; an unknown function name is a 422", async () => {
    const made = await define({ group: "customers", name: "capped_ratio", kind: "online", dtype: "numeric", function: "capped_debt_ratio" });
    expect(made.status).toBe(201);
    expect(made.json).toMatchObject({ function: "capped_debt_ratio" });
    const res = await get({ group: "customers", entity_id: "c2", features: ["capped_ratio", "debt", "income"] });
    expect(res.status).toBe(200);
    expect(res.json.values.capped_ratio).toBeCloseTo(Math.min(10, res.json.values.debt / res.json.values.income), 12);
    expect(res.json.sources.capped_ratio).toBe("computed");

    const unknown = await define({ group: "customers", name: "mystery", kind: "online", dtype: "numeric", function: "no_such_fn" });
    expect(unknown.status).toBe(422);
    expect(unknown.json.error.details).toEqual([{ path: "function", message: "unknown function 'no_such_fn'" }]);
    const both = await define({ group: "customers", name: "mystery", kind: "online", dtype: "numeric", function: "capped_debt_ratio", expression: "debt" });
    expect(both.status).toBe(422);
    expect(await versionsOf("customers", "mystery")).toEqual([]);
  });
});

describe("loads that run out of retries", () => {
  it("the sweep fails a stalled load with the reason, deletes the KV records it wrote, and the previous values keep serving", async () => {
    expect((await define({ group: "sweepg", name: "v", kind: "offline", dtype: "numeric" })).status).toBe(201);
    const ok = await upload("csv", "id,v\nk1,1", { group: "sweepg", entity_column: "id" });
    expect((await finished(ok.json.id)).status).toBe("succeeded");
    // A load whose messages ran out of retries: created 7 h ago, still running, one record written.
    const now = Date.now();
    const insert = (id: string, createdAt: number) =>
      env.DB.prepare(
        "INSERT INTO feature_loads (id, group_name, format, source_key, idempotency_key, entity_column, status, total_bytes, next_offset, max_rejected, rejected, created_at, created_by) VALUES (?, 'sweepg', 'csv', 'none', ?, 'id', 'running', 100, 10, 0, '[]', ?, 'test')",
      )
        .bind(id, `idem-${id}`, new Date(createdAt).toISOString())
        .run();
    await insert("stalled-load", now - 7 * 3_600_000);
    await insert("young-load", now - 60_000);
    await env.CONFIG.put("fo:sweepg:stalled-load:k1", JSON.stringify({ h: [[now, { v: 99 }]] }));
    await env.CONFIG.put("fo:sweepg:stalled-load:k2", JSON.stringify({ h: [[now, { v: 98 }]] }));

    const swept = await sweepFeatureLoads(env, now);
    expect(swept.failed).toEqual(["stalled-load"]);
    // Its two records, and any written by loads of other tests that failed after a first chunk.
    expect(swept.deletedKeys).toBeGreaterThanOrEqual(2);
    const stalled = await call("GET", "/admin/features/loads/stalled-load", undefined, ADMIN);
    expect(stalled.json.status).toBe("failed");
    expect(stalled.json.error).toMatch(/ran out of retries/);
    expect((await call("GET", "/admin/features/loads/young-load", undefined, ADMIN)).json.status).toBe("running");
    expect(await env.CONFIG.get("fo:sweepg:stalled-load:k1")).toBeNull();
    expect(await env.CONFIG.get("fo:sweepg:stalled-load:k2")).toBeNull();
    // The succeeded load's record is untouched and still serves.
    const k1 = await get({ group: "sweepg", entity_id: "k1", features: ["v"] });
    expect(k1.json).toMatchObject({ values: { v: 1 } });
    expect((await sweepFeatureLoads(env, now)).deletedKeys).toBe(0);
  });
});

describe("get_features", () => {
  it("computes online features from the values they read", async () => {
    const res = await get({ group: "customers", entity_id: "n500", features: ["dti", "high_debt", "income"] });
    // n500 has income 750 and no debt: debt falls back to its default 5 inside the expression.
    expect(res.json.values).toEqual({ dti: 5 / 750, high_debt: false, income: 750 });
    expect(res.json.sources).toEqual({ dti: "computed", high_debt: "computed", income: "kv" });
  });

  it("answers 404 naming the feature and entity when a fallback is 'error'", async () => {
    const res = await get({ group: "customers", entity_id: "nobody", features: ["income", "debt", "dti"] });
    expect(res.status).toBe(404);
    expect(res.json.error.details).toEqual([
      { path: "features.income", message: "entity 'nobody' has no offline values in group 'customers'" },
      { path: "features.dti", message: "'dti' evaluated to null (a missing input or an undefined operation)" },
    ]);
  });

  it("serves the last known value when the source no longer has one", async () => {
    expect((await get({ group: "customers", entity_id: "n3", features: ["segment"] })).json.values.segment).toBe("odd");
    const csv = "id,segment,income,age\nn3,,1,\nn40,even,60,40\n";
    const load = await finished((await upload("csv", csv, { group: "customers", entity_column: "id" })).json.id);
    expect(load.status).toBe("succeeded");
    await eventually(async () => {
      const res = await get({ group: "customers", entity_id: "n3", features: ["segment", "income"], timeout_ms: 5000 });
      expect(res.json.values.income).toBe(1);
      expect(res.json.values.segment).toBe("odd");
      expect(res.json.sources.segment).toBe("last_known");
      expect(res.json.fell_back).toEqual(["segment"]);
    });
  });

  it("answers a batch per entity, with errors per entity", async () => {
    const res = await call("POST", "/v1/features/batch", { group: "customers", entity_ids: ["n3", "nobody", "n3"], features: ["income", "debt"] });
    expect(res.status).toBe(200);
    expect(res.json.results.length).toBe(2);
    expect(res.json.results[0]).toMatchObject({ entity_id: "n3", values: { income: 1, debt: 5 }, fell_back: ["debt"], errors: [] });
    expect(res.json.results[1].errors).toEqual([{ feature: "income", message: "entity 'nobody' has no offline values in group 'customers'" }]);
  });

  it("refuses unknown features and groups, oversized batches and bad times", async () => {
    const unknown = await get({ group: "customers", entity_id: "c1", features: ["income", "shoe_size", "income@9"] });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.message).toMatch(/shoe_size, income@9/);
    expect((await get({ group: "nogroup", entity_id: "c1", features: ["x"] })).json.error.message).toMatch(/feature group 'nogroup' not found/);
    const big = await call("POST", "/v1/features/batch", { group: "customers", entity_ids: Array.from({ length: 1001 }, (_, i) => `e${i}`), features: ["income"] });
    expect(big.status).toBe(413);
    expect((await get({ group: "customers", entity_id: "c1", features: ["income"], as_of: "yesterday" })).json.error.details[0].path).toBe("as_of");
    expect((await get({ group: "customers", entity_id: "", features: ["income"] })).json.error.details[0].path).toBe("entity_id");
  });
});

describe("realtime events", () => {
  const now = Date.now();
  const ev = (id: string, minutesAgo: number, amount: number, entity = "r1") => ({ group: "customers", entity_id: entity, event: "txn", event_id: id, event_time: now - minutesAgo * 60_000, fields: { amount } });

  it("aggregates over windows by event time, counting duplicates once and late events where they belong", async () => {
    const first = await call("POST", "/v1/events", { events: [ev("e1", 10, 10), ev("e2", 20, 20), ev("e3", 30, 30), ev("e4", 120, 100), ev("e5", 3 * 1440, 500)] });
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ accepted: 5, duplicates: 0, too_late: 0 });
    // A re-sent event, a late one (event time 40 minutes ago, arriving now), and one past retention.
    const second = await call("POST", "/v1/events", { events: [ev("e2", 20, 20), ev("late", 40, 40), ev("ancient", 9 * 1440, 1000)] });
    expect(second.json).toMatchObject({ accepted: 1, duplicates: 1, too_late: 1 });
    const single = await call("POST", "/v1/events", ev("e6", 5, 5, "r2"));
    expect(single.json.accepted).toBe(1);

    const res = await get({ group: "customers", entity_id: "r1", features: ["txn_count_1h", "txn_sum_24h", "txn_mean_24h", "txn_max_7d"] });
    expect(res.status).toBe(200);
    expect(res.json.values).toEqual({ txn_count_1h: 4, txn_sum_24h: 200, txn_mean_24h: 40, txn_max_7d: 500 });
    expect(Object.values(res.json.sources)).toEqual(["durable_object", "durable_object", "durable_object", "durable_object"]);
  });

  it("gives count 0 for an entity without events, and the declared fallback for its mean", async () => {
    const res = await get({ group: "customers", entity_id: "quiet", features: ["txn_count_1h", "txn_mean_24h"] });
    expect(res.json.values).toEqual({ txn_count_1h: 0, txn_mean_24h: -1 });
    expect(res.json.fell_back).toEqual(["txn_mean_24h"]);
  });

  it("falls back per feature when the realtime source is slower than the request's timeout, and says so", async () => {
    // The entity's shard is held by blockConcurrencyWhile until the test releases it: the object
    // receives no call meanwhile, so the read is slow for as long as the test decides (no timing).
    // Flags, not promises, cross between the test's and the object's request contexts (a promise
    // resolved from another request's context does not wake its waiters in workerd).
    const flags = { entered: false, released: false };
    const tick = () => new Promise((resolve) => setTimeout(resolve, 5));
    const stub = env.FEATURE_AGGREGATES.getByName(shardOf(env, "customers", "c4"));
    const held = runInDurableObject(stub, (_instance, state) => {
      void state.blockConcurrencyWhile(async () => {
        flags.entered = true;
        while (!flags.released) await tick();
      });
    });
    while (!flags.entered) await tick();
    try {
      const slow = await get({ group: "customers", entity_id: "c4", features: ["income", "txn_mean_24h"], timeout_ms: 50 });
      expect(slow.status).toBe(200);
      expect(slow.json.values.txn_mean_24h).toBe(-1);
      expect(slow.json.sources.txn_mean_24h).toBe("default");
      expect(slow.json.fell_back).toEqual(["txn_mean_24h"]);
      expect(["kv", "cache"]).toContain(slow.json.sources.income);
      // A feature whose fallback is 'error' has no value: 404 naming it and the timeout.
      const failed = await get({ group: "customers", entity_id: "c4", features: ["txn_count_1h"], timeout_ms: 50 });
      expect(failed.status).toBe(404);
      expect(failed.json.error.details).toEqual([{ path: "features.txn_count_1h", message: "realtime source timed out after 50 ms" }]);
    } finally {
      flags.released = true;
      await held;
    }
    const after = await get({ group: "customers", entity_id: "c4", features: ["txn_count_1h", "txn_mean_24h"], timeout_ms: 5000 });
    expect(after.json.sources).toEqual({ txn_count_1h: "durable_object", txn_mean_24h: "default" });
    expect(after.json.values.txn_count_1h).toBe(0);
  });

  it("refuses bad events whole, writing none of them", async () => {
    const cases: [unknown, RegExp][] = [
      [{ events: [ev("ok-1", 1, 1, "r9"), { ...ev("x", 1, 1, "r9"), event: "click" }] }, /no active realtime feature of group 'customers' consumes 'click'/],
      [{ events: [ev("ok-1", 1, 1, "r9"), { ...ev("x", 1, 1, "r9"), fields: {} }] }, /events\[1\]\.fields\.amount: required by/],
      [{ events: [ev("ok-1", 1, 1, "r9"), { ...ev("x", 1, 1, "r9"), event_time: now + 3_600_000 }] }, /in the future/],
      [{ events: [ev("ok-1", 1, 1, "r9"), { ...ev("x", 1, 1, "r9"), event_time: "noon" }] }, /event_time/],
      // A field of the wrong type is named, alone or in a batch (before: "(root): Invalid input").
      [{ ...ev("x", 1, 1, "r9"), fields: { amount: "x" } }, /"path":"fields\.amount"/],
      [{ events: [ev("ok-1", 1, 1, "r9"), { ...ev("x", 1, 1, "r9"), fields: { amount: "x" } }] }, /"path":"events\[1\]\.fields\.amount"/],
      // Values whose window sum could overflow (two of 1e308 made the sum Infinity, read as null).
      [{ ...ev("x", 1, 1, "r9"), fields: { amount: 1e308 } }, /"path":"fields\.amount","message":"must be at most 1e100 in magnitude/],
    ];
    for (const [body, message] of cases) {
      const res = await call("POST", "/v1/events", body);
      expect(res.status).toBe(422);
      expect(JSON.stringify(res.json.error)).toMatch(message);
    }
    expect((await call("POST", "/v1/events", { events: Array.from({ length: 1001 }, (_, i) => ev(`b${i}`, 1, 1)) })).status).toBe(413);
    const res = await get({ group: "customers", entity_id: "r9", features: ["txn_count_1h"] });
    expect(res.json.values.txn_count_1h).toBe(0);
  });
});

describe("prediction by entity id", () => {
  let manifest: any;
  let artifact: Uint8Array;
  let params: any;
  const REST = { Seniority: 9, Home: "rent", Time: 60, Marital: "married", Records: "no", Job: "freelance", Expenses: 73, Assets: 0, Amount: 800, Price: 846 };

  beforeAll(async () => {
    manifest = await repoJson("models/credit-risk-lr.manifest.json");
    artifact = await repoBytes("models/credit-risk-lr.onnx");
    params = await repoJson("models/credit-risk-lr.params.json");
  });

  const withStore = (stores: Record<string, unknown>) => ({
    ...manifest,
    name: "credit-store",
    featureSchema: { ...manifest.featureSchema, features: manifest.featureSchema.features.map((f: any) => (stores[f.name] ? { ...f, store: stores[f.name] } : f)) },
  });

  it("refuses a manifest naming store features that do not exist or do not fit", async () => {
    const missing = await register("credit-store", withStore({ Income: { group: "customers", name: "salary" } }), artifact);
    expect(missing.status).toBe(422);
    expect(missing.json.error.details).toEqual([{ path: "manifest.featureSchema.features[8].store", message: "feature-store feature 'customers.salary' does not exist or is retired" }]);
    const mismatch = await register("credit-store", withStore({ Home: { group: "customers", name: "income" }, Age: { group: "customers", name: "age", version: 7 } }), artifact);
    expect(mismatch.json.error.details).toEqual([
      { path: "manifest.featureSchema.features[1].store", message: "feature-store feature 'customers.income' is numeric; 'Home' is categorical" },
      { path: "manifest.featureSchema.features[3].store", message: "feature-store feature 'customers.age' version 7 does not exist or is retired" },
    ]);
    expect((await call("GET", "/admin/models/credit-store", undefined, ADMIN)).status).toBe(404);
  });

  it("fetches the version's store features for the entity, applies overrides, and scores as with the same features sent", async () => {
    const reg = await register("credit-store", withStore({ Income: { group: "customers", name: "income" }, Debt: { group: "customers", name: "debt" }, Age: { group: "customers", name: "age", version: 1 } }), artifact, ["champion"]);
    expect(reg.status).toBe(201);
    const res = await call("POST", "/v1/models/credit-store/predict", { entity_id: "n40", features: REST });
    expect(res.status).toBe(200);
    // Entity ids follow the feature store's rule on predict too (control characters were taken as an entity).
    const control = await call("POST", "/v1/models/credit-store/predict", { entity_id: "n\u0001", features: REST });
    expect(control.status, control.text).toBe(422);
    expect(control.text).toMatch(/control characters/);
    const row = { ...REST, Income: 60, Debt: 5, Age: 40 };
    expect(res.json.prediction.score).toBeCloseTo(predictLogistic(params, row), 5);
    expect(res.json.feature_sources).toMatchObject({ Income: "kv", Debt: "default", Age: "kv", Seniority: "override" });
    expect(res.json.fell_back).toEqual(["Debt"]);
    const direct = await call("POST", "/v1/models/credit-store/predict", { features: row });
    expect(direct.json.prediction).toEqual(res.json.prediction);

    const overridden = await call("POST", "/v1/models/credit-store/predict", { entity_id: "n40", features: { ...REST, Income: 500 } });
    expect(overridden.json.feature_sources.Income).toBe("override");
    expect(overridden.json.prediction.score).toBeCloseTo(predictLogistic(params, { ...row, Income: 500 }), 5);
  });

  it("logs with the prediction which tier served each feature and which fell back, so a later label can be traced", async () => {
    const res = await call("POST", "/v1/models/credit-store/predict", { entity_id: "n40", features: { ...REST, Income: 61 } }, { "x-request-id": "by-entity-1" });
    expect(res.status).toBe(200);
    // The log is keyed by the id the server made (the caller's x-request-id is only a correlation id).
    const id = res.headers.get("x-request-id")!;
    const [entry] = await eventually(async () => {
      const entries = await env.PREDICTION_LOG.getByName(logShardName("credit-store", id, 4)).entries(id);
      expect(entries).toHaveLength(1);
      return entries;
    });
    expect(entry.features).toEqual({ entity_id: "n40", sources: res.json.feature_sources, fell_back: ["Debt"] });
    expect(entry.features!.sources).toMatchObject({ Income: "override", Debt: "default", Seniority: "override" });
    expect(["kv", "cache"]).toContain(entry.features!.sources.Age);
    // A request that sent its features logs no provenance.
    const plainRes = await call("POST", "/v1/models/credit-store/predict", { features: { ...REST, Income: 60, Debt: 5, Age: 40 } }, { "x-request-id": "with-features-1" });
    const plainId = plainRes.headers.get("x-request-id")!;
    const [plain] = await eventually(async () => {
      const entries = await env.PREDICTION_LOG.getByName(logShardName("credit-store", plainId, 4)).entries(plainId);
      expect(entries).toHaveLength(1);
      return entries;
    });
    expect(plain.features).toBeUndefined();
  });

  it("answers 4xx for unknown entities, missing request features, and models without store features", async () => {
    const unknown = await call("POST", "/v1/models/credit-store/predict", { entity_id: "nobody", features: REST });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.details.map((d: any) => d.path).sort()).toEqual(["features.Age", "features.Income"]);
    const partial = await call("POST", "/v1/models/credit-store/predict", { entity_id: "n40" });
    expect(partial.status).toBe(422);
    expect(partial.json.error.details.map((d: any) => d.path)).toContain("features.Seniority");
    const both = await call("POST", "/v1/models/credit-store/predict", { entity_id: "n40", instances: [REST] });
    expect(both.status).toBe(422);
  });
});

describe("metrics", () => {
  it("reports per-feature latency, hit rate and fallbacks in the API and in /metrics", async () => {
    const res = await call("GET", "/admin/features/metrics", undefined, ADMIN);
    expect(res.status).toBe(200);
    const income = res.json.features.find((f: any) => f.feature === "customers.income");
    expect(income.lookups).toBeGreaterThan(5);
    expect(income.tiers.kv).toBeGreaterThan(0);
    expect(income.tiers.cache).toBeGreaterThan(0);
    expect(income.cache_hit_rate).toBeCloseTo(income.tiers.cache / (income.tiers.cache + income.tiers.kv), 12);
    expect(income.latency_ms.p95).toBeGreaterThanOrEqual(income.latency_ms.p50);
    const debt = res.json.features.find((f: any) => f.feature === "customers.debt");
    expect(debt.fallbacks).toBe(debt.tiers.default);
    expect(debt.fallbacks).toBeGreaterThan(0);

    const text = (await call("GET", "/metrics")).text;
    expect(text).toMatch(/edge_ml_feature_lookups_total\{feature="customers.income",tier="cache"\} \d+/);
    expect(text).toMatch(/edge_ml_feature_fallbacks_total\{feature="customers.debt"\} [1-9]/);
    expect(text).toMatch(/edge_ml_feature_latency_seconds\{feature="customers.income",quantile="0.95"\} /);
    const lint = (await (await env.TEST_PROMTOOL.fetch("http://promtool/", { method: "POST", body: text })).json()) as { code: number; output: string };
    expect(lint).toEqual({ code: 0, output: "" });
  });

  it("times get_features in a loop inside the isolate", async () => {
    const res = await call("POST", "/admin/features/profile", { group: "customers", entity_id: "n3", features: ["income", "debt", "dti"], iterations: 50 }, ADMIN);
    expect(res.status).toBe(200);
    expect(res.json.iterations).toBe(50);
    expect(res.json.mean_ms).toBeGreaterThanOrEqual(0);
    expect(res.json.share_reading_under_1ms).toBeGreaterThanOrEqual(0);
    expect(res.json.share_reading_under_1ms).toBeLessThanOrEqual(1);
    expect(res.json.readings_ms.p95).toBeGreaterThanOrEqual(res.json.readings_ms.p50);
    const before = (await call("GET", "/admin/features/metrics", undefined, ADMIN)).json.features.find((f: any) => f.feature === "customers.dti").lookups;
    await call("POST", "/admin/features/profile", { group: "customers", entity_id: "n3", features: ["dti"], iterations: 20 }, ADMIN);
    const after = (await call("GET", "/admin/features/metrics", undefined, ADMIN)).json.features.find((f: any) => f.feature === "customers.dti").lookups;
    expect(after - before).toBe(20);
  });

  it("needs admin credentials for definitions and loads", async () => {
    expect((await call("GET", "/admin/features/definitions?group=customers")).status).toBe(401);
    expect((await call("POST", "/admin/features/loads", { group: "customers" })).status).toBe(401);
  });
});
