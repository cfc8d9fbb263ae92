/**
 * Generates the small ONNX test fixtures in test/fixtures/onnx/ — one model per variety the
 * runtime has to handle — each with:
 *   <name>.onnx            the model (written with scripts/onnx/builder.ts)
 *   <name>.manifest.json   a register-API manifest (same format as models/*.manifest.json)
 *   <name>.expected.json   a few raw input rows, the exact tensors fed to the model, and the
 *                          expected outputs computed by the plain-TS reference below
 *   <name>.train.csv       the 400 synthetic rows the manifest's reference and metrics come from,
 *                          with their drawn labels (column `label`): what `npm run cli -- register`
 *                          infers the manifest from (cli/test/register.test.ts)
 *
 * Varieties: lr-gemm-sigmoid, lr-matmul-softmax (3 classes), linear-classifier (ai.onnx.ml),
 * tree-classifier-zipmap-int, tree-classifier-zipmap-str, tree-regressor, columnwise-pipeline.
 *
 * Parameters are hand-set (no training); the manifest's reference block and metrics come from
 * 400 synthetic rows (seeded PRNG) with labels drawn from the model's own probabilities.
 * Deterministic: re-running produces identical files.
 *
 * Run: npm run fixtures   (then npm run verify:models checks every fixture in onnxruntime-web)
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  binaryLinearClassifierSpec,
  columnwiseLinearGraph,
  encodeModel,
  linearClassifierGraph,
  logisticGemmGraph,
  softmaxRegressionGraph,
  treeClassifierGraph,
  treeRegressorGraph,
  withZipMap,
} from "./onnx/builder.ts";
import type { GraphSpec, Tree } from "./onnx/builder.ts";
import { encodeDense, linearScore, resolveValue, sigmoid, softmax, treeRawScore } from "./lib/predict-reference.ts";
import type { DenseColumn, FeatureSpec, RawRow } from "./lib/predict-reference.ts";
import { categoricalReference, numericReference, scoreReference } from "./lib/manifest.ts";
import type { InputSpec, Manifest, OutputSpec } from "./lib/manifest.ts";
import { binaryMetrics } from "../src/stats/classification.ts";
import { gaussian, mulberry32 } from "./lib/prng.ts";
import { formatJson } from "./lib/json.ts";
import { formatCsv } from "./lib/csv.ts";

const OUT = join(dirname(fileURLToPath(import.meta.url)), "..", "test", "fixtures", "onnx");

// ---------------------------------------------------------------------------------------------
// Shared tiny feature set
// ---------------------------------------------------------------------------------------------
const HOME = ["owner", "rent", "other"];
const F_AGE: FeatureSpec = { name: "Age", type: "integer", min: 18, max: 100, missing: { policy: "reject" } };
const F_INCOME_IMPUTE: FeatureSpec = { name: "Income", type: "numeric", min: 0, max: 5000, missing: { policy: "impute", value: 120 } };
const F_INCOME_NAN: FeatureSpec = { name: "Income", type: "numeric", min: 0, max: 5000, missing: { policy: "nan" } };
const F_HOME: FeatureSpec = { name: "Home", type: "categorical", categories: HOME, missing: { policy: "impute", value: "owner" } };
const F_RECORDS: FeatureSpec = { name: "Records", type: "boolean", missing: { policy: "reject" } };

const DENSE_COLUMNS: DenseColumn[] = [
  { feature: "Age" },
  { feature: "Income" },
  ...HOME.map((c) => ({ feature: "Home", oneHot: c })),
  { feature: "Records" },
];
const DENSE: InputSpec = { kind: "dense", name: "float_input", dtype: "float32", columns: DENSE_COLUMNS };

/** Synthetic raw rows: Income missing ~10%, Home missing ~3%. */
function syntheticRows(n: number, seed: number): RawRow[] {
  const rand = mulberry32(seed);
  const rows: RawRow[] = [];
  for (let i = 0; i < n; i++) {
    const row: RawRow = { Age: 18 + Math.floor(rand() * 53) };
    if (rand() > 0.1) row.Income = Math.max(10, Math.round(Math.exp(4.8 + 0.5 * gaussian(rand))));
    const u = rand();
    if (u > 0.03) row.Home = u < 0.5 ? "owner" : u < 0.85 ? "rent" : "other";
    row.Records = rand() < 0.2;
    rows.push(row);
  }
  return rows;
}

