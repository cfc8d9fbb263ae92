/**
 * Durable Object storage: rolling windows from minute and hour buckets, alarms purging what is
 * past retention, and the prediction log keeping entries for PREDICTION_LOG_DAYS (30) so late
 * labels still join.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { emptyAggregate } from "../../src/monitoring/aggregate";
import { DAY, HOUR, MINUTE } from "../../src/monitoring/config";
import { v7 as uuidv7 } from "uuid";
import { migrateLog, RequestPacker, type LoggedRequest } from "../../src/monitoring/prediction-log";
import type { MonitorShard } from "../../src/monitoring/shard";
import { columnsOf } from "../support/columns";
import { DDSketch } from "../../src/stats/sketch";

function agg(requests: number, latencyMs: number) {
  const a = emptyAggregate();
  a.requests = requests;
  a.rows = requests;
  const s = new DDSketch();
  for (let i = 0; i < requests; i++) s.add(latencyMs);
  a.latency = s.toJSON();
  return a;
}

describe("MonitorShard windows and retention", () => {
  it("answers each window from the right buckets and purges old ones on alarm", async () => {
    const stub = env.MONITOR_SHARD.getByName("retention-model@1.0.0#0");
    const now = Date.now();
    const at = (ago: number) => String(Math.floor((now - ago) / MINUTE) * MINUTE);
    await stub.ingest({ model: "retention-model", version: "1.0.0", buckets: { [at(0)]: agg(1, 10), [at(10 * MINUTE)]: agg(2, 20), [at(2 * HOUR)]: agg(4, 40) } });
    await stub.ingest({ model: "retention-model", version: "1.0.0", buckets: { [at(3 * DAY)]: agg(8, 80), [at(9 * DAY)]: agg(16, 160) } });

    const requests = async (span: number) => (await stub.window(span, now)).aggregate.requests;
    expect(await requests(5 * MINUTE)).toBe(1);
    expect(await requests(HOUR)).toBe(3);
    expect(await requests(6 * HOUR)).toBe(7);
    expect(await requests(DAY)).toBe(7);
    expect(await requests(7 * DAY)).toBe(15);
    const w = await stub.window(HOUR, now);
    expect(DDSketch.fromJSON(w.aggregate.latency!).quantile(0.99)).toBeCloseTo(20, 0);
    expect(w.seconds).toBeGreaterThanOrEqual(3600);
    expect((await stub.totals()).requests).toBe(31);

    // The 9-day-old data and minute buckets older than 3 h go at the next alarm.
    await runInDurableObject(stub, async (_instance: MonitorShard, state) => {
      expect(await state.storage.getAlarm()).not.toBeNull();
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const counts = await stub.bucketCounts();
    expect(counts.m).toBe(3); // now, -10 min, -2 h
    expect(await requests(8 * DAY)).toBe(15);
    // Totals are counters: they never go down with retention.
    expect((await stub.totals()).requests).toBe(31);
    // The alarm re-armed itself while data remains.
    await runInDurableObject(stub, async (_i: MonitorShard, state) => expect(await state.storage.getAlarm()).not.toBeNull());
  });

  it("stores batches as deltas: reads see every acknowledged batch, compaction folds them once, a restarted object finds them", async () => {
    const stub = env.MONITOR_SHARD.getByName("delta-model@1.0.0#0");
    const now = Date.now();
    const minute = String(Math.floor(now / MINUTE) * MINUTE);
    const deltas = () => runInDurableObject(stub, (_i: MonitorShard, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM deltas").one().n);
    for (let i = 0; i < 40; i++) await stub.ingest({ model: "delta-model", version: "1.0.0", buckets: { [minute]: agg(1, 10 + i) } });
    // 32 deltas were folded at the 32nd ingest; the other 8 wait for the next read.
    expect(await deltas()).toBe(8);
    const w = await stub.window(5 * MINUTE, now);
    expect(w.aggregate.requests).toBe(40);
    expect(DDSketch.fromJSON(w.aggregate.latency!).quantile(1)).toBeCloseTo(49, 0);
    expect(await deltas()).toBe(0);
    expect((await stub.window(HOUR, now)).aggregate.requests).toBe(40);

    // Deltas written but not yet folded are found by a new instance of the object (after eviction).
    for (let i = 0; i < 3; i++) await stub.ingest({ model: "delta-model", version: "1.0.0", buckets: { [minute]: agg(2, 100) } });
    expect(await deltas()).toBe(3);
    const fresh = await runInDurableObject(stub, async (_i: MonitorShard, state) => {
      const { MonitorShard: Shard } = await import("../../src/monitoring/shard");
      const restarted = new Shard(state, env);
      await scheduler.wait(1); // let the constructor's blockConcurrencyWhile run, as the runtime would before any call
      return (await restarted.window(5 * MINUTE, now)).aggregate.requests;
    });
    expect(fresh).toBe(46);
    expect((await stub.totals()).requests).toBe(46);
  });

  it("keeps labels for the retention period only", async () => {
    const stub = env.MONITOR_SHARD.getByName("retention-model@2.0.0#0");
    const now = Date.now();
    await stub.addLabels([
      { requestId: "old", row: 0, predictedAt: now - 40 * DAY, labelledAt: now - 31 * DAY, score: 0.2, predicted: "0", actual: "0" },
      { requestId: "recent", row: 0, predictedAt: now - 20 * DAY, labelledAt: now - DAY, score: 0.7, predicted: "1", actual: "1" },
    ]);
    expect(await stub.labelled(0)).toHaveLength(2);
    await runDurableObjectAlarm(stub);
    expect((await stub.labelled(0)).map((l) => l.requestId)).toEqual(["recent"]);
  });
});

/** Packs requests given as (request, [score, label][]) pairs, as an isolate's flush would. */
function packed(...requests: [LoggedRequest, [number, string][]][]) {
  const packer = new RequestPacker();
  for (const [request, rows] of requests) packer.add(request, columnsOf(rows.map(([score, label]) => ({ score, label, probabilities: {} }))));
  return packer.pack();
}

