/**
 * Done-means test of `eml register`: every demo model (models/) and fixture (test/fixtures/onnx/)
 * is registered (--dry-run) from its ONNX file and training CSV alone, and the manifest it infers
 * is compared with the one the repository holds.
 *
 * Two runs per model:
 *  1. Only what the files cannot say: name, version, environment (demo), the holdout (demo metrics
 *     are holdout metrics), the positive class where it is not the last class, and the one-hot
 *     category order of DENSE inputs (a dense float tensor carries no category names). The
 *     differences left are exactly the documented ones below, each a fact the repository's
 *     manifests set by hand rather than from the data:
 *       - `type`: "integer" for some dense-input features. The CLI never guesses integer from
 *         whole-number data (the fixtures' Income is whole-numbered yet numeric); it would make
 *         fractional live values fail;
 *       - `min`/`max`: the repo's bounds are hand-picked plausible ranges (Age 18..100); the CLI
 *         sets min 0 when no training value is negative and no max (a max learnt from the training
 *         range would reject larger live values);
 *     The linear fixtures' Income impute value 120 is hand-set too (the training median the CLI
 *     would take is 122, and it says so); since it changes the scores of the 40 rows missing
 *     Income, and with them the score reference and metrics, both runs pass --impute Income=120.
 *  2. The same plus --integer/--bounds for those hand-set facts: no difference at all.
 * Numbers compare within 2e-6 relative: the CLI scores through onnxruntime (float32 outputs), the
 * repository's references were computed by the float64 TypeScript reference scorer. For the same
 * reason a score lying on a decile edge within float32 precision may fall in the adjacent bin:
 * the score histogram's counts must have the same total and differ by at most one row moved.
 * The fixtures' synthetic rows take few distinct values (whole-number Age and Income, two
 * categoricals), so many rows tie on score; float32 leaf sums and sigmoids split or merge ties
 * that float64 keeps, which moves rank metrics (AUC, Gini: by up to 0.0045 here; accuracy at the
 * 0.5 threshold) and moves whole tie groups between score deciles. For the fixtures the test
 * therefore holds metrics within 0.01 and score counts to the same total; the demo models, on
 * real data, match to 2e-6 with at most one row moved.
 * (*.node-test.ts: run by `node --test` from `npm test`, not by vitest, which runs *.test.ts in workerd.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { registerOptions, type RegisterFlags } from "../verbs/register.ts";
import { inferManifest } from "../register/infer.ts";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const rel = (p: string) => path.join(ROOT, p);

/** Paths where `actual` differs from `expected` (numbers within tolerance), sorted. */
function diff(actual: unknown, expected: unknown, tiesMove: boolean, at = ""): string[] {
  if (at === "reference.score.counts" && Array.isArray(actual) && Array.isArray(expected)) {
    const sum = (a: number[]) => a.reduce((s, v) => s + v, 0);
    const moved = actual.reduce((s: number, v: number, i: number) => s + Math.abs(v - expected[i]), 0);
    return actual.length === expected.length && sum(actual) === sum(expected) && (tiesMove || moved <= 2) ? [] : [at];
  }
  if (typeof actual === "number" && typeof expected === "number") {
    const tolerance = tiesMove && at.startsWith("metrics.") ? 0.01 : 2e-6 * Math.max(1, Math.abs(expected));
    return Math.abs(actual - expected) <= tolerance ? [] : [at];
  }
  if (actual === null || expected === null || typeof actual !== "object" || typeof expected !== "object") return actual === expected ? [] : [at];
  if (Array.isArray(actual) !== Array.isArray(expected)) return [at];
  const keys = new Set([...Object.keys(actual), ...Object.keys(expected)]);
  return [...keys].flatMap((k) => diff((actual as Record<string, unknown>)[k], (expected as Record<string, unknown>)[k], tiesMove, at ? `${at}.${k}` : k)).sort();
}

interface Case {
  onnx: string;
  manifest: string;
  flags: RegisterFlags;
  /** Paths expected to differ in run 1 (see the header), and the flags that remove them. */
  documented: string[];
  handSet: RegisterFlags;
}

const FEATURE = (i: number, key: string) => `featureSchema.features.${i}.${key}`;
const FIXTURE_DENSE_DIFFS = [FEATURE(0, "max"), FEATURE(0, "min"), FEATURE(0, "type"), FEATURE(1, "max")];
const FIXTURE_HAND_SET: RegisterFlags = { integer: ["Age"], bounds: ["Age=18:100", "Income=0:5000"] };

