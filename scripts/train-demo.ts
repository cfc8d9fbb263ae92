/**
 * Trains the two demo models on data/credit_data.csv and writes them to models/:
 *   credit-risk-lr.onnx   (+ .manifest.json, .params.json)  logistic regression, v1.0.0
 *   credit-risk-gbt.onnx  (+ .manifest.json, .params.json)  gradient-boosted trees, v1.1.0
 *   credit-risk-holdout.json                                the 20% stratified holdout (raw rows + label)
 *   credit-risk-train.csv, credit-risk-holdout.csv          the same split as CSV (label column `bad`),
 *                                                           what `npm run cli -- register` reads
 *
 * Target: Status == "bad" -> label 1 (positive class). Deterministic: seeded shuffle, exact
 * Newton / greedy fits, no wall-clock data in the outputs (re-running gives identical files).
 *
 * Run: npm run train:demo
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { formatCsv, parseCsv } from "./lib/csv.ts";
import { formatJson } from "./lib/json.ts";
import { mulberry32, shuffle } from "./lib/prng.ts";
import { binaryMetrics } from "../src/stats/classification.ts";
import { fitLogistic } from "./lib/train-lr.ts";
import { fitGbt } from "./lib/train-gbt.ts";
import type { GbtOptions } from "./lib/train-gbt.ts";
import { categoricalReference, numericReference, scoreReference } from "./lib/manifest.ts";
import { median } from "./lib/quantiles.ts";
import type { Manifest, CategoricalReference, NumericReference } from "./lib/manifest.ts";
import { encodeDense, predictLogistic, predictTrees } from "./lib/predict-reference.ts";
import type { DenseColumn, FeatureSpec, LogisticParams, RawRow, TreeParams } from "./lib/predict-reference.ts";
import { encodeModel, logisticGemmGraph, treeClassifierGraph } from "./onnx/builder.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const SEED = 20240607;
const HOLDOUT_FRACTION = 0.2;
const LR_LAMBDA = 1.0;
const GBT_OPTS: GbtOptions = { nTrees: 100, maxDepth: 3, learningRate: 0.1, lambda: 1, minChildWeight: 1, minSamplesLeaf: 20 };

// ---------------------------------------------------------------------------------------------
// Feature definitions (bounds are generous but real; categories in the original data coding order)
// ---------------------------------------------------------------------------------------------
interface FeatureDef {
  name: string;
  type: "numeric" | "integer" | "categorical";
  min?: number;
  max?: number;
  categories?: string[];
}
const FEATURES: FeatureDef[] = [
  { name: "Seniority", type: "integer", min: 0, max: 100 }, // years with current employer
  { name: "Home", type: "categorical", categories: ["rent", "owner", "priv", "ignore", "parents", "other"] },
  { name: "Time", type: "integer", min: 0, max: 240 }, // requested loan term, months
  { name: "Age", type: "integer", min: 18, max: 110 },
  { name: "Marital", type: "categorical", categories: ["single", "married", "widow", "separated", "divorced"] },
  { name: "Records", type: "categorical", categories: ["no", "yes"] },
  { name: "Job", type: "categorical", categories: ["fixed", "partime", "freelance", "others"] },
  { name: "Expenses", type: "numeric", min: 0, max: 1000 },
  { name: "Income", type: "numeric", min: 0, max: 5000 },
  { name: "Assets", type: "numeric", min: 0, max: 1000000 },
  { name: "Debt", type: "numeric", min: 0, max: 100000 },
  { name: "Amount", type: "numeric", min: 0, max: 20000 },
  { name: "Price", type: "numeric", min: 0, max: 50000 },
];

interface Example {
  row: RawRow; // raw features, missing cells omitted
  label: number;
}

function loadData(): Example[] {
  const { header, rows } = parseCsv(readFileSync(join(ROOT, "data/credit_data.csv"), "utf8"));
  const statusIdx = header.indexOf("Status");
  return rows.map((cells) => {
    const row: RawRow = {};
    for (const f of FEATURES) {
      const cell = cells[header.indexOf(f.name)];
      if (cell === "") continue;
      if (f.type === "categorical") {
        if (!f.categories!.includes(cell)) throw new Error(`unknown ${f.name} category ${cell}`);
        row[f.name] = cell;
      } else {
        const v = Number(cell);
        if (!Number.isFinite(v)) throw new Error(`bad number ${f.name}=${cell}`);
        row[f.name] = v;
      }
    }
    const status = cells[statusIdx];
    if (status !== "bad" && status !== "good") throw new Error(`bad Status ${status}`);
    return { row, label: status === "bad" ? 1 : 0 };
  });
}

/** Stratified split: per class, a seeded shuffle puts round(fraction * n_class) rows in the holdout. */
function split(data: Example[]): { train: Example[]; holdout: Example[] } {
  const rand = mulberry32(SEED);
  const holdoutIdx = new Set<number>();
  for (const cls of [0, 1]) {
    const idx = data.map((e, i) => (e.label === cls ? i : -1)).filter((i) => i >= 0);
    const shuffled = shuffle(idx, rand);
    for (const i of shuffled.slice(0, Math.round(HOLDOUT_FRACTION * idx.length))) holdoutIdx.add(i);
  }
  return {
    train: data.filter((_, i) => !holdoutIdx.has(i)),
    holdout: data.filter((_, i) => holdoutIdx.has(i)),
  };
}