/** A UUIDv7 whose time field is `at` (the rest zero-ish). */
function uuidV7At(at: number): string {
  const hex = at.toString(16).padStart(12, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7000-8000-000000000000`;
}

describe("PredictionLog retention", () => {
  it("joins a label that arrives 29 days after the prediction and purges entries past 30 days", async () => {
    const stub = env.PREDICTION_LOG.getByName("retention-model#0");
    const now = Date.now();
    const a = { requestId: uuidV7At(now - 29 * DAY), version: "1.0.0", at: now - 29 * DAY };
    await stub.append("retention-model", packed([a, [[0.9, "1"], [0.4, "0"]]], [{ requestId: uuidV7At(now - 31 * DAY), version: "1.0.0", at: now - 31 * DAY }, [[0.1, "0"]]]));
    // Appends are idempotent (a retried flush cannot duplicate).
    await stub.append("retention-model", packed([a, [[0.9, "1"], [0.4, "0"]]]));
    expect(await stub.count()).toBe(2);
    await runDurableObjectAlarm(stub);
    expect(await stub.count()).toBe(1);
    const [joined, second, outOfRange] = await stub.join([
      { requestId: a.requestId, row: 0, actual: "1" },
      { requestId: a.requestId, row: 1, actual: "1" },
      { requestId: a.requestId, row: 2, actual: "1" },
    ]);
    expect(joined).toMatchObject({ status: "joined", entry: { score: 0.9, label: "1", version: "1.0.0" } });
    expect(second).toMatchObject({ status: "joined", entry: { row: 1, score: 0.4, label: "0" } });
    expect(outOfRange.status).toBe("not_found");
    // A purged prediction with a worker-generated (UUIDv7) id from 31 days ago: not_found at once.
    const oldId = uuidV7At(now - 31 * DAY - 1);
    await stub.append("retention-model", packed([{ requestId: oldId, version: "1.0.0", at: now - 31 * DAY }, [[0.1, "0"]]]));
    await runDurableObjectAlarm(stub);
    const [gone] = await stub.join([{ requestId: oldId, row: 0, actual: "0" }]);
    expect(gone.status).toBe("not_found");
  });
});

describe("RequestPacker reuse", () => {
  it("packs only what was added since reset, with the layout of the new requests", () => {
    const packer = new RequestPacker();
    const classes = Array.from({ length: 300 }, (_, i) => `c${i}`);
    // 300 rows, each of a different class: labels need Uint32, and 0.1 is not a float32.
    packer.add({ requestId: "first", version: "1", at: 1 }, { scores: new Float64Array(300).fill(0.1), labels: Uint32Array.from(classes, (_, i) => 299 - i), classes });
    expect(packer.pack()).toMatchObject({ scoreBytes: 8, labelBytes: 4 });
    packer.reset();
    expect([packer.rows, packer.requests]).toEqual([0, 0]);
    packer.add({ requestId: "second", version: "1", at: 2 }, columnsOf([{ value: 0.5 }, { value: 1.5 }]));
    const again = packer.pack();
    expect(JSON.parse(again.meta).map((m: unknown[]) => m[0])).toEqual(["second"]);
    expect([again.scoreBytes, again.labelBytes]).toEqual([4, 1]);
    expect(Array.from(new Float32Array(again.scores))).toEqual([0.5, 1.5]);
    expect(Array.from(new Uint8Array(again.labels))).toEqual([0, 0]); // no stale labels from the first flush
  });
});

describe("PredictionLog storage", () => {
  it("keeps every row's exact score and predicted label, for classifiers and regressors, across one packed flush", async () => {
    const stub = env.PREDICTION_LOG.getByName("packing-model#0");
    const now = Date.now();
    const packer = new RequestPacker();
    const [multiId, regrId, emptyId] = [uuidv7(), uuidv7(), uuidv7()];
    // A 1,000-row multiclass batch using three of the model's four classes, a regressor, an empty request.
    const scores = Array.from({ length: 1000 }, (_, i) => Math.sin(i + 1) / 3 + 0.5);
    const labels = scores.map((_, i) => (i % 7 === 0 ? "2" : i % 3 === 0 ? "setosa" : "0"));
    const classes = ["virginica", "0", "setosa", "2"];
    packer.add({ requestId: multiId, version: "2.0.0", deployment: "d1", variant: "b", at: now }, { scores: Float64Array.from(scores), labels: Uint32Array.from(labels, (l) => classes.indexOf(l)), classes });
    packer.add({ requestId: regrId, version: "2.0.0", at: now + 1 }, columnsOf([{ value: -1234.5678901234567 }, { value: Number.MAX_VALUE }]));
    packer.add({ requestId: emptyId, version: "2.0.0", at: now + 2 }, columnsOf([]));
    expect(packer.rows).toBe(1002);
    expect(await stub.append("packing-model", packer.pack())).toBe(3); // one row written per request

    const multi = await stub.entries(multiId);
    expect(multi).toHaveLength(1000);
    expect(multi.map((e) => e.score)).toEqual(scores);
    expect(multi.map((e) => e.label)).toEqual(labels);
    expect(multi[999]).toMatchObject({ requestId: multiId, row: 999, version: "2.0.0", deployment: "d1", variant: "b", at: now });
    const regr = await stub.entries(regrId);
    expect(regr.map((e) => [e.score, e.label, e.deployment])).toEqual([
      [-1234.5678901234567, null, undefined],
      [Number.MAX_VALUE, null, undefined],
    ]);
    expect(await stub.entries(emptyId)).toEqual([]);
    expect(await stub.count()).toBe(3);
    const [joined] = await stub.join([{ requestId: multiId, row: 7, actual: "2" }]);
    expect(joined).toMatchObject({ status: "joined", entry: { row: 7, score: scores[7], label: "2" } });
  });

  it("narrows float32 scores to 4 bytes and labels of <= 256 classes to 1, keeps wider ones, and reads tables from before the width columns", async () => {
    const stub = env.PREDICTION_LOG.getByName("layout-model#0");
    const now = Date.now();
    // Float32-exact scores (as ONNX float outputs) with 300 classes in one request: Float32 + Uint32.
    const f32 = Array.from({ length: 300 }, (_, i) => Math.fround(i / 300));
    const classes = Array.from({ length: 300 }, (_, i) => `c${i}`);
    const id = Object.fromEntries(["wide", "narrow", "first", "then", "after"].map((k) => [k, uuidv7()]));
    let packer = new RequestPacker();
    packer.add({ requestId: id.wide, version: "1", at: now }, { scores: Float64Array.from(f32), labels: Uint32Array.from(f32, (_, i) => 299 - i), classes });
    let batch = packer.pack();
    expect([batch.scoreBytes, batch.labelBytes, batch.scores.byteLength, batch.labels.byteLength]).toEqual([4, 4, 1200, 1200]);
    await stub.append("layout-model", batch);
    // A score that is not a float32 keeps the flush at Float64; two classes: Uint8 labels.
    packer = new RequestPacker();
    packer.add({ requestId: id.narrow, version: "1", at: now }, columnsOf([{ score: 0.1, label: "x", probabilities: {} }, { score: 0.5, label: "y", probabilities: {} }]));
    batch = packer.pack();
    expect([batch.scoreBytes, batch.labelBytes]).toEqual([8, 1]);
    await stub.append("layout-model", batch);
    expect((await stub.entries(id.wide)).map((e) => [e.score, e.label])).toEqual(f32.map((x, i) => [x, `c${299 - i}`]));
    expect((await stub.entries(id.narrow)).map((e) => [e.score, e.label])).toEqual([[0.1, "x"], [0.5, "y"]]);

    // Widening mid-flush: a float32, two-class request, then one with a double score and 300 classes.
    packer = new RequestPacker();
    packer.add({ requestId: id.first, version: "1", at: now }, columnsOf([{ score: 0.25, label: "x", probabilities: {} }, { score: 0.75, label: "y", probabilities: {} }]));
    packer.add({ requestId: id.then, version: "1", at: now }, { scores: Float64Array.from(classes, (_, i) => i / 3), labels: Uint32Array.from(classes, (_, i) => i), classes });
    batch = packer.pack();
    expect([batch.scoreBytes, batch.labelBytes, batch.scores.byteLength, batch.labels.byteLength]).toEqual([8, 4, 302 * 8, 302 * 4]);
    await stub.append("layout-model", batch);
    expect((await stub.entries(id.first)).map((e) => [e.score, e.label])).toEqual([[0.25, "x"], [0.75, "y"]]);
    expect((await stub.entries(id.then)).map((e) => [e.score, e.label])).toEqual(classes.map((c, i) => [i / 3, c]));

    // A shard written by an older version: its `logged_requests` table (here from before
    // score_bytes/label_bytes existed: Float64 scores, Uint32 labels) is still read. The object
    // is told as a restart would (its constructor runs migrateLog).
    await runInDurableObject(stub, (log, state) => {
      const sql = state.storage.sql;
      sql.exec(`CREATE TABLE logged_requests (request_id TEXT PRIMARY KEY, version TEXT NOT NULL, deployment TEXT, variant TEXT, at INTEGER NOT NULL,
        scores BLOB NOT NULL, classes TEXT NOT NULL, labels BLOB NOT NULL)`);
      sql.exec("INSERT INTO logged_requests VALUES ('legacy', '1', NULL, NULL, ?, ?, '[\"0\",\"1\"]', ?)", now, new Float64Array([0.25, 0.75]).buffer, new Uint32Array([0, 1]).buffer);
      (log as unknown as { legacy: boolean }).legacy = migrateLog(sql);
    });
    expect((await stub.entries("legacy")).map((e) => [e.score, e.label])).toEqual([[0.25, "0"], [0.75, "1"]]);
    await stub.append("layout-model", packed([{ requestId: id.after, version: "1", at: now }, [[0.5, "1"]]]));
    expect((await stub.entries(id.after)).map((e) => [e.score, e.label])).toEqual([[0.5, "1"]]);
  });

  it("writes one row per logged request (no index rows), skips ids that are not UUIDv7, and drops an older table once it has aged out", async () => {
    // The meter: SQLite-backed objects count every table and index row a statement writes, so
    // the layout this replaced (a rowid table with an id index and a time index) wrote 3.
    const indexed = await runInDurableObject(env.PREDICTION_LOG.getByName("meter-model#0"), (_log, state) => {
      const sql = state.storage.sql;
      sql.exec("CREATE TABLE scratch (request_id TEXT PRIMARY KEY, at INTEGER NOT NULL); CREATE INDEX scratch_by_time ON scratch (at)");
      return sql.exec("INSERT INTO scratch VALUES ('x', 1)").rowsWritten;
    });
    expect(indexed).toBe(3);

    const stub = env.PREDICTION_LOG.getByName("rows-model#0");
    const now = Date.now();
    const ids = [uuidv7(), uuidv7(), uuidv7()];
    expect(await stub.append("rows-model", packed(...ids.map((requestId): [LoggedRequest, [number, string][]] => [{ requestId, version: "1", at: now }, [[0.5, "1"]]])))).toBe(3);
    expect(await stub.append("rows-model", packed(...ids.map((requestId): [LoggedRequest, [number, string][]] => [{ requestId, version: "1", at: now }, [[0.5, "1"]]])))).toBe(0); // a retried flush
    // A caller's own id (never what app.ts logs): skipped, so the range purge never misjudges its age.
    expect(await stub.append("rows-model", packed([{ requestId: "client-chosen-id", version: "1", at: now }, [[0.5, "1"]]]))).toBe(0);
    expect(await stub.entries("client-chosen-id")).toEqual([]);
    expect(await stub.count()).toBe(3);

    // An older shard: an old and a recent entry in `logged_requests`, each with a joined label.
    const recentLegacy = uuidV7At(now - DAY);
    await runInDurableObject(stub, (log, state) => {
      const sql = state.storage.sql;
      sql.exec(`CREATE TABLE logged_requests (request_id TEXT PRIMARY KEY, version TEXT NOT NULL, deployment TEXT, variant TEXT, at INTEGER NOT NULL,
        scores BLOB NOT NULL, classes TEXT NOT NULL, labels BLOB NOT NULL, score_bytes INTEGER NOT NULL DEFAULT 8, label_bytes INTEGER NOT NULL DEFAULT 4, features TEXT);
        CREATE INDEX logged_requests_by_time ON logged_requests (at)`);
      const row = (rid: string, at: number) => sql.exec("INSERT INTO logged_requests (request_id, version, at, scores, classes, labels) VALUES (?, '1', ?, ?, '[\"0\",\"1\"]', ?)", rid, at, new Float64Array([0.3]).buffer, new Uint32Array([1]).buffer);
      row("old-client-id", now - 31 * DAY);
      row(recentLegacy, now - DAY);
      (log as unknown as { legacy: boolean }).legacy = migrateLog(sql);
    });
    expect(await stub.count()).toBe(5);
    expect((await stub.join([{ requestId: "old-client-id", row: 0, actual: "1" }, { requestId: recentLegacy, row: 0, actual: "0" }])).map((r) => r.status)).toEqual(["joined", "joined"]);
    // A retried flush of an entry the old table holds is not logged twice.
    expect(await stub.append("rows-model", packed([{ requestId: recentLegacy, version: "1", at: now - DAY }, [[0.3, "1"]]]))).toBe(0);

    const tables = () => runInDurableObject(stub, (_log, state) => state.storage.sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").toArray().map((t) => t.name));
    await runDurableObjectAlarm(stub);
    expect(await stub.count()).toBe(4); // the 31-day-old entry is purged, with its outcome
    expect(await stub.entries("old-client-id")).toEqual([]);
    expect((await stub.join([{ requestId: recentLegacy, row: 0, actual: "0" }]))[0].status).toBe("duplicate"); // its outcome is kept
    expect(await tables()).toContain("logged_requests");
    // Once the old table's last entry ages out, the table (and its indexes) go.
    await runInDurableObject(stub, (_log, state) => void state.storage.sql.exec("UPDATE logged_requests SET at = ?", now - 31 * DAY));
    await runDurableObjectAlarm(stub);
    expect(await tables()).not.toContain("logged_requests");
    expect(await stub.count()).toBe(3);
    expect(await stub.entries(ids[0])).toHaveLength(1);
  });
});
