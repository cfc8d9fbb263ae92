/**
 * MonitorShard counts every batch exactly once (issue 13): the collector re-sends a batch whose
 * call failed, and a call can fail after the object committed the batch: in the object's own steps
 * after the commit (here its control-object call), or on the way back (a lost reply). The objects
 * are real; the lost reply is a binding wrapper that drops the answer of a call that ran, and the
 * failure after commit is injected into the running object through runInDurableObject.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { Collector, type ShardBatch } from "../../src/monitoring/collector";
import { emptyAggregate } from "../../src/monitoring/aggregate";
import { MINUTE, shardName } from "../../src/monitoring/config";
import type { MonitorShard } from "../../src/monitoring/shard";
import { oneRowEvent } from "../support/events";

/** Every event flushes at once (no timer), so each recordPrediction is one flush. */
const eager = (overrides: Partial<Record<keyof Env, unknown>> = {}) => ({ ...env, MONITORING_FLUSH_EVENTS: "1", ...overrides }) as unknown as Env;

describe("MonitorShard.ingest", () => {
  it("counts a batch re-sent after a lost reply once", async () => {
    const model = "lost-reply";
    const collector = new Collector();
    let lose = 1;
    const lossy = eager({
      MONITOR_SHARD: {
        getByName: (name: string) => ({
          ingest: async (batch: ShardBatch) => {
            await env.MONITOR_SHARD.getByName(name).ingest(batch); // the object commits...
            if (lose-- > 0) throw new Error("connection reset"); // ...and its answer never arrives
          },
        }),
      },
    });
    await collector.recordPrediction(lossy, await oneRowEvent(model, "a1"));
    await collector.recordPrediction(lossy, await oneRowEvent(model, "a2")); // re-sends a1's batch with a2's
    expect(collector.dropped).toBe(0);
    const stats = env.MONITOR_SHARD.getByName(shardName(model, "1.0.0", collector.shardSeed % 1));
    expect((await stats.totals()).requests).toBe(2);
    expect((await stats.window(5 * MINUTE)).aggregate.requests).toBe(2);
  });

  it("counts a batch re-sent after a failure that followed the commit once", async () => {
    const model = "after-commit";
    const collector = new Collector();
    const stub = env.MONITOR_SHARD.getByName(shardName(model, "1.0.0", collector.shardSeed % 1));
    await runInDurableObject(stub, (instance: MonitorShard) => {
      const shard = instance as unknown as { touchControl: (...args: unknown[]) => Promise<void> };
      const original = shard.touchControl;
      shard.touchControl = async () => {
        shard.touchControl = original;
        throw new Error("control object overloaded");
      };
    });
    await collector.recordPrediction(eager(), await oneRowEvent(model, "b1")); // committed, then the control call threw
    await collector.recordPrediction(eager(), await oneRowEvent(model, "b2"));
    expect(collector.dropped).toBe(0);
    expect((await stub.totals()).requests).toBe(2);
    expect((await stub.window(5 * MINUTE)).aggregate.requests).toBe(2);
  });

  it("ignores a batch id it has already ingested; batches without an id are each counted", async () => {
    const stub = env.MONITOR_SHARD.getByName("direct@1.0.0#0");
    const minute = String(Math.floor(Date.now() / MINUTE) * MINUTE);
    const agg = () => Object.assign(emptyAggregate(), { requests: 2, rows: 2 });
    const batch: ShardBatch = { id: "batch-1", model: "direct", version: "1.0.0", buckets: { [minute]: agg() } };
    await stub.ingest(batch);
    await stub.ingest(batch);
    expect((await stub.totals()).requests).toBe(2);
    await stub.ingest({ ...batch, id: "batch-2", buckets: { [minute]: agg() } });
    expect((await stub.totals()).requests).toBe(4);
    expect((await stub.window(5 * MINUTE)).aggregate.requests).toBe(4);
  });
});
