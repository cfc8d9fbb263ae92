/** wrangler.toml's generated [env.staging]/[env.production] sections are current (node --test, from `npm test`). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { envSection, topLevelTables } from "../deploy-setup.ts";
import { queueBaseName } from "../../src/http/queues.ts";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const toml = readFileSync(path.join(ROOT, "wrangler.toml"), "utf8");

for (const env of ["staging", "production"]) {
  test(`[env.${env}] repeats every binding table and var of the top level (npm run deploy:setup -- --env ${env} --config-only)`, () => {
    const ids: Record<string, string> = {};
    const section = envSection(toml, env, ids);
    // Ids are per account: compare with the placeholders replaced by what the file holds.
    const normalise = (s: string) => s.replace(/(database_id|id) = "[^"]*"/g, '$1 = "…"');
    assert.ok(normalise(toml).includes(normalise(section)), `wrangler.toml's [env.${env}] is stale: run npm run deploy:setup -- --env ${env} --config-only`);
    const vars = topLevelTables(toml).find((t) => t.name === "vars")!;
    for (const line of vars.lines.filter((l) => !l.includes("QUEUE_SUFFIX"))) assert.ok(section.includes(line.trim()), `var missing from [env.${env}]: ${line}`);
    // Every queue of the environment is a top-level queue plus QUEUE_SUFFIX, which the worker strips
    // to choose a consumer (src/http/queues.ts): otherwise its batches would reach no consumer.
    assert.match(section, new RegExp(`QUEUE_SUFFIX = "-${env}"`));
    const topQueues = new Set([...toml.split("# >>>")[0].matchAll(/^\s*(?:queue|dead_letter_queue) = "([^"]+)"/gm)].map((m) => m[1]));
    const envQueues = [...section.matchAll(/^\s*(?:queue|dead_letter_queue) = "([^"]+)"/gm)].map((m) => m[1]);
    assert.ok(envQueues.length >= topQueues.size);
    for (const q of envQueues) assert.ok(topQueues.has(queueBaseName(q, { QUEUE_SUFFIX: `-${env}` })), `[env.${env}] queue ${q} is not a top-level queue plus -${env}`);
    assert.match(section, new RegExp(`database_name = "edge-ml-registry-${env}"`));
  });
}
