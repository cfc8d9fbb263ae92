/**
 * MONITORING_EXCLUDE_MODELS: the models it names are served without monitoring (no statistics, no
 * prediction-log entry), while every other model in the same isolate is monitored as before.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { v7 as uuidv7 } from "uuid";
import { Collector } from "../../src/monitoring/collector";
import { logShardName, shardName } from "../../src/monitoring/config";
import { oneRowEvent } from "../support/events";

describe("MONITORING_EXCLUDE_MODELS", () => {
  it("skips the named models' predictions and failures and monitors the others", async () => {
    // Each record flushes at once (one request per flush); the list tolerates spaces and empty items.
    const excluding = { ...env, MONITORING_FLUSH_EVENTS: "1", MONITORING_EXCLUDE_MODELS: " quiet-model, ,other-quiet " } as Env;
    const collector = new Collector();
    const stats = (model: string) => env.MONITOR_SHARD.getByName(shardName(model, "1.0.0", collector.shardSeed % 1)).window(60_000);
    const logged = (model: string, id: string) => env.PREDICTION_LOG.getByName(logShardName(model, id, 4)).entries(id);
    const quiet = uuidv7();
    const loud = uuidv7();

    await collector.recordPrediction(excluding, await oneRowEvent("quiet-model", quiet));
    await collector.recordFailure(excluding, { requestId: uuidv7(), at: Date.now(), route: "v1", model: "quiet-model", version: "1.0.0", status: 500, code: "inference_failed", latencyMs: 1 });
    await collector.recordPrediction(excluding, await oneRowEvent("loud-model", loud));

    expect(collector.flushes).toBe(1); // only the monitored model's prediction was sent
    expect((await stats("quiet-model")).aggregate.requests).toBe(0);
    expect(await logged("quiet-model", quiet)).toEqual([]);
    expect((await stats("loud-model")).aggregate.requests).toBe(1);
    expect((await logged("loud-model", loud)).map((e) => e.score)).toEqual([0.75]);
  });
});
