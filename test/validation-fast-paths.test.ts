/**
 * The plain-JavaScript fast paths in front of zod must never change an answer.
 * - Row validation (src/inference/features.ts): for thousands of generated rows, valid and broken in
 *   every way a field can be, resolving with the fast path gives exactly what zod alone gives (the
 *   same resolved values, or the same error with the same field issues).
 * - The /v1 predict body (src/serving/v1.ts `quickPredictBody`): whatever it accepts, `predictBody`
 *   accepts with the same result; it takes the common bodies; the rest it leaves to zod.
 */
import { describe, expect, it } from "vitest";
import { ApiError } from "../src/http/errors";
import { rowValidator, type Resolved } from "../src/inference/features";
import { predictBody, quickPredictBody } from "../src/serving/v1";
import type { FeatureSchema } from "../src/registry/manifest";
import { mulberry32 } from "../src/stats/random";
import { repoJson } from "./support/files";

type Outcome = { columns: string[][]; missing: number[][] } | { error: string; details: unknown };

function outcome(run: () => Resolved): Outcome {
  try {
    const r = run();
    // NaN !== NaN: compare resolved values through a representation that keeps NaN and -0 apart.
    // A row the fast path gave up on may leave a missing mask of zeros where zod alone has none.
    return {
      columns: r.columns.map((c) => Array.from(c, (v) => (Object.is(v, -0) ? "-0" : String(v)))),
      missing: r.missing.map((m) => Array.from(m ?? new Uint8Array(r.n))),
    };
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    return { error: error.message, details: error.details };
  }
}

const WEIRD: unknown[] = [null, undefined, NaN, Infinity, -Infinity, -0, 0, 1.5, -1, 1e308, 3.5e38, 2 ** 53, "", "x", "rent", "1", true, false, [], {}, [1], { a: 1 }];

function valueFor(f: FeatureSchema["features"][number], rand: () => number): unknown {
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
  const r = rand();
  if (r < 0.25) return pick(WEIRD);
  if (r < 0.35) return undefined; // absent
  switch (f.type) {
    case "categorical":
      return rand() < 0.9 ? pick(f.categories) : pick(["RENT", "unknown", " rent"]);
    case "boolean":
      return rand() < 0.5;
    default: {
      const lo = f.min ?? -1000;
      const hi = f.max ?? 1000;
      const edge = pick([lo, hi, lo - 1, hi + 1, lo - 0.5, hi + 0.5]);
      const inside = lo + rand() * (hi - lo);
      const v = rand() < 0.2 ? edge : inside;
      return f.type === "integer" && rand() < 0.8 ? Math.round(v) : v;
    }
  }
}

/** A value the schema accepts (absent where the missing policy allows it, now and then). */
function validFor(f: FeatureSchema["features"][number], rand: () => number): unknown {
  if (f.missing.policy !== "reject" && rand() < 0.1) return rand() < 0.5 ? null : undefined;
  switch (f.type) {
    case "categorical":
      return f.categories[Math.floor(rand() * f.categories.length)];
    case "boolean":
      return rand() < 0.5;
    default: {
      const lo = f.min ?? -1000;
      const hi = f.max ?? 1000;
      const v = lo + rand() * (hi - lo);
      return f.type === "integer" ? Math.round(v) : v;
    }
  }
}

describe("row validation fast path", () => {
  it("resolves every generated row exactly as zod alone does", async () => {
    for (const stem of ["credit-risk-gbt", "credit-risk-lr"]) {
      const schema = (await repoJson(`models/${stem}.manifest.json`)).featureSchema as FeatureSchema;
      const validator = rowValidator(schema);
      const rand = mulberry32(stem.length * 7919);
      let accepted = 0;
      for (let n = 0; n < 3000; n++) {
        const row: Record<string, unknown> = {};
        // Half the rows valid, half with one broken field, so both outcomes are common.
        const broken = rand() < 0.5 ? Math.floor(rand() * schema.features.length) : -1;
        for (const [j, f] of schema.features.entries()) {
          const v = j === broken ? valueFor(f, rand) : validFor(f, rand);
          if (v !== undefined) row[f.name] = v;
        }
        if (rand() < 0.05) row.Extra = 1;
        const input: unknown = rand() < 0.02 ? [row] : rand() < 0.01 ? null : row;
        const rows = rand() < 0.3 ? [input, { ...row }] : [input];
        const fast = outcome(() => validator.resolve(rows, (i) => `instances[${i}]`));
        const zod = outcome(() => validator.resolve(rows, (i) => `instances[${i}]`, { zodOnly: true }));
        expect(fast).toEqual(zod);
        if ("columns" in fast) accepted++;
      }
      // Both kinds of outcome were exercised.
      expect(accepted).toBeGreaterThan(1000);
      expect(accepted).toBeLessThan(2900);
    }
  });

  it("treats objects with a foreign prototype, and inherited keys, as zod does", async () => {
    const schema = (await repoJson("models/credit-risk-gbt.manifest.json")).featureSchema as FeatureSchema;
    const validator = rowValidator(schema);
    const row = { Seniority: 9, Home: "rent", Time: 60, Age: 30, Marital: "married", Records: "no", Job: "freelance", Expenses: 73, Income: 129, Assets: 0, Debt: 0, Amount: 800, Price: 846 };
    const inherited = Object.create(row);
    const withNullProto = Object.assign(Object.create(null), row);
    for (const input of [inherited, withNullProto, new Map(Object.entries(row))]) {
      expect(outcome(() => validator.resolve([input], () => "features"))).toEqual(outcome(() => validator.resolve([input], () => "features", { zodOnly: true })));
    }
  });
});

