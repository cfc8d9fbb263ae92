/**
 * The deployment lifecycle through the real worker (SELF.fetch, D1, R2, KV, Durable Objects):
 * bad input is refused with a 4xx naming the problem and changes nothing; validation reports gate
 * traffic; direct and blue-green switch and roll back at once; responses name the variant and
 * version; assignment is sticky by unit, header or cookie; an admin-only header forces a variant;
 * every change is in the history and the registry audit log.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN, call, registerStem } from "../support/api";
import { admin, createStarted, createValidated, holdoutSet, predict, setupModel, storeTestSet } from "./helpers";

const M = "dep-life";

beforeAll(async () => {
  await setupModel(M, [{ stem: "credit-risk-lr", version: "1.0.1" }, { stem: "credit-risk-lr", version: "0.9.0" }]);
  expect((await call("POST", `/admin/models/${M}/versions/0.9.0/archive`, {}, ADMIN)).status).toBe(200);
  // A version whose feature schema is incompatible with today's requests.
  expect((await registerStem("test/fixtures/onnx", "lr-gemm-sigmoid", [], { name: M, version: "2.0.0" })).status).toBe(201);
  await storeTestSet(M);
});

async function openDeployments() {
  const res = await admin("GET", `/?model=${M}`);
  return res.json.deployments.filter((d: any) => ["validating", "active", "paused", "promoting"].includes(d.state));
}

describe("bad input: a 4xx naming the problem, state unchanged", () => {
  it.each([
    [
      "weights not summing to 100",
      { strategy: "ab_test", model: M, variants: [{ name: "a", version: "1.0.0", weight: 50 }, { name: "b", version: "1.1.0", weight: 40 }] },
      422,
      /sum to 90/,
    ],
    ["an unknown version", { strategy: "canary", model: M, version: "9.9.9" }, 422, /9\.9\.9.*does not exist/],
    ["an archived version", { strategy: "blue_green", model: M, version: "0.9.0" }, 409, /0\.9\.0.*archived/],
    ["the stable version as candidate", { strategy: "canary", model: M, version: "1.0.0" }, 422, /already the stable version/],
    ["a direct deployment of the stable version", { strategy: "direct", model: M, version: "1.0.0" }, 422, /already the stable version/],
    ["a step schedule not ending at 100", { strategy: "canary", model: M, version: "1.1.0", steps: [10, 50] }, 422, /last step must be 100/],
    ["an unknown strategy", { strategy: "yolo", model: M, version: "1.1.0" }, 422, /strategy/],
    ["duplicate variant names", { strategy: "bandit", model: M, variants: [{ name: "a", version: "1.0.0" }, { name: "a", version: "1.1.0" }] }, 422, /'a' appears twice/],
    ["an unknown model", { strategy: "direct", model: "no-such-model", version: "1.0.0" }, 404, /model 'no-such-model'/],
  ])("%s", async (_what, body, status, message) => {
    const before = await admin("GET", `/?model=${M}`);
    const res = await admin("POST", "/", body);
    expect(res.status, res.text).toBe(status);
    expect(res.json.error.message).toMatch(message);
    expect((await admin("GET", `/?model=${M}`)).json.deployments).toEqual(before.json.deployments);
  });

  it("refuses a second open deployment for the same model", async () => {
    const first = await admin("POST", "/", { strategy: "canary", model: M, version: "1.1.0" });
    expect(first.status).toBe(201);
    const second = await admin("POST", "/", { strategy: "blue_green", model: M, version: "1.1.0" });
    expect(second.status).toBe(409);
    expect(second.json.error.message).toContain(first.json.deployment.id);
    expect(await openDeployments()).toHaveLength(1);
    expect((await admin("POST", `/${first.json.deployment.id}/abort`, { reason: "cleanup" })).json.deployment.state).toBe("failed");
  });

  it("refuses to archive a version an open deployment references", async () => {
    const d = await admin("POST", "/", { strategy: "canary", model: M, version: "1.0.1" });
    const res = await call("POST", `/admin/models/${M}/versions/1.0.1/archive`, {}, ADMIN);
    expect(res.status).toBe(409);
    expect(res.json.error.message).toContain(d.json.deployment.id);
    await admin("POST", `/${d.json.deployment.id}/abort`, {});
  });
});

describe("validation gates traffic", () => {
  it("reports every check for a good candidate, with latency measured over many runs", async () => {
    const id = await createValidated({ strategy: "canary", model: M, version: "1.1.0" });
    const d = (await admin("GET", `/${id}`)).json.deployment;
    expect(d.validation_status).toBe("passed");
    const checks = d.validation.versions[0].checks.map((c: any) => c.name);
    expect(checks).toEqual(["loads", "schema_compatible", "scores_test_set", "outputs_in_bounds", "metric_floor", "latency"]);
    const latency = d.validation.versions[0].checks.find((c: any) => c.name === "latency");
    expect(latency.value.iterations).toBeGreaterThanOrEqual(100);
    expect(latency.detail).toMatch(/mean single-row latency .* over \d+ runs/);
    expect(d.validation.test_set).toEqual({ source: "stored", rows: 891, labelled: 891 });
    await admin("POST", `/${id}/abort`, {});
  });

  it("a failed validation leaves traffic untouched; start and promote are refused", async () => {
    const created = await admin("POST", "/", { strategy: "blue_green", model: M, version: "2.0.0" });
    const id = created.json.deployment.id;
    const v = await admin("POST", `/${id}/validate`, {});
    expect(v.status).toBe(200);
    expect(v.json.report.passed).toBe(false);
    const schema = v.json.report.versions[0].checks.find((c: any) => c.name === "schema_compatible");
    expect(schema.passed).toBe(false);
    expect(schema.detail).toMatch(/feature 'Seniority' is sent today but unknown to the candidate/);

    for (const action of ["start", "promote"]) {
      const res = await admin("POST", `/${id}/${action}`, {});
      expect(res.status).toBe(409);
      expect(res.json.error.message).toMatch(/failed validation/);
    }
    const after = (await admin("GET", `/${id}`)).json.deployment;
    expect(after.state).toBe("validating");
    expect((await predict(M)).version).toBe("1.0.0");
    await admin("POST", `/${id}/abort`, {});
  });

  it("a metric floor above the candidate's AUC fails validation; a user-supplied test set works", async () => {
    const created = await admin("POST", "/", { strategy: "canary", model: M, version: "1.1.0", validation: { min_auc: 0.99 } });
    const id = created.json.deployment.id;
    const set = (await holdoutSet()).rows.slice(0, 300);
    const v = await admin("POST", `/${id}/validate`, { test_set: { rows: set } });
    expect(v.json.report.test_set).toEqual({ source: "request", rows: 300, labelled: 300 });
    const floor = v.json.report.versions[0].checks.find((c: any) => c.name === "metric_floor");
    expect(floor.passed).toBe(false);
    expect(floor.detail).toMatch(/AUC 0\.\d+ vs floor 0\.9900 \(min_auc\)/);
    expect((await admin("POST", `/${id}/promote`, {})).status).toBe(409);
    await admin("POST", `/${id}/abort`, {});
  });
});

describe("strategies that switch at once", () => {
  it("blue-green: one atomic switch to green, instant rollback to blue; history and audit record both", async () => {
    const id = await createStarted({ strategy: "blue_green", model: M, version: "1.1.0" });
    for (let i = 0; i < 5; i++) {
      const r = await predict(M, { unit: `u${i}` });
      expect(r.status).toBe(200);
      expect([r.version, r.variant, r.json.deployment]).toEqual(["1.1.0", "green", id]);
      expect(r.headers.get("x-variant")).toBe("green");
      expect(r.headers.get("x-model-version")).toBe("1.1.0");
      expect(r.headers.get("x-deployment")).toBe(id);
    }
    const rolled = await call("POST", `/admin/deployments/${id}/rollback`, { reason: "green misbehaves" }, { ...ADMIN, "x-actor": "alice" });
    expect(rolled.json.deployment.state).toBe("rolled_back");
    const after = await predict(M);
    expect(after.version).toBe("1.0.0");
    expect(after.json.deployment).toBeUndefined();

    const events = (await admin("GET", `/${id}/history`)).json.events;
    expect(events.map((e: any) => e.action)).toEqual(["create", "validate", "start", "rollback"]);
    expect(events[3]).toMatchObject({ actor: "alice", from_state: "active", to_state: "rolled_back", reason: "green misbehaves" });
    const audit = (await call("GET", `/admin/models/${M}/audit`, undefined, ADMIN)).json.entries;
    expect(audit.some((e: any) => e.action === "deployment.rollback" && e.actor === "alice" && e.details.deployment === id)).toBe(true);
  });

  it("direct: all traffic to the version; promote moves the champion; rollback of a completed deployment moves it back", async () => {
    const id = await createStarted({ strategy: "direct", model: M, version: "1.1.0" });
    expect((await predict(M)).version).toBe("1.1.0");
    const promoted = await admin("POST", `/${id}/promote`, { reason: "looks good" });
    expect(promoted.json.deployment.state).toBe("completed");
    expect((await call("GET", `/admin/models/${M}`, undefined, ADMIN)).json.aliases.champion).toBe("1.1.0");
    const r = await predict(M);
    expect([r.version, r.json.alias]).toEqual(["1.1.0", "champion"]);

    expect((await admin("POST", `/${id}/rollback`, { reason: "regret" })).json.deployment.state).toBe("rolled_back");
    expect((await call("GET", `/admin/models/${M}`, undefined, ADMIN)).json.aliases.champion).toBe("1.0.0");
    expect((await predict(M)).version).toBe("1.0.0");
    expect((await admin("POST", `/${id}/rollback`, {})).status).toBe(409);
  });

  it("a completed deployment is not aborted, nor rolled back over a later alias move (each would silently undo a release or a move)", async () => {
    const id = await createStarted({ strategy: "direct", model: M, version: "1.1.0" });
    expect((await admin("POST", `/${id}/promote`, {})).json.deployment.state).toBe("completed");
    const champion = async () => (await call("GET", `/admin/models/${M}`, undefined, ADMIN)).json.aliases.champion;
    expect(await champion()).toBe("1.1.0");
    // abort ends a deployment without promoting it: a completed one answers 409 and stays released.
    const aborted = await admin("POST", `/${id}/abort`, { reason: "cleanup script" });
    expect(aborted.status, aborted.text).toBe(409);
    expect(aborted.json.error.message).toMatch(/cannot abort deployment .*: it is completed/);
    expect(await champion()).toBe("1.1.0");
    // Someone moves the champion by hand; rolling the deployment back would move it to 1.0.0 over that move.
    expect((await registerStem("models", "credit-risk-lr", [], { name: M, version: "1.2.0" })).status).toBe(201);
    expect((await call("PUT", `/admin/models/${M}/aliases/champion`, { version: "1.2.0" }, ADMIN)).status).toBe(200);
    const rolled = await admin("POST", `/${id}/rollback`, { reason: "regret" });
    expect(rolled.status, rolled.text).toBe(409);
    expect(rolled.json.error.message).toMatch(/alias 'champion' now points at 1\.2\.0/);
    expect(await champion()).toBe("1.2.0");
    expect((await admin("GET", `/${id}`)).json.deployment.state).toBe("completed");
    expect((await call("PUT", `/admin/models/${M}/aliases/champion`, { version: "1.0.0" }, ADMIN)).status).toBe(200);
  });
});

describe("per-request routing", () => {
  it("sticky by unit, header and cookie; a cookie is set when no key is given; forced variant needs the admin token", async () => {
    const id = await createStarted({ strategy: "ab_test", model: M, variants: [{ name: "a", version: "1.0.0", weight: 50 }, { name: "b", version: "1.1.0", weight: 50 }] });
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const first = await predict(M, { unit: `cust-${i}` });
      seen.add(first.variant!);
      for (let k = 0; k < 3; k++) expect((await predict(M, { unit: `cust-${i}` })).variant).toBe(first.variant);
      expect((await predict(M, { headers: { "x-user-id": `cust-${i}` } })).variant).toBe(first.variant);
    }
    expect(seen).toEqual(new Set(["a", "b"]));

    const anon = await predict(M);
    const cookie = anon.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^eml_unit=[0-9a-f-]{36}; Path=\//);
    const jar = cookie.split(";")[0];
    for (let k = 0; k < 5; k++) {
      const again = await predict(M, { headers: { cookie: jar } });
      expect(again.variant).toBe(anon.variant);
      expect(again.headers.get("set-cookie")).toBeNull();
    }

    const forced = await predict(M, { unit: "cust-0", headers: { "x-force-variant": "b", "x-admin-token": "test-admin-token" } });
    expect([forced.variant, forced.version]).toEqual(["b", "1.1.0"]);
    const denied = await predict(M, { headers: { "x-force-variant": "b", "x-admin-token": "wrong" } });
    expect(denied.status).toBe(403);
    const unknown = await predict(M, { headers: { "x-force-variant": "zz", "x-admin-token": "test-admin-token" } });
    expect(unknown.status).toBe(400);
    expect(unknown.json.error.message).toMatch(/no variant 'zz'/);

    // An explicit version in the request wins over the deployment.
    const explicit = await call("POST", `/v1/models/${M}/predict`, { features: (await holdoutSet()).rows[0].features, version: "1.1.0" });
    expect([explicit.json.version, explicit.json.deployment]).toEqual(["1.1.0", undefined]);

    // Pause keeps the split; resume continues; abort returns traffic to the stable version.
    expect((await admin("POST", `/${id}/pause`, {})).json.deployment.state).toBe("paused");
    expect((await predict(M, { unit: "cust-1" })).json.deployment).toBe(id);
    expect((await admin("POST", `/${id}/pause`, {})).status).toBe(409);
    expect((await admin("POST", `/${id}/resume`, {})).json.deployment.state).toBe("active");
    expect((await admin("POST", `/${id}/promote`, {})).status).toBe(422); // ab_test needs a variant
    expect((await admin("POST", `/${id}/abort`, { reason: "done" })).json.deployment.state).toBe("rolled_back");
    expect((await predict(M, { unit: "cust-1" })).version).toBe("1.0.0");
  });

  it("v2 infer is routed by the same deployment", async () => {
    const id = await createStarted({ strategy: "blue_green", model: M, version: "1.1.0" });
    const set = await holdoutSet();
    const f = set.rows[0].features as Record<string, number | string>;
    const inputs = Object.entries(f).map(([name, v]) => ({ name, shape: [1], datatype: typeof v === "string" ? "BYTES" : "FP32", data: [v] }));
    const res = await call("POST", `/v2/models/${M}/infer`, { inputs });
    expect(res.status, res.text).toBe(200);
    expect(res.json.model_version).toBe("1.1.0");
    expect(res.headers.get("x-variant")).toBe("green");
    await admin("POST", `/${id}/abort`, {});
  });

  it("admin routes need the admin token", async () => {
    expect((await call("GET", "/admin/deployments")).status).toBe(401);
    expect((await call("GET", "/admin/deployments", undefined, { authorization: "Bearer nope" })).status).toBe(403);
    expect(env.CONFIG).toBeDefined();
  });
});
