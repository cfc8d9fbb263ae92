/**
 * Feature drift folds a weighted random sample of rows from large batches
 * (MONITORING_FEATURE_ROWS); counts, score histograms and labels still take every row. The sample
 * must be unbiased: every row has the same chance, whatever its position in the batch (periodic
 * batches included), and a sampled row stands for n/k rows so big batches keep their weight.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { emptyAggregate } from "../../src/monitoring/aggregate";
import { Collector, foldPrediction } from "../../src/monitoring/collector";
import { shardName } from "../../src/monitoring/config";
import type { ModelVersion } from "../../src/registry/store";
import type { PredictionEvent } from "../../src/serving/events";
import { DDSketch } from "../../src/stats/sketch";
import { columnsOf } from "../support/columns";
import { repoJson } from "../support/files";

async function eventOf(rows: Record<string, unknown>[], modelName = "m"): Promise<PredictionEvent> {
  const manifest = await repoJson("models/credit-risk-lr.manifest.json");
  const version = { modelName, version: "1.0.0", sha256: "s", featureSchema: manifest.featureSchema, reference: manifest.reference } as unknown as ModelVersion;
  const predictions = rows.map((_, i) => ({ label: 0, score: (i % 10) / 10 + 0.05, probabilities: {} }));
  return {
    requestId: "r",
    at: Date.now(),
    route: "v1",
    dispatch: { version },
    rows,
    predictions,
    columns: columnsOf(predictions),
    latencyMs: 1,
    inferenceMs: 0.1,
  };
}

describe("feature sampling of large batches", () => {
  it("folds featureRows rows' features, weighted to stand for the whole batch; every row's score", async () => {
    const holdout = (await repoJson("models/credit-risk-holdout.json")).rows.map((r: any) => r.features);
    const event = await eventOf(holdout.slice(0, 800));
    const agg = emptyAggregate();
    foldPrediction({ agg, sketch: new DDSketch(0.01) }, event, 64);
    expect(agg.rows).toBe(800);
    expect(agg.score.counts!.reduce((a: number, b: number) => a + b, 0)).toBe(800);
    const age = agg.features.Age as { counts: number[]; missing: number; sample: { seen: number; values: number[] } };
    expect(age.sample.values).toHaveLength(64);
    expect(age.counts.reduce((a, b) => a + b, 0) + age.missing).toBeCloseTo(800, 9);
    expect(age.sample.seen).toBeCloseTo(800, 9);
    // One single-row request and one 800-row batch: the batch keeps 800/801 of the weight.
    const single = await eventOf(holdout.slice(0, 1));
    foldPrediction({ agg, sketch: new DDSketch(0.01) }, single, 64);
    expect(age.sample.seen).toBeCloseTo(801, 9);
  });

  it("is unbiased: every row is equally likely, even in a periodic batch", async () => {
    // Age cycles with period 80, Seniority encodes the row's position in blocks of 100.
    const rows = Array.from({ length: 1000 }, (_, i) => ({ Age: 18 + (i % 80), Seniority: Math.floor(i / 100) }));
    const event = await eventOf(rows);
    const trueMean = rows.reduce((s, r) => s + r.Age, 0) / rows.length;
    const trials = 300;
    const perBlock = new Array(10).fill(0);
    let meanSum = 0;
    for (let trial = 0; trial < trials; trial++) {
      const agg = emptyAggregate();
      foldPrediction({ agg, sketch: new DDSketch(0.01) }, event, 64);
      const sample = (agg.features.Age as { sample: { values: number[] } }).sample.values;
      expect(sample).toHaveLength(64);
      meanSum += sample.reduce((a, b) => a + b, 0) / sample.length;
      const blocks = agg.features.Seniority as { counts: number[]; sample: { values: number[] } };
      for (const b of blocks.sample.values) perBlock[b]++;
    }
    // Mean of 300 sample means: standard error about 23 / sqrt(64 * 300) = 0.17.
    expect(Math.abs(meanSum / trials - trueMean)).toBeLessThan(0.8);
    // Each block of 100 rows holds 10% of the batch: 1920 expected picks, sd about 42.
    for (const count of perBlock) expect(Math.abs(count - 1920)).toBeLessThan(200);
  });
});

describe("per-minute sampling budget (MONITORING_FEATURE_ROWS_PER_MINUTE)", () => {
  const budgeted = { ...env, MONITORING_FEATURE_ROWS: "16", MONITORING_FEATURE_ROWS_PER_MINUTE: "64", MONITORING_FLUSH_MS: "600000" } as Env;
  type Age = { counts: number[]; missing: number; sample: { seen: number; values: number[] } };

  it("spends the minute's budget across flushes, then folds requests with probability 1/16, weighted to keep every row's weight", async () => {
    const holdout = (await repoJson("models/credit-risk-holdout.json")).rows.map((r: any) => r.features);
    const model = "budget-model";
    const collector = new Collector();
    const at = Math.floor(Date.now() / 60_000) * 60_000 + 1_000; // every request in one minute
    const rows = Array.from({ length: 100 }, (_, i) => holdout[i % holdout.length]);
    const event = await eventOf(rows, model);
    // Two requests, a flush, two more: the budget (64 = 4 x 16 rows) is spent across the flush.
    for (let i = 0; i < 4; i++) {
      void collector.recordPrediction(budgeted, { ...event, requestId: `b${i}`, at });
      if (i === 1) await collector.flush(budgeted);
    }
    // Then 1600 more requests: each folds one row with probability 1/16 (about 100 of them).
    for (let i = 4; i < 1604; i++) void collector.recordPrediction(budgeted, { ...event, requestId: `b${i}`, at });
    await collector.flush(budgeted);
    const shard = env.MONITOR_SHARD.getByName(shardName(model, "1.0.0", collector.shardSeed % 1));
    const { aggregate } = await shard.window(3_600_000);
    expect(aggregate.rows).toBe(160_400);
    expect(aggregate.score.counts!.reduce((a, b) => a + b, 0)).toBe(160_400); // every row's score
    const age = aggregate.features.Age as Age;
    // 4 x 16 budget rows, then Binomial(1600, 1/16): mean 100, sd 9.7.
    const late = age.sample.seen > 0 ? Math.round((age.sample.seen - 400) / 1600) : 0;
    expect(late).toBeGreaterThan(60);
    expect(late).toBeLessThan(140);
    // Weights: budget rows 100/16 each (400 in all), late rows 100 * 16 each.
    expect(age.sample.seen).toBeCloseTo(400 + late * 1600, 6);
    expect(age.counts.reduce((a, b) => a + b, 0) + age.missing).toBeCloseTo(400 + late * 1600, 6);
  });

  it("is unbiased over requests: the weighted row count estimates the rows served", async () => {
    const { foldPrediction: fold, LATE_FEATURE_SHARE } = await import("../../src/monitoring/collector");
    const holdout = (await repoJson("models/credit-risk-holdout.json")).rows.map((r: any) => r.features);
    const event = await eventOf(holdout.slice(0, 10));
    const agg = emptyAggregate();
    const target = { agg, sketch: new DDSketch(0.01) };
    const requests = 32_000;
    for (let i = 0; i < requests; i++) fold(target, event, Math.random() < LATE_FEATURE_SHARE ? 1 : 0, LATE_FEATURE_SHARE);
    // Each request folds with p = 1/16 and weight 10 * 16: the estimate of 320,000 rows has sd 160 * sqrt(32,000 * 15/16 / 16) ~ 6,900.
    const seen = (agg.features.Age as Age).sample.seen;
    expect(Math.abs(seen - requests * 10)).toBeLessThan(28_000);
  });

  it("starts again in the next minute", async () => {
    const holdout = (await repoJson("models/credit-risk-holdout.json")).rows.map((r: any) => r.features);
    const model = "budget-minutes";
    const collector = new Collector();
    const minute = Math.floor(Date.now() / 60_000) * 60_000 - 120_000;
    const event = await eventOf(holdout.slice(0, 100), model);
    for (let i = 0; i < 8; i++) void collector.recordPrediction(budgeted, { ...event, requestId: `m${i}`, at: minute + (i < 4 ? 1_000 : 61_000) });
    await collector.flush(budgeted);
    const shard = env.MONITOR_SHARD.getByName(shardName(model, "1.0.0", collector.shardSeed % 1));
    // Each minute spent its own budget (4 x 16 rows) on its first four requests.
    const second = (await shard.window(60_000, minute + 120_000)).aggregate;
    const both = (await shard.window(120_000, minute + 120_000)).aggregate;
    expect(second.requests).toBe(4);
    expect((second.features.Age as Age).sample.values).toHaveLength(64);
    expect(both.requests).toBe(8);
    expect((both.features.Age as Age).sample.values).toHaveLength(128);
  });
});

describe("weighted reservoir (Chao)", () => {
  it("includes values in proportion to their weight", async () => {
    const { offer } = await import("../../src/stats/reservoir");
    const { mulberry32 } = await import("../../src/stats/random");
    const rand = mulberry32(99);
    let heavyShare = 0;
    const trials = 400;
    for (let t = 0; t < trials; t++) {
      const r = { seen: 0, values: [] as number[] };
      // 1000 unit-weight zeros and 100 ones of weight 10, interleaved: ones carry half the weight.
      for (let i = 0; i < 1100; i++) offer(r, i % 11 === 10 ? 1 : 0, 20, rand, i % 11 === 10 ? 10 : 1);
      expect(r.seen).toBe(2000);
      heavyShare += r.values.filter((v) => v === 1).length / r.values.length;
    }
    // Expected share 0.5; standard error of the mean over 400 samples of 20 is about 0.006.
    expect(Math.abs(heavyShare / trials - 0.5)).toBeLessThan(0.03);
  });
});