function mode(values: string[], order: string[]): string {
  const c = new Map<string, number>();
  for (const v of values) c.set(v, (c.get(v) ?? 0) + 1);
  // ties broken by category order
  return order.reduce((best, k) => ((c.get(k) ?? 0) > (c.get(best) ?? 0) ? k : best), order[0]);
}

function featureSpecs(all: Example[], train: Example[], numericMissing: "impute" | "nan"): FeatureSpec[] {
  return FEATURES.map((f) => {
    const hasMissing = all.some((e) => e.row[f.name] === undefined);
    const present = train.map((e) => e.row[f.name]).filter((v) => v !== undefined);
    let missing: FeatureSpec["missing"] = { policy: "reject" };
    if (hasMissing) {
      if (f.type === "categorical") missing = { policy: "impute", value: mode(present as string[], f.categories!) };
      else if (numericMissing === "nan") missing = { policy: "nan" };
      else missing = { policy: "impute", value: median(present as number[]) };
    }
    return f.type === "categorical"
      ? { name: f.name, type: f.type, categories: f.categories!.slice(), missing }
      : { name: f.name, type: f.type, min: f.min, max: f.max, missing };
  });
}

/** Dense columns: numeric features pass through, categoricals one-hot over all categories. */
function denseColumns(): DenseColumn[] {
  return FEATURES.flatMap((f) => (f.type === "categorical" ? f.categories!.map((c) => ({ feature: f.name, oneHot: c })) : [{ feature: f.name }]));
}

function referenceFeatures(train: Example[]): Record<string, NumericReference | CategoricalReference> {
  const out: Record<string, NumericReference | CategoricalReference> = {};
  for (const f of FEATURES) {
    if (f.type === "categorical") {
      out[f.name] = categoricalReference(
        train.map((e) => (e.row[f.name] === undefined ? null : (e.row[f.name] as string))),
        f.categories!,
      );
    } else {
      out[f.name] = numericReference(train.map((e) => (e.row[f.name] === undefined ? Number.NaN : (e.row[f.name] as number))));
    }
  }
  return out;
}

function writeJson(rel: string, value: unknown, inlineLimit?: number): void {
  writeFileSync(join(ROOT, rel), formatJson(value, { inlineLimit }));
  console.log(`wrote ${rel}`);
}

function writeBytes(rel: string, bytes: Uint8Array): void {
  writeFileSync(join(ROOT, rel), bytes);
  console.log(`wrote ${rel} (${bytes.length} bytes)`);
}