/** Hand-picked rows exercising missing values and every category. */
const PROBE_ROWS: RawRow[] = [
  { Age: 25, Income: 80, Home: "rent", Records: true },
  { Age: 47, Income: 230, Home: "owner", Records: false },
  { Age: 33, Home: "other", Records: false }, // Income missing
  { Age: 61, Income: 95.5, Records: true }, // Home missing
  { Age: 19, Income: 1500, Home: "rent", Records: false },
  { Age: 70, Income: 42, Home: "owner", Records: true },
  { Age: 30, Income: 100.5, Home: "rent", Records: false }, // exactly on tree thresholds (x <= t goes left)
];

// ---------------------------------------------------------------------------------------------
// Fixture definitions
// ---------------------------------------------------------------------------------------------
type TensorDType = "float32" | "int64" | "string";
interface FeedTensor {
  dtype: TensorDType;
  dims: number[];
  data: (number | string)[];
}
interface Prediction {
  probabilities?: number[];
  label?: number | string;
  value?: number;
}
interface Fixture {
  name: string;
  description: string;
  task: Manifest["task"];
  features: FeatureSpec[];
  input: InputSpec;
  output: OutputSpec;
  graph: GraphSpec;
  predict: (row: RawRow) => Prediction;
}

const LR_W = [-0.035, -0.006, -0.6, 0.35, 0.2, 0.9];
const LR_B = 1.2;

function binaryPred(p1: number): Prediction {
  return { probabilities: [1 - p1, p1], label: p1 > 0.5 ? 1 : 0 };
}

const lrGemm: Fixture = {
  name: "lr-gemm-sigmoid",
  description: "Binary logistic regression as Gemm + Sigmoid; probabilities = Concat(1-p, p), label = ArgMax.",
  task: "binary_classification",
  features: [F_AGE, F_INCOME_IMPUTE, F_HOME, F_RECORDS],
  input: DENSE,
  output: { kind: "classifier", probabilities: "probabilities", label: "label", classes: [0, 1], positiveClass: 1 },
  graph: logisticGemmGraph({ weights: LR_W, intercept: LR_B }),
  predict: (row) => binaryPred(sigmoid(linearScore(LR_W, LR_B, encodeDense(lrGemm.features, DENSE_COLUMNS, row)))),
};

// 3-class softmax regression, W is [F=6, C=3]
const SM_W = [
  [0.0, -0.02, 0.03],
  [0.004, 0.0, -0.004],
  [0.5, 0.0, -0.5],
  [-0.3, 0.2, 0.1],
  [0.0, -0.4, 0.4],
  [-0.2, 0.1, 0.6],
];
const SM_B = [0.1, 0.4, -1.3];
const lrSoftmax: Fixture = {
  name: "lr-matmul-softmax",
  description: "3-class softmax regression as MatMul + Add + Softmax; label = ArgMax (int64 class index).",
  task: "multiclass_classification",
  features: [F_AGE, F_INCOME_IMPUTE, F_HOME, F_RECORDS],
  input: DENSE,
  output: { kind: "classifier", probabilities: "probabilities", label: "label", classes: [0, 1, 2], positiveClass: 2 },
  graph: softmaxRegressionGraph({ weights: SM_W, intercepts: SM_B }),
  predict: (row) => {
    const x = encodeDense(lrSoftmax.features, DENSE_COLUMNS, row);
    const z = SM_B.map((b, c) => linearScore(SM_W.map((r) => r[c]), b, x));
    const p = softmax(z);
    return { probabilities: p, label: p.indexOf(Math.max(...p)) };
  },
};

const LC_W = [-0.02, -0.004, -0.4, 0.5, 0.1, 1.1];
const LC_B = 0.3;
const linearClassifier: Fixture = {
  name: "linear-classifier",
  description: "ai.onnx.ml LinearClassifier (binary, coefficients [-w, w], post_transform LOGISTIC), int64 labels [0, 1].",
  task: "binary_classification",
  features: [F_AGE, F_INCOME_IMPUTE, F_HOME, F_RECORDS],
  input: DENSE,
  output: { kind: "classifier", probabilities: "probabilities", label: "label", classes: [0, 1], positiveClass: 1 },
  graph: linearClassifierGraph(binaryLinearClassifierSpec(LC_W, LC_B, { int64: [0, 1] })),
  predict: (row) => binaryPred(sigmoid(linearScore(LC_W, LC_B, encodeDense(linearClassifier.features, DENSE_COLUMNS, row)))),
};

