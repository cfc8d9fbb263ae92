/**
 * The features, batch and retraining verbs against a real local server (wrangler dev on fresh
 * state with its real local D1, KV, R2, Queues and Workflows; demo models registered as `npm start`
 * does), as operate.node-test.ts does for the day-to-day verbs: a feature defined, loaded from a
 * CSV with --wait (one row rejected) and read back; a CSV scored by `batch submit`, which follows
 * the job and downloads the result; a retraining configuration, trigger and manual job, with the
 * job's event history, its cancellation, and the API's 404 for a report that does not exist yet.
 * (*.node-test.ts: run by `node --test` from `npm test`, not by vitest.)
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { applyMigrations, registerDemoModels, ROOT, startDevServer, type DevServer } from "../../scripts/lib/dev-server.ts";

const TOKEN = "cli-capabilities-admin-token";
let server: DevServer;
let state: string;
let work: string;

function eml(...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(ROOT, "cli/main.ts"), ...args], {
    cwd: work,
    encoding: "utf8",
    env: { ...process.env, EML_URL: server.url, EML_ADMIN_TOKEN: TOKEN, EML_CONFIG: path.join(state, "none.json") },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

before(async () => {
  state = mkdtempSync(path.join(tmpdir(), "eml-cap-state-"));
  work = mkdtempSync(path.join(tmpdir(), "eml-cap-work-"));
  applyMigrations(state);
  server = await startDevServer({ port: Number(process.env.CLI_CAPABILITIES_TEST_PORT ?? 8810), persistTo: state, quiet: true, vars: { ADMIN_TOKEN: TOKEN, REQUEST_LOGS: "false" } });
  await registerDemoModels(server.url, TOKEN);
});
after(async () => {
  await server?.stop();
  rmSync(state, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

test("features: define, load --wait (a bad row rejected and listed), list, get; an unknown entity is the API's 404", () => {
  for (const body of ['{"group":"cust","name":"income","kind":"offline","dtype":"numeric"}', '{"group":"cust","name":"age","kind":"offline","dtype":"integer"}']) {
    const r = eml("features", "define", "--body", body);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^cust\.\w+ version 1 \(offline, \w+\) active$/m);
  }
  writeFileSync(path.join(work, "cust.csv"), "id,income,age\nc1,100,40\nc2,80,30\nc3,x,22\n");
  const load = eml("features", "load", "cust.csv", "--group", "cust", "--entity-column", "id", "--max-rejected", "5", "--wait");
  assert.equal(load.code, 0, load.err);
  assert.match(load.out, /succeeded: 100% of 41 B, 2 rows loaded, 1 rejected/);
  assert.match(load.out, /^4\s+'income': expected a number/m);
  assert.match(eml("features", "list", "--group", "cust").out, /^NAME\s+VERSION\s+KIND\s+DTYPE\s+STATUS[\s\S]*^income\s+1\s+offline\s+numeric\s+active/m);
  const got = eml("features", "get", "c1", "--group", "cust", "--features", "income,age");
  assert.equal(got.code, 0, got.err);
  assert.match(got.out, /^income\s+100\s+kv$/m);
  assert.match(got.out, /^age\s+40\s+kv$/m);
  const missing = eml("features", "get", "c3", "--group", "cust", "--features", "income");
  assert.equal(missing.code, 1);
  assert.match(missing.err, /^HTTP 404 not_found: no value for income of entity 'c3'/m);
});

test("batch submit uploads, follows the job and downloads the scored file; status and list show it", () => {
  const lines = readFileSync(path.join(ROOT, "models/credit-risk-holdout.csv"), "utf8").trim().split("\n").slice(0, 41);
  writeFileSync(path.join(work, "apps.csv"), lines.join("\n") + "\n");
  const r = eml("batch", "submit", "apps.csv", "--model", "credit-risk", "--alias", "challenger", "--out", "scored.csv");
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /^uploading (\S+ \S+) \/ \1  100%  .* done$/m); // the bar of cli/progress.ts (not a terminal: plain lines)
  assert.match(r.out, /^job (\S+) accepted: credit-risk@1\.1\.0/m);
  assert.match(r.out, /succeeded: 40 \/ 40 rows \(100\.0%\)/);
  const scored = readFileSync(path.join(work, "scored.csv"), "utf8").trim().split("\n");
  assert.equal(scored.length, 41);
  assert.match(scored[0], /prediction/);
  const id = /^job (\S+) accepted/m.exec(r.out)![1];
  assert.match(eml("batch", "status", id).out, /^state\s+succeeded$/m);
  assert.match(eml("batch", "list").out, new RegExp(`^${id}\\s+succeeded\\s+credit-risk@1\\.1\\.0\\s+40/40`, "m"));
  const bad = eml("batch", "submit", "apps.csv", "--model", "no-such-model");
  assert.equal(bad.code, 1);
  assert.match(bad.err, /^HTTP 404 not_found: .*no-such-model/m);
});

test("retraining: config, a trigger, a manual job with its event history, cancel; a missing report is the API's 404", () => {
  const config = JSON.stringify({ trainer_url: "http://127.0.0.1:9/train", trainer_secret: "cli-test-trainer-secret-0123456789", worker_url: server.url, sample_rate: 1, cooldown_minutes: 0 });
  const set = eml("retraining", "config", "credit-risk", "--body", config);
  assert.equal(set.code, 0, set.err);
  assert.match(set.out, /^trainer_secret\s+<redacted>$/m);
  const defined = eml("retraining", "triggers", "define", "credit-risk", "--body", '{"type":"drift","psi":0.3}');
  assert.equal(defined.code, 0, defined.err);
  assert.match(eml("retraining", "triggers", "list", "credit-risk").out, /^\S+\s+drift\s+yes\s+\{"psi":0\.3/m);
  const fired = eml("retraining", "triggers", "fire", "credit-risk", "--reason", "cli test");
  assert.equal(fired.code, 0, fired.err);
  const id = /^job\s+(\S+)$/m.exec(fired.out)![1];
  const status = eml("retraining", "jobs", "status", id);
  assert.match(status.out, /^reason\s+cli test$/m);
  assert.match(status.out, /^1\s+\S+\s+create\s+-\s+queued\s+/m);
  assert.match(eml("retraining", "jobs", "list", "credit-risk").out, new RegExp(`^${id}\\s+\\w+\\s+manual\\s+1\\.0\\.0`, "m"));
  const cancelled = eml("retraining", "jobs", "cancel", id, "--reason", "cli test over");
  assert.equal(cancelled.code, 0, cancelled.err);
  assert.match(cancelled.out, /^state\s+cancelled \(finished\)$/m);
  const report = eml("retraining", "report", id);
  assert.equal(report.code, 1);
  assert.match(report.err, /^HTTP 404 not_found: .*no comparison report yet/m);
});
