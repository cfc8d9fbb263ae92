/**
 * A flush whose RPC fails is retried once with the next flush and counted as dropped if it fails
 * again; other sends of the same flush are unaffected. The objects are real; only the binding
 * handed to the collector is wrapped so that chosen calls fail, as an unreachable object would.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Collector } from "../../src/monitoring/collector";
import { logShardName, shardName } from "../../src/monitoring/config";
import { oneRowEvent } from "../support/events";
import { v7 as uuidv7 } from "uuid";

const MODEL = "retry-model";
/** Request ids as app.ts makes them (the prediction log keeps only UUIDv7 ids). */
const R = Object.fromEntries(["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"].map((k) => [k, uuidv7()]));

/** `env` whose PredictionLog appends and MonitorShard ingests fail while `down` says so. */
function flakyEnv(down: { log: number; shard: number }): Env {
  const unlessDown = <A extends unknown[], R>(key: "log" | "shard", call: (...args: A) => Promise<R>) =>
    (...args: A) => {
      if (down[key] <= 0) return call(...args);
      down[key]--;
      return Promise.reject(new Error(`${key} unreachable`));
    };
  return {
    ...env,
    // Each call flushes (one request per flush) and never waits on the timer.
    MONITORING_FLUSH_EVENTS: "1",
    PREDICTION_LOG: { getByName: (name: string) => ({ append: unlessDown("log", env.PREDICTION_LOG.getByName(name).append) }) },
    MONITOR_SHARD: { getByName: (name: string) => ({ ingest: unlessDown("shard", env.MONITOR_SHARD.getByName(name).ingest) }) },
  } as unknown as Env;
}

const logged = (requestId: string) => env.PREDICTION_LOG.getByName(logShardName(MODEL, requestId, 4)).entries(requestId);

describe("flush retries", () => {
  it("sends a failed RPC again with the next flush, and drops it only after a second failure", async () => {
    const collector = new Collector();
    const stats = env.MONITOR_SHARD.getByName(shardName(MODEL, "1.0.0", collector.shardSeed % 1));
    const down = { log: 1, shard: 0 };
    const flaky = flakyEnv(down);

    await collector.recordPrediction(flaky, await oneRowEvent(MODEL, R.r1)); // log append fails, stats land
    expect(await logged(R.r1)).toEqual([]);
    expect((await stats.window(60_000)).aggregate.requests).toBe(1);
    await collector.recordPrediction(flaky, await oneRowEvent(MODEL, R.r2)); // r1 retried with r2's flush
    expect((await logged(R.r1)).map((e) => e.score)).toEqual([0.75]);
    expect(await logged(R.r2)).toHaveLength(1);
    expect(collector.dropped).toBe(0);

    down.shard = 2; // r3's stats fail, and fail again on retry with r4's flush: r3 is dropped, r4 kept
    await collector.recordPrediction(flaky, await oneRowEvent(MODEL, R.r3));
    await collector.recordPrediction(flaky, await oneRowEvent(MODEL, R.r4));
    expect(collector.dropped).toBe(1);
    await collector.recordPrediction(flaky, await oneRowEvent(MODEL, R.r5));
    expect((await stats.window(60_000)).aggregate.requests).toBe(4); // r1, r2, r4, r5
    expect(await logged(R.r3)).toHaveLength(1); // its log append never failed
    expect(collector.dropped).toBe(1);
  });
});
