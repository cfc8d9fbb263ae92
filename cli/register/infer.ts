/**
 * Infers a registration manifest from an ONNX file and its training data, and says why for every
 * choice. The graph decides what it can (inputs and their dtypes, output names, task, class labels,
 * categories of encoder nodes, whether NaN reaches a tree ensemble); the data decides feature
 * types where the graph cannot, missing-value policies, the reference distributions, and (scored
 * through onnxruntime) the score reference and the metrics. What neither can know (the category
 * order of a pre-one-hot dense input, bounds wider than the data, which class is "the score")
 * comes from flags, and each default taken is listed in `notes` so the user can review it.
 *
 * Rules, in order of authority: a flag; the graph; the data.
 *  - features: the data's columns except the label and --ignore, in file order; with per-feature
 *    inputs only the columns the graph reads (one input per feature, same name).
 *  - type: int64 input -> integer, string -> categorical, bool -> boolean; a dense float input:
 *    true/false cells -> boolean, numbers -> numeric (--integer to reject fractions), text ->
 *    categorical, one-hot over its categories. A wrong "integer" would reject live traffic, so it is
 *    never guessed from whole-number data.
 *  - categories: an encoder node on the input; else --categories; else the data's values sorted
 *    (scikit-learn's OneHotEncoder order), flagged as unconfirmed for a dense input.
 *  - missing: none in the data (training and holdout) -> reject; categorical/boolean -> impute the
 *    mode (ties: category order); numeric -> "nan" when a tree ensemble reads a float tensor (its
 *    nodes carry the learned missing-value branch), else impute the median (rounded for integers).
 *  - bounds: min 0 when every training value is >= 0, nothing else: a maximum learnt from the
 *    training range would reject legitimate larger values in production (--bounds to set them).
 *  - classes: the graph's labels (ZipMap, classifier operator); else the label column's values,
 *    sorted as scikit-learn does. The score is P(last class) unless --positive-class.
 *  - metrics: on --holdout when given, else on the training data (flagged as optimistic).
 */
import { binaryMetrics } from "../../src/stats/classification.ts";
import { mae, rmse } from "../../src/stats/regression.ts";
import { manifestSchema, type Manifest, type FeatureSchema } from "../../src/registry/manifest.ts";
import { categoricalReference, numericReference, scoreReference } from "../../scripts/lib/manifest.ts";
import type { RawRow } from "../../scripts/lib/predict-reference.ts";
import { median } from "../../scripts/lib/quantiles.ts";
import { asBooleans, asNumbers, asStrings, column, type Cell, type Table } from "./data.ts";
import { readGraph, type GraphFacts } from "./onnx-graph.ts";
import { scoreRows } from "./score.ts";

export interface RegisterOptions {
  onnx: Uint8Array;
  data: Table;
  holdout?: Table;
  label: string;
  name: string;
  version: string;
  environment?: "development" | "staging" | "production";
  description?: string;
  positiveClass?: string;
  categories?: Record<string, string[]>;
  integer?: string[];
  bounds?: Record<string, { min?: number; max?: number }>;
  impute?: Record<string, string>;
  ignore?: string[];
}

export interface Inferred {
  manifest: Manifest;
  /** One line per guess or decision, in the order taken. */
  notes: string[];
}

type Feature = FeatureSchema["features"][number];
type Column = { feature: string; oneHot?: string };

export class InferenceError extends Error {}

function fail(message: string): never {
  throw new InferenceError(message);
}

/** Class label text as a class value of the graph's kind (numbers stay numbers). */
function classValue(cell: Cell, numeric: boolean): number | string {
  if (numeric) {
    const v = Number(cell);
    if (!Number.isFinite(v)) fail(`label cell ${JSON.stringify(cell)} is not one of the model's numeric classes`);
    return v;
  }
  return String(cell);
}

function mode(values: string[], order: string[]): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return order.reduce((best, k) => ((counts.get(k) ?? 0) > (counts.get(best) ?? 0) ? k : best), order[0]);
}

