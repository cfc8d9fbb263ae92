/**
 * The CLI's day-to-day verbs against a real local server (wrangler dev on fresh state, demo models
 * registered as `npm start` does): tables for models, versions, aliases, deployments and
 * monitoring; an alias move; archiving and restoring a version; and an API error printed as the API states it with a non-zero exit.
 * (*.node-test.ts: run by `node --test` from `npm test`, not by vitest.)
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { applyMigrations, registerDemoModels, ROOT, startDevServer, type DevServer } from "../../scripts/lib/dev-server.ts";

const TOKEN = "cli-test-admin-token";
let server: DevServer;
let state: string;

function eml(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(ROOT, "cli/main.ts"), ...args], {
    cwd: tmpdir(), // no .dev.vars here: the token must come from the environment
    encoding: "utf8",
    env: { ...process.env, EML_URL: server.url, EML_ADMIN_TOKEN: TOKEN, EML_CONFIG: path.join(state, "none.json") },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

before(async () => {
  state = mkdtempSync(path.join(tmpdir(), "eml-cli-test-"));
  applyMigrations(state);
  server = await startDevServer({ port: Number(process.env.CLI_TEST_PORT ?? 8809), persistTo: state, quiet: true, vars: { ADMIN_TOKEN: TOKEN, REQUEST_LOGS: "false" } });
  await registerDemoModels(server.url, TOKEN);
});
after(async () => {
  await server?.stop();
  rmSync(state, { recursive: true, force: true });
});

test("models, versions and aliases print tables", () => {
  const models = eml("models");
  assert.equal(models.code, 0, models.err);
  assert.match(models.out, /^NAME\s+DESCRIPTION/m);
  assert.match(models.out, /^credit-risk\s/m);
  const versions = eml("versions", "credit-risk");
  assert.equal(versions.code, 0, versions.err);
  assert.match(versions.out, /^1\.0\.0\s+registered\s+binary_classification\s+production\s+champion\s+0\.8275/m);
  assert.match(versions.out, /^1\.1\.0\s+.*challenger/m);
  assert.match(eml("aliases", "credit-risk").out, /^champion\s+1\.0\.0$/m);
});

test("promote moves an alias; an API error is shown as stated, with a non-zero exit", () => {
  const moved = eml("promote", "credit-risk", "1.1.0", "--alias", "staging", "--reason", "cli test");
  assert.equal(moved.code, 0, moved.err);
  assert.match(eml("aliases", "credit-risk").out, /^staging\s+1\.1\.0$/m);
  const missing = eml("promote", "credit-risk", "9.9.9", "--alias", "staging");
  assert.equal(missing.code, 1);
  assert.match(missing.err, /^HTTP 404 not_found: .*9\.9\.9/m);
  const bad = eml("deployments", "create", "--body", '{"model":"credit-risk","strategy":"canary"}');
  assert.equal(bad.code, 1);
  assert.match(bad.err, /^HTTP 422 invalid_input/m);
  assert.match(bad.err, /^\s+version: /m);
});

test("deployments: create, status with the canary step, list, abort", () => {
  const created = eml("deployments", "create", "--body", '{"model":"credit-risk","strategy":"canary","version":"1.1.0","steps":[5,50,100]}', "--json");
  assert.equal(created.code, 0, created.err);
  const id = JSON.parse(created.out).deployment.id as string;
  const status = eml("deployments", "status", id);
  assert.equal(status.code, 0, status.err);
  assert.match(status.out, /validating/);
  assert.match(status.out, /canary step 1\/3 \(steps 5 -> 50 -> 100\)/);
  assert.match(eml("deployments", "list", "--model", "credit-risk").out, new RegExp(`^${id}\\s+credit-risk\\s+canary\\s+validating`, "m"));
  const aborted = eml("deployments", "abort", id, "--reason", "cli test");
  assert.equal(aborted.code, 0, aborted.err);
  assert.match(aborted.out, /aborted|failed|rolled_back|completed/);
  assert.match(eml("deployments", "history", id).out, /admin\s+abort/);
});

test("monitoring summary after a prediction; usage errors exit 2 or 1 with a message", async () => {
  const init = {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ features: { Seniority: 9, Home: "rent", Time: 60, Age: 30, Marital: "married", Records: "no", Job: "freelance", Expenses: 73, Income: 129, Assets: 0, Debt: 0, Amount: 800, Price: 846 } }),
  };
  // The local proxy may have closed the connection registerDemoModels kept alive: ask again once.
  const res = await fetch(`${server.url}/v1/models/credit-risk/predict`, init).catch(() => fetch(`${server.url}/v1/models/credit-risk/predict`, init));
  assert.equal(res.status, 200);
  const summary = eml("monitoring", "summary", "credit-risk", "--window", "5m");
  assert.equal(summary.code, 0, summary.err);
  assert.match(summary.out, /credit-risk summary \(window 5m\)/);
  assert.equal(eml("nonsense").code, 2);
  const usage = eml("versions");
  assert.equal(usage.code, 1);
  assert.match(usage.err, /usage: eml versions MODEL/);
});

test("versions archive and restore a version; restoring one that is not archived is the API's 409, exit 1", async () => {
  const manifest = JSON.parse(readFileSync(path.join(ROOT, "models/credit-risk-gbt.manifest.json"), "utf8"));
  const form = new FormData();
  form.set("manifest", JSON.stringify({ ...manifest, version: "1.2.0" }));
  form.set("artifact", new Blob([readFileSync(path.join(ROOT, "models/credit-risk-gbt.onnx"))]), "model.onnx");
  const post = () => fetch(`${server.url}/admin/models/credit-risk/versions`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: form });
  const res = await post().catch(post);
  assert.equal(res.status, 201, await res.text());

  const archived = eml("versions", "archive", "credit-risk", "1.2.0", "--reason", "cli test");
  assert.equal(archived.code, 0, archived.err);
  assert.match(archived.out, /^credit-risk@1\.2\.0: archived$/m);
  assert.match(eml("versions", "credit-risk").out, /^1\.2\.0\s+archived\s/m);
  const restored = eml("versions", "restore", "credit-risk", "1.2.0", "--reason", "archived by mistake");
  assert.equal(restored.code, 0, restored.err);
  assert.match(restored.out, /^credit-risk@1\.2\.0: registered$/m);
  assert.match(eml("versions", "credit-risk").out, /^1\.2\.0\s+registered\s/m);
  const again = eml("versions", "restore", "credit-risk", "1.2.0");
  assert.equal(again.code, 1);
  assert.match(again.err, /^HTTP 409 conflict: version 1\.2\.0 of 'credit-risk' is not archived/m);
  // Restore under an alias: the alias points at it afterwards.
  assert.equal(eml("versions", "archive", "credit-risk", "1.2.0").code, 0);
  const asAlias = eml("versions", "restore", "credit-risk", "1.2.0", "--alias", "rollback");
  assert.equal(asAlias.code, 0, asAlias.err);
  assert.match(asAlias.out, /^credit-risk@1\.2\.0: registered \(alias rollback\)$/m);
  assert.match(eml("aliases", "credit-risk").out, /^rollback\s+1\.2\.0$/m);
});
