/**
 * A stats shard registers itself with the model's control object under the name the collector sent
 * its batch to, not `ctx.id.name`: inside a Durable Object that name is undefined when the object
 * was reached by an id string (`idFromString`, a cross-process stub, names over 1,024 bytes), and a
 * shard registered as "" sent every read of its version to an empty object.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { emptyAggregate } from "../../src/monitoring/aggregate";
import { shardName } from "../../src/monitoring/config";

describe("MonitorShard registration", () => {
  it("registers the shard by the name its batch names when the object was reached by id string", async () => {
    const name = shardName("named-shard-model", "1.0.0", 0);
    // The same object as getByName(name), reached as a cross-process stub reaches it: by id string.
    const stub = env.MONITOR_SHARD.get(env.MONITOR_SHARD.idFromString(env.MONITOR_SHARD.idFromName(name).toString()));
    const agg = emptyAggregate();
    agg.requests = 3;
    agg.rows = 3;
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    await stub.ingest({ id: crypto.randomUUID(), shard: name, model: "named-shard-model", version: "1.0.0", buckets: { [minute]: agg } });

    const active = await env.MODEL_CONTROL.getByName("named-shard-model").active();
    expect(active).toEqual([{ version: "1.0.0", shards: [name] }]);
    // Reads by that name find the batch.
    expect((await env.MONITOR_SHARD.getByName(name).window(60_000)).aggregate.requests).toBe(3);
  });
});
