/** wrangler.toml's generated [env.staging]/[env.production] sections are current (node --test, from `npm test`). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { envSection, topLevelTables } from "../deploy-setup.ts";

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
    for (const line of vars.lines) assert.ok(section.includes(line.trim()), `var missing from [env.${env}]: ${line}`);
    assert.match(section, new RegExp(`database_name = "edge-ml-registry-${env}"`));
  });
}