/** One row of the columns back as schema-ordered values (level indexes as their category or boolean; -1 as NaN). */
function rowOf(schema: FeatureSchema, resolved: Resolved, i: number): unknown[] {
  return schema.features.map((f, j) => {
    const x = resolved.columns[j][i];
    if (f.type !== "categorical" && f.type !== "boolean") return x;
    if (x < 0) return Number.NaN;
    return f.type === "boolean" ? x === 1 : f.categories[x];
  });
}

describe("resolved columns", () => {
  const schema = {
    features: [
      { name: "x", type: "numeric", missing: { policy: "impute", value: 2.5 } },
      { name: "y", type: "numeric", missing: { policy: "nan" } },
      { name: "c", type: "categorical", categories: ["a", "b", "a", "c"], missing: { policy: "impute", value: "c" } },
      { name: "d", type: "categorical", categories: ["u", "v"], missing: { policy: "nan" } },
      { name: "flag", type: "boolean", missing: { policy: "impute", value: true } },
    ],
    input: { kind: "per_feature", tensors: [] },
    output: { kind: "regressor", value: "v" },
  } as unknown as FeatureSchema;
  const rows = [
    { x: 1, y: 2, c: "b", d: "v", flag: false },
    { y: null, c: "a", flag: true },
    { x: -0, c: null, d: "u" },
    { x: 2.5, y: -3, c: "c", d: "v", flag: null },
  ];

  it("hold each value, the policy's fill where a row left it out, and which rows did (fast path and zod alike)", () => {
    for (const zodOnly of [false, true]) {
      const r = rowValidator(schema).resolve(rows, (i) => `instances[${i}]`, { zodOnly });
      expect(r.n).toBe(4);
      expect(Array.from(r.columns[0])).toEqual([1, 2.5, -0, 2.5]);
      expect(Object.is(r.columns[0][2], -0)).toBe(true);
      expect(Array.from(r.columns[1])).toEqual([2, Number.NaN, Number.NaN, -3]);
      // A repeated category's index is its first position: "a" is 0 wherever it is listed.
      expect(Array.from(r.columns[2])).toEqual([1, 0, 3, 3]);
      expect(Array.from(r.columns[3])).toEqual([1, -1, 0, 1]);
      expect(Array.from(r.columns[4])).toEqual([0, 1, 1, 1]);
      // Missing: absent or null, even where the fill equals a value other rows send (x = 2.5, c = "c").
      expect(r.missing.map((m) => Array.from(m ?? new Uint8Array(4)))).toEqual([
        [0, 1, 0, 0],
        [0, 1, 1, 0],
        [0, 0, 1, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 1],
      ]);
      expect(rowOf(schema, r, 1)).toEqual([2.5, Number.NaN, "a", Number.NaN, true]);
      expect(rowOf(schema, r, 2)).toEqual([-0, Number.NaN, "c", "u", true]);
    }
  });
});

describe("predict body fast path", () => {
  const ROW = { Seniority: 9, Home: "rent", Time: 60, Age: 30 };
  it("takes the common bodies and returns what predictBody returns", () => {
    for (const body of [{ features: ROW }, { features: ROW, version: "1.1.0" }, { instances: [ROW, ROW], alias: "champion" }, { instances: [1, "x", null] }, { features: {} }]) {
      const quick = quickPredictBody(body);
      expect(quick).toBeDefined();
      expect(quick).toEqual(predictBody.parse(body));
    }
  });

  it("accepts nothing predictBody rejects, and agrees on everything it accepts", () => {
    const rand = mulberry32(42);
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
    const parts: Record<string, unknown[]> = {
      features: [undefined, ROW, {}, null, [], [ROW], "x", 1, JSON.parse('{"__proto__": 1, "Age": 3}'), Object.create(ROW)],
      instances: [undefined, [ROW], [], null, ROW, "x", [null]],
      version: [undefined, undefined, undefined, "1.1.0", "1.1.0", "1.1", "01.1.0", 1, null, ""],
      alias: [undefined, undefined, undefined, undefined, "champion", "Champion", "", 7, null, "a".repeat(40)],
      unit: [...Array(8).fill(undefined), "u1", ""],
      entity_id: [...Array(9).fill(undefined), "e1"],
      extra: [...Array(9).fill(undefined), 1],
    };
    let taken = 0;
    for (let n = 0; n < 20000; n++) {
      const body: Record<string, unknown> = {};
      for (const [key, values] of Object.entries(parts)) {
        const v = pick(values);
        if (v !== undefined) body[key] = v;
      }
      const raw = rand() < 0.03 ? pick<unknown>([null, [body], "body", 3]) : body;
      const quick = quickPredictBody(raw);
      const zod = predictBody.safeParse(raw);
      if (quick !== undefined) {
        taken++;
        expect(zod.success).toBe(true);
        expect(quick).toEqual(zod.data);
      }
    }
    expect(taken).toBeGreaterThan(100);
  });
});
