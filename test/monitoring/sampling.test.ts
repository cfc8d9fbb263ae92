/**
 * Every row of every request counts in the feature histograms, missing counts and KS cells (exact
 * counts, whatever the batching). Only reservoirs sample (the score's, and a numeric feature's
 * whose reference has no sample, so no KS cells), with a uniform stream sampler (Algorithm L) that
 * gives every row the same chance, whatever its position in a batch. A feature with KS cells keeps
 * no sample values, only its row count. Reads of an unchanged window draw the same sample (seeded
 * from the window), so KS does not move.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { rowValidator } from "../../src/inference/features";
import { emptyAggregate } from "../../src/monitoring/aggregate";
import { Collector, foldPrediction, sealTarget } from "../../src/monitoring/collector";
import { shardName } from "../../src/monitoring/config";
import { driftReport } from "../../src/monitoring/drift";
import type { ModelVersion } from "../../src/registry/store";
import type { PredictionEvent } from "../../src/serving/events";
import { mulberry32 } from "../../src/stats/random";
import { StreamSampler } from "../../src/stats/reservoir";
import { KsGrid, ksTwoSample } from "../../src/stats/tests";
import { DDSketch } from "../../src/stats/sketch";
import { columnsOf } from "../support/columns";
import { repoJson } from "../support/files";

/** The demo LR's version; `withoutSamples`: its reference without the numeric features' samples (bins only: no KS cells). */
async function versionOf(modelName = "m", withoutSamples = false): Promise<ModelVersion> {
  const manifest = await repoJson("models/credit-risk-lr.manifest.json");
  const reference = withoutSamples
    ? { ...manifest.reference, features: Object.fromEntries(Object.entries(manifest.reference.features).map(([k, f]: [string, any]) => [k, { ...f, sample: undefined }])) }
    : manifest.reference;
  return { modelName, version: withoutSamples ? "1.0.0-bins" : "1.0.0", sha256: "s", featureSchema: manifest.featureSchema, reference } as unknown as ModelVersion;
}

async function eventOf(rows: Record<string, unknown>[], modelName = "m", withoutSamples = false): Promise<PredictionEvent> {
  const version = await versionOf(modelName, withoutSamples);
  const predictions = rows.map((_, i) => ({ label: 0, score: (i % 10) / 10 + 0.05, probabilities: {} }));
  return {
    requestId: "r",
    at: Date.now(),
    route: "v1",
    dispatch: { version },
    resolved: rowValidator(version.featureSchema).resolve(rows, (i) => `instances[${i}]`),
    rows,
    predictions,
    columns: columnsOf(predictions),
    latencyMs: 1,
    inferenceMs: 0.1,
  };
}

type Numeric = { counts: number[]; missing: number; sample: { seen: number; values: number[] }; ks?: Record<string, number> };

describe("every row of a large batch", () => {
  it("counts every row's features in the histograms, missing counts and KS cells, and keeps no sample values beside the cells", async () => {
    const holdout = (await repoJson("models/credit-risk-holdout.json")).rows.map((r: any) => r.features);
    const event = await eventOf(holdout.slice(0, 800));
    const agg = emptyAggregate();
    const target = { agg, sketch: new DDSketch(0.01) };
    foldPrediction(target, event);
    sealTarget(target);
    expect(agg.rows).toBe(800);
    expect(agg.score.counts!.reduce((a: number, b: number) => a + b, 0)).toBe(800);
    expect(agg.score.sample.values).toHaveLength(250); // the score keeps its sample (canary analysis)
    for (const name of ["Age", "Income", "Assets"]) {
      const f = agg.features[name] as Numeric;
      const counted = f.counts.reduce((a, b) => a + b, 0);
      expect(counted + f.missing).toBe(800); // exact integers: every row
      expect(Object.values(f.ks!).reduce((a, b) => a + b, 0)).toBe(counted); // every non-missing row in its KS cell
      expect(f.sample.seen).toBe(counted);
      expect(f.sample.values).toEqual([]); // the cells give KS on every row: no values kept beside them
    }
    // Without a reference sample (no KS cells) the feature's reservoir samples instead.
    const binsOnly = emptyAggregate();
    foldPrediction({ agg: binsOnly, sketch: new DDSketch(0.01) }, await eventOf(holdout.slice(0, 800), "m", true));
    const age = binsOnly.features.Age as Numeric;
    expect(age.ks).toBeUndefined();
    expect(age.sample.seen).toBe(age.counts.reduce((a, b) => a + b, 0));
    expect(age.sample.values).toHaveLength(250); // SAMPLE_CAP.flush
    // Income is imputed when absent: rows without it are missing, as the raw row shows.
    const absent = holdout.slice(0, 800).filter((r: Record<string, unknown>) => r.Income == null).length;
    expect((agg.features.Income as Numeric).missing).toBe(absent);
    const home = agg.features.Home as { counts: Record<string, number>; missing: number };
    expect(Object.values(home.counts).reduce((a, b) => a + b, 0) + home.missing).toBe(800);
  });

  it("is unbiased: every row is equally likely to enter the KS sample, even in a periodic batch", async () => {
    // Age cycles with period 80, Seniority encodes the row's position in blocks of 100 (the other features: one holdout row's).
    const base = (await repoJson("models/credit-risk-holdout.json")).rows[0].features;
    const rows = Array.from({ length: 1000 }, (_, i) => ({ ...base, Age: 18 + (i % 80), Seniority: Math.floor(i / 100) }));
    const event = await eventOf(rows, "m", true); // features that keep a reservoir (no KS cells)
    const trueMean = rows.reduce((s, r) => s + r.Age, 0) / rows.length;
    const trials = 100;
    const perBlock = new Array(10).fill(0);
    let meanSum = 0;
    for (let trial = 0; trial < trials; trial++) {
      const agg = emptyAggregate();
      foldPrediction({ agg, sketch: new DDSketch(0.01) }, event);
      const sample = (agg.features.Age as Numeric).sample.values;
      expect(sample).toHaveLength(250);
      meanSum += sample.reduce((a, b) => a + b, 0) / sample.length;
      for (const b of (agg.features.Seniority as Numeric).sample.values) perBlock[b]++;
    }
    // Mean of 100 sample means of 250 of 1000 (finite population): standard error about 23 * sqrt(0.75 / 250 / 100) = 0.13.
    expect(Math.abs(meanSum / trials - trueMean)).toBeLessThan(0.6);
    // Each block of 100 rows holds 10% of the batch: 2500 expected picks, sd about 45.
    for (const count of perBlock) expect(Math.abs(count - 2500)).toBeLessThan(250);
  });
});