// Trees over DENSE_COLUMNS: 0 Age, 1 Income, 2 owner, 3 rent, 4 other, 5 Records
const TREES: Tree[] = [
  {
    nodes: [
      { feature: 1, threshold: 100.5, left: 1, right: 4, missingGoesLeft: true },
      { feature: 5, threshold: 0.5, left: 2, right: 3 },
      { leaf: 0.15 },
      { leaf: 0.6 },
      { feature: 0, threshold: 30.5, left: 5, right: 6 },
      { leaf: -0.1 },
      { leaf: -0.45 },
    ],
  },
  {
    nodes: [
      { feature: 2, threshold: 0.5, left: 1, right: 2 },
      { feature: 1, threshold: 60.25, left: 3, right: 4, missingGoesLeft: false },
      { leaf: -0.3 },
      { leaf: 0.5 },
      { leaf: 0.05 },
    ],
  },
  { nodes: [{ feature: 0, threshold: 55.5, left: 1, right: 2 }, { leaf: 0.02 }, { leaf: -0.25 }] },
];
const TREE_BASE = -0.8;
const TREE_FEATURES = [F_AGE, F_INCOME_NAN, F_HOME, F_RECORDS];
const treeScore = (row: RawRow) => treeRawScore(TREES, TREE_BASE, encodeDense(TREE_FEATURES, DENSE_COLUMNS, row));

const treeZipInt: Fixture = {
  name: "tree-classifier-zipmap-int",
  description:
    "ai.onnx.ml TreeEnsembleClassifier (3 trees, LOGISTIC, NaN Income with learned direction) + ZipMap, int64 labels [0, 1]; sklearn-onnx output layout.",
  task: "binary_classification",
  features: TREE_FEATURES,
  input: DENSE,
  output: { kind: "classifier", probabilities: "output_probability", label: "output_label", classes: [0, 1], positiveClass: 1 },
  graph: withZipMap(treeClassifierGraph({ trees: TREES, classes: { int64: [0, 1] }, baseScore: TREE_BASE }, 6), { int64: [0, 1] }),
  predict: (row) => binaryPred(sigmoid(treeScore(row))),
};

// String labels in sklearn's sorted order; the raw score is the log-odds of the SECOND label ("good").
const treeZipStr: Fixture = {
  name: "tree-classifier-zipmap-str",
  description:
    'ai.onnx.ml TreeEnsembleClassifier + ZipMap with string labels ["bad", "good"]; raw score = log-odds of "good", positive class "bad" (probability column 0).',
  task: "binary_classification",
  features: TREE_FEATURES,
  input: DENSE,
  output: { kind: "classifier", probabilities: "output_probability", label: "output_label", classes: ["bad", "good"], positiveClass: "bad" },
  graph: withZipMap(treeClassifierGraph({ trees: TREES, classes: { strings: ["bad", "good"] }, baseScore: TREE_BASE }, 6), {
    strings: ["bad", "good"],
  }),
  predict: (row) => {
    const pGood = sigmoid(treeScore(row));
    return { probabilities: [1 - pGood, pGood], label: pGood > 0.5 ? "good" : "bad" };
  },
};

const REG_BASE = 100;
const REG_TREES: Tree[] = TREES.map((t) => ({ nodes: t.nodes.map((n) => (n.leaf === undefined ? n : { leaf: n.leaf * 40 })) }));
const treeRegressor: Fixture = {
  name: "tree-regressor",
  description: "ai.onnx.ml TreeEnsembleRegressor (3 trees, SUM, base 100), output 'variable' [N,1].",
  task: "regression",
  features: TREE_FEATURES,
  input: DENSE,
  output: { kind: "regressor", value: "variable" },
  graph: treeRegressorGraph({ trees: REG_TREES, baseValue: REG_BASE }, 6),
  predict: (row) => ({ value: treeRawScore(REG_TREES, REG_BASE, encodeDense(TREE_FEATURES, DENSE_COLUMNS, row)) }),
};