// ---------------------------------------------------------------------------------------------
function main(): void {
  mkdirSync(join(ROOT, "models"), { recursive: true });
  const data = loadData();
  const { train, holdout } = split(data);
  console.log(`rows ${data.length}: train ${train.length} (bad ${train.filter((e) => e.label).length}), holdout ${holdout.length} (bad ${holdout.filter((e) => e.label).length})`);
  const columns = denseColumns();
  const yTrain = train.map((e) => e.label);
  const yHold = holdout.map((e) => e.label);
  const refFeatures = referenceFeatures(train);
  const inputSpec = { kind: "dense" as const, name: "float_input", dtype: "float32" as const, columns };
  const outputSpec = {
    kind: "classifier" as const,
    probabilities: "probabilities",
    label: "label",
    classes: [0, 1],
    positiveClass: 1,
  };

  // ---- (1) logistic regression ---------------------------------------------------------------
  const lrFeatures = featureSpecs(data, train, "impute");
  const XlrTrain = train.map((e) => encodeDense(lrFeatures, columns, e.row));
  const lrFit = fitLogistic(XlrTrain, yTrain, columns.map((c) => c.oneHot === undefined), { lambda: LR_LAMBDA });
  console.log(`LR: IRLS ${lrFit.converged ? "converged" : "NOT converged"} in ${lrFit.iterations} iterations`);
  const lrParams: LogisticParams & Record<string, unknown> = {
    model: "logistic_regression",
    features: lrFeatures,
    columns,
    weights: lrFit.weights.map((w) => Math.fround(w)),
    intercept: Math.fround(lrFit.intercept),
    training: {
      note: "weights/intercept are on RAW column values (standardisation folded in) and rounded to float32, exactly as stored in the ONNX file",
      objective: "sum logloss + lambda/2 * ||w_standardised||^2, Newton/IRLS",
      lambda: LR_LAMBDA,
      iterations: lrFit.iterations,
      standardized: lrFit.standardized,
      seed: SEED,
      n_train: train.length,
    },
  };
  const lrTrainScores = train.map((e) => predictLogistic(lrParams, e.row));
  const lrHoldScores = holdout.map((e) => predictLogistic(lrParams, e.row));
  const lrMetrics = binaryMetrics(yHold, lrHoldScores);
  console.log("LR train", binaryMetrics(yTrain, lrTrainScores));
  console.log("LR holdout", lrMetrics);
  const lrManifest: Manifest = {
    name: "credit-risk",
    version: "1.0.0",
    task: "binary_classification",
    description:
      "Logistic regression (L2, IRLS) on credit_data.csv; P(Status = bad). Raw feature inputs (scaling folded into the weights), one-hot categoricals, median/mode imputation.",
    environment: "production",
    metrics: { ...lrMetrics },
    featureSchema: { features: lrFeatures, input: inputSpec, output: outputSpec },
    reference: { features: refFeatures, score: scoreReference(lrTrainScores) },
  };
  const lrOnnx = encodeModel(logisticGemmGraph({ weights: lrParams.weights, intercept: lrParams.intercept }), {
    docString: lrManifest.description,
    metadata: { name: "credit-risk", version: "1.0.0" },
  });

  // ---- (2) gradient-boosted trees ------------------------------------------------------------
  const gbtFeatures = featureSpecs(data, train, "nan");
  const XgbtTrain = train.map((e) => encodeDense(gbtFeatures, columns, e.row));
  const t0 = performance.now();
  const gbtFit = fitGbt(XgbtTrain, yTrain, GBT_OPTS);
  console.log(`GBT: ${GBT_OPTS.nTrees} trees in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
  const gbtParams: TreeParams & Record<string, unknown> = {
    model: "gradient_boosted_trees",
    features: gbtFeatures,
    columns,
    baseScore: gbtFit.baseScore,
    trees: gbtFit.trees,
    training: {
      note: "node.feature indexes `columns`; x <= threshold -> left; NaN -> left iff missingGoesLeft; leaf values already include the learning rate; P(bad) = sigmoid(baseScore + sum of leaves). All numbers are float32 values, as stored in the ONNX file.",
      objective: "binary logloss, Newton boosting, exact greedy splits, learned missing direction",
      ...GBT_OPTS,
      seed: SEED,
      n_train: train.length,
    },
  };
  const gbtTrainScores = train.map((e) => predictTrees(gbtParams, e.row));
  const gbtHoldScores = holdout.map((e) => predictTrees(gbtParams, e.row));
  const gbtMetrics = binaryMetrics(yHold, gbtHoldScores);
  console.log("GBT train", binaryMetrics(yTrain, gbtTrainScores));
  console.log("GBT holdout", gbtMetrics);
  const gbtManifest: Manifest = {
    name: "credit-risk",
    version: "1.1.0",
    task: "binary_classification",
    description: `Gradient-boosted trees (${GBT_OPTS.nTrees} trees, depth ${GBT_OPTS.maxDepth}, learning rate ${GBT_OPTS.learningRate}) on credit_data.csv; P(Status = bad). Missing Income/Assets/Debt passed as NaN (learned missing direction), one-hot categoricals with mode imputation.`,
    environment: "staging",
    metrics: { ...gbtMetrics },
    featureSchema: { features: gbtFeatures, input: inputSpec, output: outputSpec },
    reference: { features: refFeatures, score: scoreReference(gbtTrainScores) },
  };
  const gbtOnnx = encodeModel(
    treeClassifierGraph({ trees: gbtFit.trees, classes: { int64: [0, 1] }, baseScore: gbtFit.baseScore, postTransform: "LOGISTIC" }, columns.length),
    { docString: gbtManifest.description, metadata: { name: "credit-risk", version: "1.1.0" } },
  );

  // ---- outputs -------------------------------------------------------------------------------
  writeBytes("models/credit-risk-lr.onnx", lrOnnx);
  writeJson("models/credit-risk-lr.manifest.json", lrManifest);
  writeJson("models/credit-risk-lr.params.json", lrParams);
  writeBytes("models/credit-risk-gbt.onnx", gbtOnnx);
  writeJson("models/credit-risk-gbt.manifest.json", gbtManifest);
  writeJson("models/credit-risk-gbt.params.json", gbtParams);
  writeJson("models/credit-risk-holdout.json", {
    name: "credit-risk-holdout",
    description: `Stratified ${HOLDOUT_FRACTION * 100}% holdout of data/credit_data.csv (seed ${SEED}), not used for training. label 1 = Status "bad". Missing cells are omitted from the feature objects.`,
    positiveClass: 1,
    n: holdout.length,
    rows: holdout.map((e) => ({ features: e.row, label: e.label })),
  }, 400);
  // The split as CSV, features in FEATURES order (missing cells empty), label `bad` (1 = Status "bad").
  const csv = (rows: Example[]) => formatCsv([...FEATURES.map((f) => f.name), "bad"], rows.map((e) => [...FEATURES.map((f) => e.row[f.name]), e.label]));
  writeFileSync(join(ROOT, "models/credit-risk-train.csv"), csv(train));
  writeFileSync(join(ROOT, "models/credit-risk-holdout.csv"), csv(holdout));
  console.log("wrote models/credit-risk-train.csv, models/credit-risk-holdout.csv");
}

main();
