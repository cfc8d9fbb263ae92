/**
 * A retraining job's release (src/retraining/validate.ts `releaseJob`) stands on what the
 * candidate was validated against. Found by a black-box probe: a job released after the champion
 * was moved by hand put the old champion on the canary's stable side (half the traffic), and a
 * rollback then undid the move; a job released while another deployment was open registered its
 * candidate, then failed three times on a conflict no retry could fix. Now each fails the job once,
 * with the reason, before anything is registered.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { registryDb, getVersion, findVersion } from "../../src/registry/store";
import { createJob, getJob, updateJob } from "../../src/retraining/store";
import { releaseJob, stagedKey, type StagedCandidate } from "../../src/retraining/validate";
import { ADMIN, call, registerStem } from "../support/api";
import { repoJson } from "../support/files";
import { exportKey, gzip } from "../../src/retraining/export";
import { holdout, setupModel } from "./helpers";

/** A job of `model` (champion 1.0.0 when it started) in `validating`, its candidate 9.0.0 staged. */
async function validatingJob(model: string): Promise<string> {
  const db = registryDb(env.DB);
  const job = await createJob(db, { model, triggerType: "manual", reason: "release test", championVersion: "1.0.0", actor: "test" });
  for (const state of ["dispatched", "training", "validating"] as const) await updateJob(db, job.id, () => ({ action: state, actor: "test", state }));
  const manifest = { ...(await repoJson("models/credit-risk-lr.manifest.json")), name: model, version: "9.0.0" };
  const v = await getVersion(db, model, "1.0.0");
  const staged: StagedCandidate = { manifest, sha256: v.sha256, size_bytes: v.sizeBytes, ir_version: v.irVersion, opsets: v.opsets as Record<string, number>, uploaded_at: new Date().toISOString() };
  await env.ARTIFACTS.put(stagedKey(job.id), JSON.stringify(staged));
  // The out-of-time set the release's deployment validation scores.
  const rows = (await holdout()).slice(0, 300);
  await env.ARTIFACTS.put(exportKey(job.id, "oot"), await gzip(rows.map((r, i) => JSON.stringify({ request_id: `r${i}`, row: 0, at: i, version: "1.0.0", features: r.features, score: 0, label: r.label })).join("\n") + "\n"));
  return job.id;
}

describe("a retraining release", () => {
  it("fails, registering nothing, when the champion moved while the job ran", async () => {
    await setupModel("rel-moved");
    expect((await registerStem("models", "credit-risk-lr", [], { name: "rel-moved", version: "1.1.0" })).status).toBe(201);
    const id = await validatingJob("rel-moved");
    expect((await call("PUT", "/admin/models/rel-moved/aliases/champion", { version: "1.1.0" }, ADMIN)).status).toBe(200);
    await releaseJob(env, id);
    const job = await getJob(registryDb(env.DB), id);
    expect(job.state).toBe("failed");
    expect(job.error).toMatch(/champion moved from 1\.0\.0 to 1\.1\.0 while the job ran/);
    expect(await findVersion(registryDb(env.DB), "rel-moved", "9.0.0")).toBeUndefined();
    expect((await call("GET", "/admin/deployments?model=rel-moved", undefined, ADMIN)).json.deployments).toEqual([]);
    expect((await call("GET", "/admin/models/rel-moved", undefined, ADMIN)).json.aliases.champion).toBe("1.1.0");
  });

  it("fails, registering nothing, while another deployment of the model is open", async () => {
    await setupModel("rel-open");
    expect((await registerStem("models", "credit-risk-lr", [], { name: "rel-open", version: "1.1.0" })).status).toBe(201);
    const open = await call("POST", "/admin/deployments", { strategy: "canary", model: "rel-open", version: "1.1.0" }, ADMIN);
    expect(open.status, open.text).toBe(201);
    const id = await validatingJob("rel-open");
    await releaseJob(env, id);
    const job = await getJob(registryDb(env.DB), id);
    expect(job.state).toBe("failed");
    expect(job.error).toContain(`open deployment ${open.json.deployment.id}`);
    expect(await findVersion(registryDb(env.DB), "rel-open", "9.0.0")).toBeUndefined();
  });

  it("releases as a canary against the champion when both still hold", async () => {
    await setupModel("rel-ok");
    const id = await validatingJob("rel-ok");
    await releaseJob(env, id);
    const job = await getJob(registryDb(env.DB), id);
    expect(job.deploymentId).toBeTruthy();
    const d = (await call("GET", `/admin/deployments/${job.deploymentId}`, undefined, ADMIN)).json.deployment;
    expect(d.variants.map((v: { name: string; version: string }) => [v.name, v.version])).toEqual([
      ["stable", "1.0.0"],
      ["canary", "9.0.0"],
    ]);
  });
});