function fixture(name: string, extra: Partial<Case> = {}): Case {
  const dense = name !== "columnwise-pipeline";
  const lr = ["lr-gemm-sigmoid", "lr-matmul-softmax", "linear-classifier", "columnwise-pipeline"].includes(name);
  const documented = dense ? [...FIXTURE_DENSE_DIFFS] : [FEATURE(0, "max"), FEATURE(0, "min"), FEATURE(1, "max")];
  const handSet: RegisterFlags = { ...FIXTURE_HAND_SET, integer: dense ? ["Age"] : [] };

  return {
    onnx: `test/fixtures/onnx/${name}.onnx`,
    manifest: `test/fixtures/onnx/${name}.manifest.json`,
    flags: {
      data: rel(`test/fixtures/onnx/${name}.train.csv`),
      label: "label",
      name: `fixture-${name}`,
      version: "1.0.0",
      ...(dense ? { categories: ["Home=owner,rent,other"] } : {}),
      ...(lr ? { impute: ["Income=120"] } : {}),
    },
    documented: documented.sort(),
    handSet,
    ...extra,
  };
}

const DEMO_CATEGORIES = [
  "Home=rent,owner,priv,ignore,parents,other",
  "Marital=single,married,widow,separated,divorced",
  "Records=no,yes",
  "Job=fixed,partime,freelance,others",
];
// Demo features (FEATURES in scripts/train-demo.ts): 0 Seniority 2 Time 3 Age integer; numeric bounds hand-picked.
const DEMO_BOUNDS = ["Seniority=0:100", "Time=0:240", "Age=18:110", "Expenses=0:1000", "Income=0:5000", "Assets=0:1000000", "Debt=0:100000", "Amount=0:20000", "Price=0:50000"];
const DEMO_NUMERIC = [0, 2, 3, 7, 8, 9, 10, 11, 12];
function demo(stem: string, version: string, environment: string): Case {
  return {
    onnx: `models/${stem}.onnx`,
    manifest: `models/${stem}.manifest.json`,
    flags: {
      data: rel("models/credit-risk-train.csv"),
      holdout: rel("models/credit-risk-holdout.csv"),
      label: "bad",
      name: "credit-risk",
      version,
      environment,
      categories: DEMO_CATEGORIES,
    },
    documented: [
      ...[0, 2, 3].map((i) => FEATURE(i, "type")),
      ...DEMO_NUMERIC.map((i) => FEATURE(i, "max")),
      FEATURE(3, "min"),
    ].sort(),
    handSet: { integer: ["Seniority,Time,Age"], bounds: DEMO_BOUNDS },
  };
}

const CASES: Case[] = [
  demo("credit-risk-lr", "1.0.0", "production"),
  demo("credit-risk-gbt", "1.1.0", "staging"),
  fixture("lr-gemm-sigmoid"),
  fixture("lr-matmul-softmax"),
  fixture("linear-classifier"),
  fixture("tree-classifier-zipmap-int"),
  fixture("tree-classifier-zipmap-str", {}),
  fixture("tree-regressor"),
  fixture("columnwise-pipeline"),
];
CASES[6].flags["positive-class"] = "bad";

for (const c of CASES) {
  test(`register infers ${c.manifest} from ${path.basename(c.onnx)} + training CSV`, async () => {
    const expected = JSON.parse(readFileSync(rel(c.manifest), "utf8"));
    const first = await inferManifest(await registerOptions(rel(c.onnx), c.flags));
    const tiesMove = c.onnx.startsWith("test/fixtures/");
    assert.deepEqual(diff(first.manifest, expected, tiesMove), c.documented, "run 1: only the documented, hand-set differences");
    const second = await inferManifest(await registerOptions(rel(c.onnx), { ...c.flags, ...c.handSet }));
    assert.deepEqual(diff(second.manifest, expected, tiesMove), [], "run 2: with the hand-set facts as flags, the same manifest");
  });
}

test("register explains its guesses and refuses what it cannot infer", async () => {
  const { notes } = await inferManifest(
    await registerOptions(rel("test/fixtures/onnx/lr-gemm-sigmoid.onnx"), { data: rel("test/fixtures/onnx/lr-gemm-sigmoid.train.csv"), label: "label", name: "x", version: "1.0.0" }),
  );
  assert.ok(notes.some((n) => n.includes("Home: categorical") && n.includes("GUESSED") && n.includes("--categories Home=")));
  assert.ok(notes.some((n) => n.includes("metrics on the TRAINING data")));
  // A training file whose features do not make the model's input width: named, not guessed.
  await assert.rejects(
    registerOptions(rel("test/fixtures/onnx/lr-gemm-sigmoid.onnx"), { data: rel("test/fixtures/onnx/columnwise-pipeline.train.csv"), label: "label", name: "x", version: "1.0.0" }).then(inferManifest),
    /has 6 columns but the data's features make 5/,
  );
});