export async function inferManifest(opts: RegisterOptions): Promise<Inferred> {
  const notes: string[] = [];
  const note = (s: string) => notes.push(s);
  const g = readGraph(opts.onnx);
  const { data, holdout } = opts;
  const ignore = new Set(opts.ignore ?? []);
  const integerFlag = new Set(opts.integer ?? []);
  if (!data.header.includes(opts.label)) fail(`${data.file}: no label column '${opts.label}' (columns: ${data.header.join(", ")})`);

  // ---- inputs ---------------------------------------------------------------------------------
  const candidates = data.header.filter((h) => h !== opts.label && !ignore.has(h));
  const dense = g.inputs.length === 1 && !candidates.includes(g.inputs[0].name) && g.inputs[0].elem === "float32" && g.inputs[0].dims.length === 2;
  let featureNames: string[];
  const inputDtype = new Map<string, string>();
  if (dense) {
    featureNames = candidates;
    note(`input: one float32 tensor '${g.inputs[0].name}' ${fmtDims(g.inputs[0].dims)} -> a dense input; its columns are the data's ${featureNames.length} feature columns in file order (numbers as they are, categoricals one-hot)`);
  } else {
    for (const i of g.inputs) {
      if (!candidates.includes(i.name)) fail(`the model reads an input '${i.name}' that is not a column of ${data.file}; per-feature inputs must be named after data columns`);
      if (!["float32", "int64", "string", "bool"].includes(i.elem)) fail(`input '${i.name}' is ${i.elem}; the runtime feeds float32, int64, string or bool tensors`);
      inputDtype.set(i.name, i.elem);
    }
    featureNames = candidates.filter((c) => inputDtype.has(c));
    const unused = candidates.filter((c) => !inputDtype.has(c));
    note(`input: ${g.inputs.length} named tensors (${g.inputs.map((i) => `${i.name} ${i.elem}`).join(", ")}) -> one input per feature`);
    if (unused.length) note(`data columns the model does not read, left out: ${unused.join(", ")}`);
  }

  // ---- features -------------------------------------------------------------------------------
  const holdoutHas = (name: string) => !!holdout && holdout.header.includes(name);
  const features: Feature[] = [];
  const columns: Column[] = [];
  const rawColumns = new Map<string, (number | string | boolean | null)[]>();
  for (const name of featureNames) {
    const cells = column(data, name);
    const missingTrain = cells.filter((c) => c === null || c === "NaN" || c === "nan").length;
    const missingHold = holdoutHas(name) ? column(holdout!, name).filter((c) => c === null || c === "NaN" || c === "nan").length : 0;
    const dtype = inputDtype.get(name);
    const numbers = asNumbers(cells);
    const bools = asBooleans(cells);
    let type: Feature["type"];
    let why: string;
    if (dtype === "int64") [type, why] = ["integer", "int64 input tensor"];
    else if (dtype === "string") [type, why] = ["categorical", "string input tensor"];
    else if (dtype === "bool") [type, why] = ["boolean", "bool input tensor"];
    else if (bools && !numbers) [type, why] = ["boolean", "true/false values"];
    else if (numbers) {
      if (integerFlag.has(name)) [type, why] = ["integer", "--integer"];
      else {
        type = "numeric";
        const whole = numbers.every((v) => Number.isNaN(v) || Number.isInteger(v));
        why = whole ? `whole numbers, typed numeric not integer: pass --integer ${name} to reject fractional values` : "numbers";
      }
    } else if (dtype === "float32") fail(`column '${name}' feeds a float32 tensor but holds text (${JSON.stringify(cells.find((c) => c !== null && !Number.isFinite(Number(c))))})`);
    else [type, why] = ["categorical", "text values"];

    const missingTotal = missingTrain + missingHold;
    const missingWhere = missingTotal ? `${missingTrain} missing in training data${holdout ? `, ${missingHold} in holdout` : ""}` : "never missing in the data";
    let spec: Feature;
    if (type === "categorical") {
      const values = asStrings(cells);
      const present = values.filter((v): v is string => v !== null);
      let categories: string[];
      const fromGraph = g.categories.get(name);
      if (fromGraph) {
        categories = fromGraph.values;
        note(`${name}: categorical (${why}); categories from the ${fromGraph.from}: ${categories.join(", ")}`);
      } else if (opts.categories?.[name]) {
        categories = opts.categories[name];
        note(`${name}: categorical (${why}); categories from --categories: ${categories.join(", ")}`);
      } else {
        categories = [...new Set(present)].sort();
        note(`${name}: categorical (${why}); categories GUESSED as the data's values sorted (scikit-learn's order): ${categories.join(", ")}${dense ? ` — the model cannot confirm the one-hot order of a dense input: if it was trained with another order pass --categories ${name}=a,b,c` : ""}`);
      }
      const unknown = [...new Set(present.filter((v) => !categories.includes(v)))];
      if (unknown.length) note(`  warning: ${name} values not among the categories (would be rejected when served): ${unknown.slice(0, 10).join(", ")}`);
      let missing: Feature["missing"] = { policy: "reject" };
      if (opts.impute?.[name] !== undefined) missing = { policy: "impute", value: opts.impute[name] };
      else if (missingTotal) missing = { policy: "impute", value: mode(present, categories) };
      note(`  ${name}: ${missingWhere} -> ${describeMissing(missing, opts.impute?.[name] !== undefined ? "--impute" : "the most frequent category")}`);
      spec = { name, type: "categorical", categories, missing };
      rawColumns.set(name, values);
      if (dense) for (const c of categories) columns.push({ feature: name, oneHot: c });
    } else if (type === "boolean") {
      const values = bools ?? cells.map((c) => (c === null ? null : c === true || c === 1 || c === "1" || c === "true"));
      const present = values.filter((v): v is boolean => v !== null);
      let missing: Feature["missing"] = { policy: "reject" };
      if (opts.impute?.[name] !== undefined) missing = { policy: "impute", value: opts.impute[name] === "true" };
      else if (missingTotal) missing = { policy: "impute", value: mode(present.map(String), ["false", "true"]) === "true" };
      note(`${name}: boolean (${why}); ${missingWhere} -> ${describeMissing(missing, "the most frequent value")}`);
      spec = { name, type: "boolean", missing };
      rawColumns.set(name, values);
      if (dense) columns.push({ feature: name });
    } else {
      const values = numbers ?? fail(`column '${name}' is typed ${type} but holds text`);
      const present = values.filter((v) => !Number.isNaN(v));
      if (!present.length) fail(`column '${name}' has no values`);
      const bounds: { min?: number; max?: number } = {};
      const flagged = opts.bounds?.[name];
      if (flagged) Object.assign(bounds, flagged);
      else if (present.every((v) => v >= 0)) bounds.min = 0;
      let missing: Feature["missing"] = { policy: "reject" };
      let source = "";
      if (opts.impute?.[name] !== undefined) [missing, source] = [{ policy: "impute", value: Number(opts.impute[name]) }, "--impute"];
      else if (missingTotal && g.treeEnsemble && (dense || dtype === "float32")) [missing, source] = [{ policy: "nan" }, "NaN into the tree ensemble, whose nodes carry the learned missing-value branch"];
      else if (missingTotal) {
        const m = median(present);
        missing = { policy: "impute", value: type === "integer" ? Math.round(m) : m };
        source = `the training median${type === "integer" ? ", rounded" : ""}`;
      }
      const lo = Math.min(...present);
      const hi = Math.max(...present);
      note(`${name}: ${type} (${why}); training range ${lo}..${hi}; bounds ${flagged ? "from --bounds" : bounds.min === 0 ? "min 0 (no negative training values; no max, so larger live values still score)" : "none"}; ${missingWhere} -> ${describeMissing(missing, source)}`);
      spec = type === "integer" ? { name, type: "integer", ...bounds, missing } : { name, type: "numeric", ...bounds, missing };
      rawColumns.set(name, values.map((v) => (Number.isNaN(v) ? null : v)));
      if (dense) columns.push({ feature: name });
    }
    features.push(spec);
  }

  let input: FeatureSchema["input"];
  if (dense) {
    const width = g.inputs[0].dims[1];
    if (width !== null && width !== columns.length) {
      fail(`the model's input '${g.inputs[0].name}' has ${width} columns but the data's features make ${columns.length} (${features.map((f) => (f.type === "categorical" ? `${f.name}×${f.categories.length}` : f.name)).join(", ")}); drop columns with --ignore or set categories with --categories`);
    }
    input = { kind: "dense", name: g.inputs[0].name, dtype: "float32", columns };
  } else {
    input = { kind: "per_feature", tensors: featureNames.map((n) => ({ feature: n, name: n, dtype: inputDtype.get(n) as "float32" | "int64" | "string" | "bool" })) };
  }

  // ---- output, task, classes ------------------------------------------------------------------
  const labels = column(data, opts.label);
  let output: FeatureSchema["output"];
  let task: Manifest["task"];
  if (g.kind === "regressor") {
    const value = g.outputs.find((o) => o.elem === "float32" || o.elem === "float64") ?? fail("the regressor has no float output");
    output = { kind: "regressor", value: value.name };
    task = "regression";
    note(`output: regressor (${[...g.ops].filter((o) => /Regressor|TreeEnsemble/.test(o)).join(", ") || "one float output"}); value '${value.name}'`);
  } else if (g.kind === "classifier") {
    const probs = g.outputs.find((o) => o.elem === "seq(map)") ?? g.outputs.find((o) => (o.elem === "float32" || o.elem === "float64") && (o.dims.at(-1) ?? 2) > 1) ?? fail("the classifier has no probability output");
    const label = g.outputs.find((o) => o.elem === "int64" || o.elem === "string");
    let classes: (number | string)[];
    if (g.classes) {
      classes = g.classes.labels;
      note(`classes from the ${g.classes.from}: ${classes.join(", ")}`);
    } else {
      const present = [...new Set(labels.filter((c) => c !== null).map(String))];
      const numeric = present.every((v) => Number.isFinite(Number(v)));
      classes = numeric ? present.map(Number).sort((a, b) => a - b) : present.sort();
      const width = probs.dims.at(-1);
      if (width && width !== classes.length) fail(`probability output '${probs.name}' has ${width} columns but the label column holds ${classes.length} classes (${classes.join(", ")})`);
      note(`classes: the graph names none, so the label column's values sorted (scikit-learn's order): ${classes.join(", ")}`);
    }
    const numericClasses = typeof classes[0] === "number";
    let positiveClass: number | string = classes[classes.length - 1];
    if (opts.positiveClass !== undefined) {
      positiveClass = numericClasses ? Number(opts.positiveClass) : opts.positiveClass;
      if (!classes.includes(positiveClass)) fail(`--positive-class ${opts.positiveClass} is not one of the classes ${classes.join(", ")}`);
      note(`score = P(${positiveClass}) (--positive-class)`);
    } else note(`score = P(${positiveClass}), the last class (scikit-learn's predict_proba[:, 1] for binary); pass --positive-class to choose another`);
    output = { kind: "classifier", probabilities: probs.name, ...(label ? { label: label.name } : {}), classes, positiveClass };
    task = classes.length === 2 ? "binary_classification" : "multiclass_classification";
    note(`output: classifier (${[...g.ops].filter((o) => /Classifier|ZipMap|Softmax|Sigmoid/.test(o)).join(", ")}); probabilities '${probs.name}'${label ? `, label '${label.name}'` : ""}; task ${task}`);
  } else {
    return fail(`cannot tell from the graph whether the model is a classifier or a regressor (outputs: ${g.outputs.map((o) => `${o.name} ${o.elem} ${fmtDims(o.dims)}`).join(", ")})`);
  }

  const featureSchema: FeatureSchema = { features, input, output };

  // ---- scores, reference, metrics -------------------------------------------------------------
  const trainRows = toRows(features, data);
  const trainOut = await scoreRows(opts.onnx, featureSchema, trainRows);
  const scoreOf = scoreIndex(output);
  const trainScores = trainOut.outputs.map(scoreOf);
  const referenceFeatures: NonNullable<Manifest["reference"]>["features"] = {};
  for (const f of features) {
    const values = rawColumns.get(f.name)!;
    if (f.type === "categorical") referenceFeatures[f.name] = categoricalReference(values as (string | null)[], f.categories);
    else if (f.type === "boolean") referenceFeatures[f.name] = categoricalReference(values.map((v) => (v === null ? null : String(v))), ["false", "true"]);
    else referenceFeatures[f.name] = numericReference(values.map((v) => (v === null ? Number.NaN : Number(v))));
  }
  note(`reference: ${features.length} feature distributions and the score distribution from ${data.rows.length} training rows (scored through onnxruntime)`);

  const evalTable = holdout ?? data;
  const evalOut = holdout ? await scoreRows(opts.onnx, featureSchema, toRows(features, holdout)) : trainOut;
  const evalLabels = column(evalTable, opts.label);
  const metrics = computeMetrics(output, task, evalLabels, evalOut.outputs);
  note(holdout ? `metrics on the holdout ${holdout.file} (${holdout.rows.length} rows)` : `metrics on the TRAINING data (${data.rows.length} rows): optimistic; pass --holdout for honest figures`);

  const description = opts.description ?? g.docString;
  if (opts.description === undefined) note(description ? `description: the ONNX doc string` : `description: empty (the ONNX file has no doc string; --description)`);
  const environment = opts.environment ?? "development";
  if (!opts.environment) note(`environment: development (--environment staging|production)`);

  const manifest = {
    name: opts.name,
    version: opts.version,
    task,
    description,
    environment,
    metrics,
    featureSchema,
    reference: { features: referenceFeatures, score: scoreReference(trainScores) },
  };
  const parsed = manifestSchema.safeParse(manifest);
  if (!parsed.success) fail(`the inferred manifest is not valid: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return { manifest: manifest as Manifest, notes };
}

function fmtDims(d: (number | null)[]): string {
  return `[${d.map((x) => x ?? "N").join(", ")}]`;
}

function describeMissing(m: Feature["missing"], source: string): string {
  if (m.policy === "reject") return "missing values rejected";
  if (m.policy === "nan") return `missing as NaN (${source})`;
  return `missing imputed with ${JSON.stringify(m.value)} (${source})`;
}

/** Raw rows for the reference scorer: present cells typed as their feature, missing cells omitted. */
function toRows(features: Feature[], table: Table): RawRow[] {
  const idx = features.map((f) => table.header.indexOf(f.name));
  features.forEach((f, i) => {
    if (idx[i] < 0) fail(`${table.file}: no column '${f.name}'`);
  });
  return table.rows.map((cells) => {
    const row: RawRow = {};
    features.forEach((f, i) => {
      const c = cells[idx[i]];
      if (c === null || c === "NaN" || c === "nan") return;
      if (f.type === "categorical") row[f.name] = String(c);
      else if (f.type === "boolean") row[f.name] = c === true || c === "true" || c === "True" || c === "TRUE" || c === 1 || c === "1";
      else row[f.name] = Number(c);
    });
    return row;
  });
}

function scoreIndex(output: FeatureSchema["output"]): (o: number[]) => number {
  if (output.kind === "regressor") return (o) => o[0];
  const k = output.classes.indexOf(output.positiveClass ?? output.classes[output.classes.length - 1]);
  return (o) => o[k];
}

function computeMetrics(output: FeatureSchema["output"], task: Manifest["task"], labels: Cell[], outputs: number[][]): Record<string, number> {
  const r6 = (v: number) => Number(v.toFixed(6));
  if (output.kind === "regressor") {
    const y = labels.map((c) => Number(c));
    const p = outputs.map((o) => o[0]);
    return { rmse: r6(rmse(y, p)), mae: r6(mae(y, p)), n_holdout: y.length };
  }
  const numeric = typeof output.classes[0] === "number";
  const y = labels.map((c) => output.classes.indexOf(classValue(c, numeric)));
  if (y.some((k) => k < 0)) fail(`label values outside the model's classes ${output.classes.join(", ")}: ${[...new Set(labels.filter((c, i) => y[i] < 0))].slice(0, 5).join(", ")}`);
  if (task === "binary_classification") {
    const pos = output.classes.indexOf(output.positiveClass!);
    return { ...binaryMetrics(y.map((k) => (k === pos ? 1 : 0)), outputs.map((o) => o[pos])) };
  }
  let correct = 0;
  let loss = 0;
  y.forEach((k, i) => {
    const o = outputs[i];
    if (o.indexOf(Math.max(...o)) === k) correct++;
    loss -= Math.log(Math.max(1e-15, o[k]));
  });
  return { accuracy: r6(correct / y.length), log_loss: r6(loss / y.length), n_holdout: y.length };
}