// Column-wise: Age int64 -> Cast, Income float32, Home string -> OneHotEncoder; dense order Age, Income, owner, rent, other
const CW_W = [-0.03, -0.005, -0.7, 0.4, 0.25];
const CW_B = 1.0;
const CW_FEATURES = [F_AGE, F_INCOME_IMPUTE, F_HOME];
const columnwise: Fixture = {
  name: "columnwise-pipeline",
  description:
    "Column-wise pipeline: inputs Age int64 [N,1] (Cast), Income float32 [N,1], Home string [N,1] (ai.onnx.ml OneHotEncoder + Flatten) -> Concat -> LinearClassifier (LOGISTIC), int64 labels.",
  task: "binary_classification",
  features: CW_FEATURES,
  input: {
    kind: "per_feature",
    tensors: [
      { feature: "Age", name: "Age", dtype: "int64" },
      { feature: "Income", name: "Income", dtype: "float32" },
      { feature: "Home", name: "Home", dtype: "string" },
    ],
  },
  output: { kind: "classifier", probabilities: "probabilities", label: "label", classes: [0, 1], positiveClass: 1 },
  graph: columnwiseLinearGraph(
    [
      { name: "Age", dtype: "int64" },
      { name: "Income", dtype: "float32" },
      { name: "Home", dtype: "string", categories: HOME },
    ],
    binaryLinearClassifierSpec(CW_W, CW_B, { int64: [0, 1] }),
  ),
  predict: (row) =>
    binaryPred(sigmoid(linearScore(CW_W, CW_B, encodeDense(CW_FEATURES, [{ feature: "Age" }, { feature: "Income" }, ...HOME.map((c) => ({ feature: "Home", oneHot: c }))], row)))),
};

export const FIXTURES: Fixture[] = [lrGemm, lrSoftmax, linearClassifier, treeZipInt, treeZipStr, treeRegressor, columnwise];

// ---------------------------------------------------------------------------------------------
// Feeds (the exact tensors a runtime should build from the manifest), manifests, expected outputs
// ---------------------------------------------------------------------------------------------

/** Build the input tensors for a batch of raw rows following the manifest (JSON-friendly; NaN as null). */
export function buildFeeds(features: FeatureSpec[], input: InputSpec, rows: RawRow[]): Record<string, FeedTensor> {
  if (input.kind === "dense") {
    const data = rows.flatMap((r) => encodeDense(features, input.columns, r));
    return { [input.name]: { dtype: "float32", dims: [rows.length, input.columns.length], data } };
  }
  const byName = new Map(features.map((f) => [f.name, f]));
  const feeds: Record<string, FeedTensor> = {};
  for (const t of input.tensors) {
    const spec = byName.get(t.feature)!;
    const vals = rows.map((r) => resolveValue(spec, r));
    feeds[t.name] = {
      dtype: t.dtype,
      dims: [rows.length, 1],
      data: vals.map((v) => (t.dtype === "string" ? String(v) : t.dtype === "int64" ? Math.trunc(Number(v)) : Math.fround(Number(v)))),
    };
  }
  return feeds;
}

function scoreOf(f: Fixture, p: Prediction): number {
  if (f.output.kind === "regressor") return p.value!;
  return p.probabilities![f.output.classes.indexOf(f.output.positiveClass!)];
}

