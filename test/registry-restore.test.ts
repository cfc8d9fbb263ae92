/**
 * Restoring an archived version (issue 17): POST /admin/models/:name/versions/:version/restore
 * brings it back to `registered` with an audit entry; it is refused (and nothing changes) for bad
 * names, unknown versions, bad bodies, missing credentials, a version that is not archived, and a
 * version whose artifact is no longer in R2 (or is other bytes); a restore that loses a race writes
 * nothing. The orphan sweep keeps the artifacts of archived
 * versions (their rows still reference them), so restore works after any number of sweeps.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { sweepArtifacts, ARTIFACT_GRACE_MS } from "../src/registry/sweep";
import { archiveStatements, registryDb, restoreVersion } from "../src/registry/store";
import { ADMIN, call, register } from "./support/api";
import { repoBytes, repoJson } from "./support/files";

const M = "credit-risk";
let row: Record<string, unknown>;

const status = async (version: string) => (await call("GET", `/admin/models/${M}/versions/${version}`, undefined, ADMIN)).json.status;
const auditIds = async () => (await call("GET", `/admin/models/${M}/audit?limit=500`, undefined, ADMIN)).json.entries.map((e: { id: number }) => e.id);
const predictVersion = (version: string) => call("POST", `/v1/models/${M}/predict`, { version, features: row });

beforeAll(async () => {
  const lr = await repoJson("models/credit-risk-lr.manifest.json");
  const lrBytes = await repoBytes("models/credit-risk-lr.onnx");
  expect((await register(M, lr, lrBytes, ["champion"])).status).toBe(201);
  expect((await register(M, { ...lr, version: "1.0.1" }, lrBytes)).status).toBe(201);
  const gbt = await repoJson("models/credit-risk-gbt.manifest.json");
  expect((await register(M, { ...gbt, version: "2.0.0" }, await repoBytes("models/credit-risk-gbt.onnx"))).status).toBe(201);
  row = (await repoJson("models/credit-risk-holdout.json")).rows[0].features;
});

describe("restore an archived version", () => {
  it("brings it back to registered, serving by version again, with an audit entry; a second restore is 409", async () => {
    expect((await call("POST", `/admin/models/${M}/versions/1.0.1/archive`, { reason: "superseded" }, ADMIN)).status).toBe(200);
    expect((await predictVersion("1.0.1")).status).toBe(409);

    const res = await call("POST", `/admin/models/${M}/versions/1.0.1/restore`, { reason: "archived by mistake" }, { ...ADMIN, "x-actor": "alice" });
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json).toMatchObject({ name: M, version: "1.0.1", status: "registered" });
    expect(await status("1.0.1")).toBe("registered");
    expect((await predictVersion("1.0.1")).status).toBe(200);
    // It can take an alias again.
    expect((await call("PUT", `/admin/models/${M}/aliases/shadow`, { version: "1.0.1" }, ADMIN)).status).toBe(200);

    const audit = (await call("GET", `/admin/models/${M}/audit?limit=2`, undefined, ADMIN)).json.entries;
    expect(audit[1]).toMatchObject({ action: "version.restore", actor: "alice", version: "1.0.1", reason: "archived by mistake", details: { from: "archived", to: "registered" } });

    const before = await auditIds();
    const again = await call("POST", `/admin/models/${M}/versions/1.0.1/restore`, {}, ADMIN);
    expect(again.status).toBe(409);
    expect(again.json.error).toMatchObject({ code: "conflict", message: expect.stringMatching(/1\.0\.1 of 'credit-risk' is not archived \(status 'registered'\)/) });
    expect(await auditIds()).toEqual(before);
  });

  it("refuses bad inputs with a 4xx naming what is wrong, and changes nothing", async () => {
    expect((await call("DELETE", `/admin/models/${M}/aliases/shadow`, undefined, ADMIN)).status).toBe(204);
    expect((await call("POST", `/admin/models/${M}/versions/1.0.1/archive`, {}, ADMIN)).status).toBe(200);
    const before = await auditIds();
    const cases: [string, unknown, Record<string, string>, number, RegExp][] = [
      [`/admin/models/${M}/versions/1.0.1/restore`, {}, {}, 401, /./],
      [`/admin/models/${M}/versions/1.0.1/restore`, {}, { authorization: "Bearer wrong-token" }, 403, /invalid admin token/],
      [`/admin/models/${M}/versions/1.x/restore`, {}, ADMIN, 400, /invalid version '1\.x'/],
      [`/admin/models/Bad%20Name/versions/1.0.1/restore`, {}, ADMIN, 400, /invalid model name/],
      [`/admin/models/${M}/versions/9.9.9/restore`, {}, ADMIN, 404, /9\.9\.9/],
      [`/admin/models/no-such-model/versions/1.0.1/restore`, {}, ADMIN, 404, /no-such-model/],
      [`/admin/models/${M}/versions/1.0.1/restore`, { reason: 5 }, ADMIN, 422, /invalid request body/],
      [`/admin/models/${M}/versions/1.0.1/restore`, { stage: "production" }, ADMIN, 422, /invalid request body/],
      [`/admin/models/${M}/versions/1.0.1/restore`, { alias: "Not An Alias!" }, ADMIN, 422, /invalid request body/],
      [`/admin/models/${M}/versions/1.0.1/restore`, "{not json", ADMIN, 400, /JSON/i],
    ];
    for (const [path, body, headers, code, message] of cases) {
      const res = await call("POST", path, body, headers);
      expect(res.status, `${path} ${JSON.stringify(body)}: ${res.text}`).toBe(code);
      expect(res.json.error.message, path).toMatch(message);
    }
    expect(await status("1.0.1")).toBe("archived");
    expect(await auditIds()).toEqual(before);
    expect((await predictVersion("1.0.1")).status).toBe(409);
  });

  it("the orphan sweep keeps an archived version's artifact, so restore still works after it", async () => {
    const key = (await call("GET", `/admin/models/${M}/versions/1.0.1`, undefined, ADMIN)).json.artifact.key;
    const swept = await sweepArtifacts(env, Date.now() + 10 * ARTIFACT_GRACE_MS);
    expect(swept.deleted).not.toContain(key);
    expect(await env.ARTIFACTS.head(key)).not.toBeNull();
    const res = await call("POST", `/admin/models/${M}/versions/1.0.1/restore`, {}, ADMIN);
    expect(res.status).toBe(200);
    expect((await predictVersion("1.0.1")).status).toBe(200);
  });

  it("answers 409 naming the artifact when it is no longer in R2 or not the registered bytes, and leaves the version archived", async () => {
    expect((await call("POST", `/admin/models/${M}/versions/2.0.0/archive`, {}, ADMIN)).status).toBe(200);
    const key = (await call("GET", `/admin/models/${M}/versions/2.0.0`, undefined, ADMIN)).json.artifact.key;
    const before = await auditIds();
    // Other bytes of the same size under the key (with their own sha256): refused as well.
    const other = new Uint8Array(await (await env.ARTIFACTS.get(key))!.arrayBuffer());
    other[other.length - 1] ^= 0xff;
    const otherSha = [...new Uint8Array(await crypto.subtle.digest("SHA-256", other))].map((b) => b.toString(16).padStart(2, "0")).join("");
    await env.ARTIFACTS.put(key, other, { sha256: otherSha });
    const swapped = await call("POST", `/admin/models/${M}/versions/2.0.0/restore`, {}, ADMIN);
    expect(swapped.status).toBe(409);
    expect(swapped.json.error.message).toContain(`its artifact ${key} holds other bytes (sha256 ${otherSha}`);

    await env.ARTIFACTS.delete(key); // as a bucket lifecycle rule or a hand deletion would
    const res = await call("POST", `/admin/models/${M}/versions/2.0.0/restore`, {}, ADMIN);
    expect(res.status).toBe(409);
    expect(res.json.error.message).toContain(`its artifact ${key} is no longer in the artifact bucket`);
    expect(await status("2.0.0")).toBe("archived");
    expect(await auditIds()).toEqual(before);
  });

  it("of two concurrent restores one wins and one gets 409, with one audit entry", async () => {
    expect((await call("POST", `/admin/models/${M}/versions/1.0.1/archive`, {}, ADMIN)).status).toBe(200);
    const before = (await auditIds()).length;
    const results = await Promise.all([1, 2].map(() => call("POST", `/admin/models/${M}/versions/1.0.1/restore`, {}, ADMIN)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 409]);
    const entries = (await call("GET", `/admin/models/${M}/audit?limit=500`, undefined, ADMIN)).json.entries;
    expect(entries.length - before).toBe(1);
    expect(entries[0]).toMatchObject({ action: "version.restore", version: "1.0.1" });
  });

  it("restores under an alias in the same transaction (the way back to serving), both audited", async () => {
    expect((await call("POST", `/admin/models/${M}/versions/1.0.1/archive`, {}, ADMIN)).status).toBe(200);
    const res = await call("POST", `/admin/models/${M}/versions/1.0.1/restore`, { alias: "champion", reason: "roll back" }, ADMIN);
    expect(res.status, JSON.stringify(res.json)).toBe(200);
    expect(res.json.status).toBe("registered");
    expect((await call("GET", `/admin/models/${M}`, undefined, ADMIN)).json.aliases.champion).toBe("1.0.1");
    const [move, restore] = (await call("GET", `/admin/models/${M}/audit?limit=2`, undefined, ADMIN)).json.entries;
    expect(restore).toMatchObject({ action: "version.restore", version: "1.0.1", reason: "roll back" });
    expect(move).toMatchObject({ action: "alias.set", version: "1.0.1", reason: "roll back", details: { alias: "champion", previous: "1.0.0", via: "restore" } });
  });

  it("a restore that loses the race between its check and its write changes nothing, its alias move included", async () => {
    expect((await call("POST", `/admin/models/${M}/versions/1.0.0/archive`, {}, ADMIN)).status).toBe(200);
    const before = await auditIds();
    // The real bucket, with another request's restore committing while this one reads the artifact.
    const racing = {
      head: async (key: string) => {
        await env.DB.prepare("UPDATE model_versions SET status = 'registered' WHERE model_name = ?1 AND version = ?2").bind(M, "1.0.0").run();
        return env.ARTIFACTS.head(key);
      },
    } as unknown as R2Bucket;
    await expect(restoreVersion(registryDb(env.DB), racing, M, "1.0.0", "bob", "late", "late")).rejects.toThrow(/1\.0\.0 of 'credit-risk' was restored meanwhile/);
    expect(await auditIds()).toEqual(before);
    expect((await call("GET", `/admin/models/${M}`, undefined, ADMIN)).json.aliases.late).toBeUndefined();
  });
});

describe("archiving racing an alias move or a deployment (found by a black-box probe)", () => {
  // The archive checks for aliases and open deployments, then writes. A move that commits in
  // between (the probe hit it with requests 1 ms apart) left an alias on an archived version, and
  // every prediction through it failed. The write itself now carries the rule: run after a move or
  // a deployment committed, it writes nothing.
  let V = "";
  const archiveNow = () => env.DB.batch(archiveStatements(env.DB, M, V, new Date().toISOString(), "racer"));
  const statusNow = async () => (await env.DB.prepare("SELECT status FROM model_versions WHERE model_name = ? AND version = ?").bind(M, V).first<{ status: string }>())!.status;

  it("the archive's write refuses a version an alias or an open deployment took meanwhile, and writes no audit entry", async () => {
    // A registered version no alias points at (earlier tests moved the champion around).
    const model = (await call("GET", `/admin/models/${M}`, undefined, ADMIN)).json;
    V = model.versions.find((v: { version: string; status: string }) => v.status === "registered" && !Object.values(model.aliases).includes(v.version)).version;
    const audits = (await auditIds()).length;
    expect((await call("PUT", `/admin/models/${M}/aliases/racer`, { version: V }, ADMIN)).status).toBe(200);
    await expect(archiveNow()).rejects.toThrow(/NOT NULL constraint failed: audit_log\.at/);
    expect(await statusNow()).toBe("registered");
    expect((await call("DELETE", `/admin/models/${M}/aliases/racer`, undefined, ADMIN)).status).toBe(204);
    const d = await call("POST", "/admin/deployments", { strategy: "canary", model: M, version: V }, ADMIN);
    expect(d.status, d.text).toBe(201);
    await expect(archiveNow()).rejects.toThrow(/NOT NULL constraint failed: audit_log\.at/);
    expect(await statusNow()).toBe("registered");
    expect((await call("POST", `/admin/deployments/${d.json.deployment.id}/abort`, {}, ADMIN)).status).toBe(200);
    expect((await auditIds()).length).toBe(audits + 2 + 2); // alias set and delete; deployment create and abort
    // Nothing refers to it now: the same write archives it.
    await archiveNow();
    expect(await statusNow()).toBe("archived");
    expect((await call("POST", `/admin/models/${M}/versions/${V}/restore`, {}, ADMIN)).status).toBe(200);
  });
});
