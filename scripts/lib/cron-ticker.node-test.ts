/** The local cron ticker's matcher and config reading (node --test, from `npm test`). */
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { configuredCrons, cronMatches } from "./cron-ticker.ts";

const at = (iso: string) => new Date(iso);

test("cronMatches: every minute, daily 06:00 UTC, lists, ranges, steps, day fields", () => {
  assert.equal(cronMatches("* * * * *", at("2026-12-01T15:47:00Z")), true);
  assert.equal(cronMatches("0 6 * * *", at("2026-12-01T06:00:00Z")), true);
  assert.equal(cronMatches("0 6 * * *", at("2026-12-01T06:01:00Z")), false);
  assert.equal(cronMatches("0 6 * * *", at("2026-12-01T07:00:00Z")), false);
  assert.equal(cronMatches("*/15 * * * *", at("2026-12-01T10:45:00Z")), true);
  assert.equal(cronMatches("*/15 * * * *", at("2026-12-01T10:46:00Z")), false);
  assert.equal(cronMatches("5,10-12 * * * *", at("2026-12-01T10:11:00Z")), true);
  assert.equal(cronMatches("5,10-12 * * * *", at("2026-12-01T10:13:00Z")), false);
  assert.equal(cronMatches("0 0 * * 0", at("2026-11-29T00:00:00Z")), true); // a Sunday
  assert.equal(cronMatches("0 0 * * 7", at("2026-11-29T00:00:00Z")), true);
  assert.equal(cronMatches("0 0 * * 1", at("2026-11-29T00:00:00Z")), false);
  assert.equal(cronMatches("0 0 1 * 1", at("2026-11-30T00:00:00Z")), true); // Monday: either day field
  assert.throws(() => cronMatches("* * *", new Date()), /5 fields/);
});

test("configuredCrons reads wrangler.toml's [triggers]", () => {
  const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
  assert.deepEqual(configuredCrons(root), ["* * * * *", "0 6 * * *"]);
});
