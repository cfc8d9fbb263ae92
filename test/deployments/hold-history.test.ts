/**
 * A canary that holds (not enough traffic to decide) records why in its history, once per kind
 * of reason rather than once a minute, through the real scheduled handler.
 */
import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../../src/index";
import { admin, createStarted, setupModel, storeTestSet } from "./helpers";

async function runCron(at = Date.now()) {
  const controller = createScheduledController({ scheduledTime: at, cron: "* * * * *" });
  const ctx = createExecutionContext();
  await worker.scheduled(controller, env, ctx);
  await waitOnExecutionContext(ctx);
}

describe("a holding canary", () => {
  const M = "dep-hold";
  beforeAll(async () => {
    await setupModel(M);
    await storeTestSet(M);
  });

  it("records one hold event naming the reason, not one per cron run", async () => {
    const id = await createStarted({ strategy: "canary", model: M, version: "1.1.0", steps: [10, 100], analysis: { step_minutes: 0, min_requests: 50 } });
    await runCron();
    await runCron();
    await runCron();
    const d = (await admin("GET", `/${id}`)).json.deployment;
    expect(d.state).toBe("active");
    expect(d.config.last_analysis).toMatchObject({ decision: "hold" });
    const events = (await admin("GET", `/${id}/history`)).json.events;
    const holds = events.filter((e: any) => e.action === "hold");
    expect(holds).toHaveLength(1);
    expect(holds[0]).toMatchObject({ actor: "cron", from_state: "active", to_state: "active" });
    expect(holds[0].reason).toMatch(/^canary holds: canary has 0 requests in the window; needs 50/);
  });
});