function manifestFor(f: Fixture, rows: RawRow[]): { manifest: Manifest; labels: number[] } {
  const preds = rows.map((r) => f.predict(r));
  const scores = preds.map((p) => scoreOf(f, p));
  const rand = mulberry32(7);
  let metrics: Record<string, number>;
  let labels: number[];
  if (f.output.kind === "regressor") {
    const ys = preds.map((p) => p.value! + 15 * gaussian(rand));
    labels = ys;
    const err = ys.map((y, i) => y - preds[i].value!);
    metrics = {
      rmse: Number(Math.sqrt(err.reduce((s, e) => s + e * e, 0) / err.length).toFixed(6)),
      mae: Number((err.reduce((s, e) => s + Math.abs(e), 0) / err.length).toFixed(6)),
      n_holdout: rows.length,
    };
  } else if (f.task === "multiclass_classification") {
    // labels drawn from the predicted distribution
    labels = preds.map((p) => {
      const u = rand();
      let acc = 0;
      for (let c = 0; c < p.probabilities!.length; c++) if ((acc += p.probabilities![c]) >= u) return c;
      return p.probabilities!.length - 1;
    });
    const acc = labels.filter((y, i) => y === preds[i].label).length / labels.length;
    const ll = labels.reduce((s, y, i) => s - Math.log(Math.max(1e-15, preds[i].probabilities![y])), 0) / labels.length;
    metrics = { accuracy: Number(acc.toFixed(6)), log_loss: Number(ll.toFixed(6)), n_holdout: rows.length };
  } else {
    labels = scores.map((s) => (rand() < s ? 1 : 0));
    metrics = { ...binaryMetrics(labels, scores) };
  }
  const refFeatures: Manifest["reference"]["features"] = {};
  for (const spec of f.features) {
    if (spec.type === "categorical") {
      refFeatures[spec.name] = categoricalReference(rows.map((r) => (r[spec.name] === undefined ? null : String(r[spec.name]))), spec.categories!);
    } else if (spec.type === "boolean") {
      refFeatures[spec.name] = categoricalReference(rows.map((r) => (r[spec.name] === undefined ? null : String(r[spec.name]))), ["false", "true"]);
    } else {
      refFeatures[spec.name] = numericReference(rows.map((r) => (r[spec.name] === undefined ? Number.NaN : Number(r[spec.name]))));
    }
  }
  const manifest: Manifest = {
    name: `fixture-${f.name}`,
    version: "1.0.0",
    task: f.task,
    description: f.description,
    environment: "development",
    metrics,
    featureSchema: { features: f.features, input: f.input, output: f.output },
    reference: { features: refFeatures, score: scoreReference(scores) },
  };
  return { manifest, labels };
}

/**
 * The rows as a training CSV: the fixture's features (missing cells empty) and the label as the
 * model's class (binary: 1 = the positive class; multiclass: the class index's label).
 */
function trainingCsv(f: Fixture, rows: RawRow[], labels: number[]): string {
  const names = f.features.map((x) => x.name);
  const out = f.output;
  const asClass = (y: number) => {
    if (out.kind !== "classifier") return y;
    if (f.task === "multiclass_classification") return out.classes[y];
    return y === 1 ? out.positiveClass! : out.classes.find((c) => c !== out.positiveClass)!;
  };
  return formatCsv([...names, "label"], rows.map((r, i) => [...names.map((n) => r[n]), asClass(labels[i])]));
}

function main(): void {
  mkdirSync(OUT, { recursive: true });
  const synthetic = syntheticRows(400, 12345);
  for (const f of FIXTURES) {
    // probe rows restricted to the fixture's features (the column-wise model has no Records)
    const names = new Set(f.features.map((x) => x.name));
    const rows = PROBE_ROWS.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => names.has(k))));
    const feeds = buildFeeds(f.features, f.input, rows);
    const expected = {
      model: `${f.name}.onnx`,
      note:
        "inputs: the exact tensors to feed (row-major; NaN written as null); expected: reference outputs per row (probabilities in manifest class order, score = P(positiveClass) or the regression value). Tolerance 1e-5.",
      inputs: Object.fromEntries(
        Object.entries(feeds).map(([k, t]) => [k, { ...t, data: t.data.map((v) => (typeof v === "number" && Number.isNaN(v) ? null : v)) }]),
      ),
      rows: rows.map((r) => {
        const p = f.predict(r);
        return { features: r, expected: { ...p, score: scoreOf(f, p) } };
      }),
    };
    const bytes = encodeModel(f.graph, { docString: f.description, metadata: { name: `fixture-${f.name}`, version: "1.0.0" } });
    writeFileSync(join(OUT, `${f.name}.onnx`), bytes);
    const { manifest, labels } = manifestFor(f, synthetic);
    writeFileSync(join(OUT, `${f.name}.manifest.json`), formatJson(manifest));
    writeFileSync(join(OUT, `${f.name}.train.csv`), trainingCsv(f, synthetic, labels));
    writeFileSync(join(OUT, `${f.name}.expected.json`), formatJson(expected, { inlineLimit: 200 }));
    console.log(`wrote test/fixtures/onnx/${f.name}.{onnx,manifest.json,expected.json,train.csv} (${bytes.length} bytes)`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main();
