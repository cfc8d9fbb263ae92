/** bench:stages' variants (node --test, from `npm test`): every patch still applies to the source it names. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "./dev-server.ts";
import { VARIANTS } from "./stage-variants.ts";

test("every bench:stages patch finds its text, exactly once, in the file it names", () => {
  assert.ok(VARIANTS.some((v) => v.name === "full" && !v.patches));
  for (const v of VARIANTS) {
    for (const p of v.patches ?? []) {
      const text = readFileSync(path.join(ROOT, p.file), "utf8");
      assert.equal(text.split(p.from).length - 1, 1, `variant ${v.name}: ${p.file} should contain ${JSON.stringify(p.from)} once`);
    }
  }
});

test("variant names are unique", () => {
  assert.equal(new Set(VARIANTS.map((v) => v.name)).size, VARIANTS.length);
});
