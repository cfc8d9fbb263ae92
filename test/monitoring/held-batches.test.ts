/**
 * The collector holds predictions and logs and folds them in batches (Collector.foldHeld: at
 * HOLD_ROWS rows or HOLD_REQUESTS requests, and before every flush). What reaches the Durable
 * Objects must be exactly what folding each request as it came would give: every row in the
 * histograms, missing counts and KS cells, every request in the prediction log.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { v7 as uuidv7 } from "uuid";
import { rowValidator } from "../../src/inference/features";
import { emptyAggregate } from "../../src/monitoring/aggregate";
import { Collector, foldPrediction, sealTarget } from "../../src/monitoring/collector";
import { logShardName, shardName } from "../../src/monitoring/config";
import type { ModelVersion } from "../../src/registry/store";
import type { PredictionEvent } from "../../src/serving/events";
import { DDSketch } from "../../src/stats/sketch";
import { columnsOf } from "../support/columns";
import { repoJson } from "../support/files";

const MODEL = "held-model";

describe("held predictions", () => {
  it("reach the shard and the log exactly as if each request were folded as it came, across hold limits", async () => {
    const manifest = await repoJson("models/credit-risk-lr.manifest.json");
    const version = { modelName: MODEL, version: "1.0.0", sha256: "s", featureSchema: manifest.featureSchema, reference: manifest.reference } as unknown as ModelVersion;
    const holdout = (await repoJson("models/credit-risk-holdout.json")).rows.map((r: { features: Record<string, unknown> }) => r.features);
    const validator = rowValidator(version.featureSchema);
    // 300 requests of 1, 3, 50 and 100 rows: ~11,500 rows, so holds end by rows (4096) and by requests (128).
    const sizes = [1, 3, 50, 100];
    const events: PredictionEvent[] = Array.from({ length: 300 }, (_, k) => {
      const n = sizes[k % sizes.length];
      const rows = Array.from({ length: n }, (_, i) => holdout[(k * 7 + i) % holdout.length]);
      const predictions = rows.map((_, i) => ({ label: (k + i) % 2, score: ((k * 31 + i * 17) % 100) / 100 + 0.005, probabilities: {} }));
      return { requestId: uuidv7(), at: Date.now(), route: "v1", dispatch: { version }, resolved: validator.resolve(rows, (i) => `instances[${i}]`), rows, predictions, columns: columnsOf(predictions), latencyMs: 1 + (k % 5), inferenceMs: 0.1 };
    });

    // What folding each request as it came gives.
    const expected = { agg: emptyAggregate(), sketch: new DDSketch(0.01) };
    for (const e of events) foldPrediction(expected, e);
    sealTarget(expected);

    // One flush (the timer's) after all 300: everything held before it is folded first.
    const collector = new Collector();
    const flushing = { ...env, MONITORING_FLUSH_EVENTS: "100000", MONITORING_FLUSH_ROWS: "10000000" } as Env;
    await Promise.all(events.map((e) => collector.recordPrediction(flushing, e)));
    expect(collector.flushes).toBe(1);

    const { aggregate } = await env.MONITOR_SHARD.getByName(shardName(MODEL, "1.0.0", collector.shardSeed % 1)).window(60_000);
    expect(aggregate.requests).toBe(300);
    expect(aggregate.rows).toBe(events.reduce((n, e) => n + e.columns.scores.length, 0));
    expect(aggregate.labels).toEqual(expected.agg.labels);
    expect(aggregate.score.counts).toEqual(expected.agg.score.counts);
    expect(aggregate.score.ks).toEqual(expected.agg.score.ks);
    for (const [name, f] of Object.entries(expected.agg.features)) {
      const got = aggregate.features[name] as typeof f;
      expect([name, got.missing, got.counts]).toEqual([name, f.missing, f.counts]);
      if (f.type === "numeric") expect([name, (got as typeof f).ks]).toEqual([name, f.ks]);
    }
    // Every request is in the prediction log, with its scores.
    for (const e of events.filter((_, k) => k % 10 === 0)) {
      const logged = await env.PREDICTION_LOG.getByName(logShardName(MODEL, e.requestId, 4)).entries(e.requestId);
      expect(logged.map((l) => l.score)).toEqual(Array.from(e.columns.scores));
    }
  });
});