describe("stream sampler (Algorithm L)", () => {
  it("keeps each of N values with probability k / N, drawing far fewer random numbers than values", () => {
    const n = 5000;
    const k = 50;
    const kept = new Array(10).fill(0);
    let draws = 0;
    const trials = 400;
    for (let t = 0; t < trials; t++) {
      const base = mulberry32(t + 1);
      const random = () => (draws++, base());
      const r = { seen: 0, values: [] as number[] };
      const s = new StreamSampler(r, k, random);
      for (let i = 0; i < n; i++) s.offer(i);
      expect(r.seen).toBe(n);
      expect(r.values).toHaveLength(k);
      expect(new Set(r.values).size).toBe(k);
      for (const v of r.values) kept[Math.floor(v / (n / 10))]++;
    }
    // Each tenth of the stream holds 10% of the sample: 2000 expected, sd about 42.
    for (const c of kept) expect(Math.abs(c - (trials * k) / 10)).toBeLessThan(200);
    // Algorithm R would draw once per value past the first k (4,950 per trial); L draws about 3 k (1 + ln(N / k)) = 840.
    expect(draws / trials).toBeLessThan(1500);
  });
});

describe("exact KS from cell counts (KsGrid)", () => {
  it("equals the two-sample statistic on every value, with ties, whatever order the values are counted in", () => {
    const rand = mulberry32(7);
    for (let trial = 0; trial < 20; trial++) {
      // Discrete-ish reference and current values (many ties), and some current values outside the reference range.
      const reference = Array.from({ length: 300 }, () => Math.round(rand() * 40) / 2);
      const current = Array.from({ length: 500 + trial * 50 }, () => Math.round((rand() * 44 - 2 + trial * 0.1) * 4) / 4);
      const grid = new KsGrid(reference);
      const cells = new Float64Array(grid.cells);
      for (const x of [...current].reverse()) cells[grid.cellOf(x)]++;
      const exact = ksTwoSample(reference, current);
      const fromCells = grid.test(cells);
      expect(Math.abs(fromCells.statistic - exact.statistic)).toBeLessThanOrEqual(1e-12);
      expect(Math.abs(fromCells.pvalue - exact.pvalue)).toBeLessThanOrEqual(1e-12);
      expect(fromCells.n).toBe(current.length);
      // Sparse counts, split in two parts and merged by addition, give the same answer.
      const sparse: Record<string, number> = {};
      cells.forEach((c, i) => c && (sparse[i] = c));
      expect(grid.test(sparse).statistic).toBe(fromCells.statistic);
    }
  });
});

describe("KS on an unchanged window", () => {
  it("gives the same sample and the same KS result on every read", async () => {
    const holdout = (await repoJson("models/credit-risk-holdout.json")).rows.map((r: any) => r.features);
    const model = "ks-stable";
    const collector = new Collector();
    const quiet = { ...env, MONITORING_FLUSH_MS: "600000" } as Env;
    const at = Date.now();
    // Several flushes and minutes, so the window merges many stored reservoirs (more values than it keeps).
    for (let i = 0; i < 12; i++) {
      const event = await eventOf(Array.from({ length: 500 }, (_, j) => holdout[(i * 500 + j) % holdout.length]), model);
      void collector.recordPrediction(quiet, { ...event, requestId: `k${i}`, at: at - (i % 3) * 60_000 });
      await collector.flush(quiet);
    }
    const shard = env.MONITOR_SHARD.getByName(shardName(model, "1.0.0", collector.shardSeed % 1));
    const version = await versionOf(model);
    const reads = await Promise.all([0, 1, 2].map(() => shard.window(3_600_000, at + 1000)));
    const reports = reads.map((w) => driftReport(version, w.aggregate));
    expect(reads[0].aggregate.score.sample.values.length).toBeGreaterThan(1900); // SAMPLE_CAP.window, up to rounding of the split
    expect(reads[0].aggregate.score.sample.seen).toBe(6000);
    expect((reads[0].aggregate.features.Age as Numeric).sample).toEqual({ seen: 6000, values: [] }); // KS from cells, every row
    for (const r of reads.slice(1)) expect(r.aggregate.score.sample.values).toEqual(reads[0].aggregate.score.sample.values);
    for (const r of reports.slice(1)) for (const name of ["Age", "Income", "Amount"]) expect(r.features[name].ks).toEqual(reports[0].features[name].ks);
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
