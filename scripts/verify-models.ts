/**
 * Loads every ONNX file in models/ and test/fixtures/onnx/ in onnxruntime-web (Node build, WASM,
 * 1 thread) and checks the outputs against the plain-TS reference (scripts/lib/predict-reference.ts
 * and the fixtures' *.expected.json) within 1e-5, plus manifest/params consistency:
 *
 *   demo models: every holdout row + every holdout row with its optional features removed
 *                (exercises impute / NaN policies), labels, probability rows summing to 1,
 *                holdout metrics recomputed from ONNX outputs == manifest metrics;
 *   fixtures:    feeds rebuilt from manifest + raw rows == the stored feeds; outputs == expected.
 *                ZipMap models: onnxruntime-web cannot return seq(map) outputs, so they are checked
 *                (1) fetching only the label output and (2) after stripping ZipMap (its input
 *                tensor becomes the graph output), which is what the Worker does at load time.
 *
 * Exit code 1 on any mismatch. Run: npm run verify:models
 */
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-web";
import { DT, onnx, tensorInfo } from "./onnx/builder.ts";
import { encodeDense, predictLogistic, predictTrees, resolveValue } from "./lib/predict-reference.ts";
import type { FeatureSpec, LogisticParams, RawRow, TreeParams } from "./lib/predict-reference.ts";
import type { InputSpec, Manifest } from "./lib/manifest.ts";
import { binaryMetrics } from "../src/stats/classification.ts";
import { mulberry32 } from "./lib/prng.ts";

ort.env.wasm.numThreads = 1;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const TOL = 1e-5;
let failures = 0;

function check(ok: boolean, msg: string): void {
  if (!ok) {
    failures++;
    console.log(`  FAIL ${msg}`);
  }
}
const readJson = <T>(rel: string): T => JSON.parse(readFileSync(join(ROOT, rel), "utf8")) as T;

/** Removes ai.onnx.ml ZipMap nodes; the ZipMap's input tensor becomes the graph output. */
export function stripZipMap(bytes: Uint8Array): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const g = model.graph as InstanceType<typeof onnx.GraphProto>;
  for (const n of g.node.filter((x) => x.opType === "ZipMap")) {
    const out = n.output![0];
    const attrs = n.attribute ?? [];
    const nClasses =
      (attrs.find((a) => a.name === "classlabels_int64s")?.ints?.length ?? 0) ||
      (attrs.find((a) => a.name === "classlabels_strings")?.strings?.length ?? 0);
    g.node = g.node.filter((x) => x !== n);
    g.output = g.output.map((o) => (o.name === out ? onnx.ValueInfoProto.create(tensorInfo(n.input![0], DT.FLOAT, ["N", nClasses])) : o));
  }
  return onnx.ModelProto.encode(model).finish();
}

function feedsToOrt(feeds: Record<string, { dtype: string; dims: number[]; data: (number | string | null)[] }>): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) {
    if (t.dtype === "float32") out[name] = new ort.Tensor("float32", Float32Array.from(t.data, (v) => (v === null ? Number.NaN : Number(v))), t.dims);
    else if (t.dtype === "int64") out[name] = new ort.Tensor("int64", BigInt64Array.from(t.data, (v) => BigInt(v as number)), t.dims);
    else out[name] = new ort.Tensor("string", t.data.map(String), t.dims);
  }
  return out;
}

/** Build feeds for raw rows from a manifest's feature schema (what the Worker must do). */
function buildFeeds(features: FeatureSpec[], input: InputSpec, rows: RawRow[]) {
  const feeds: Record<string, { dtype: string; dims: number[]; data: (number | string | null)[] }> = {};
  if (input.kind === "dense") {
    feeds[input.name] = {
      dtype: "float32",
      dims: [rows.length, input.columns.length],
      data: rows.flatMap((r) => encodeDense(features, input.columns, r)).map((v) => (Number.isNaN(v) ? null : v)),
    };
    return feeds;
  }
  for (const t of input.tensors) {
    const spec = features.find((f) => f.name === t.feature)!;
    const vals = rows.map((r) => resolveValue(spec, r));
    feeds[t.name] = {
      dtype: t.dtype,
      dims: [rows.length, 1],
      data: vals.map((v) => (t.dtype === "string" ? String(v) : t.dtype === "int64" ? Math.trunc(Number(v)) : Math.fround(Number(v)))),
    };
  }
  return feeds;
}


// ---------------------------------------------------------------------------------------------
async function verifyDemo(stem: string, predict: (row: RawRow) => number, params: LogisticParams | TreeParams): Promise<void> {
  console.log(`models/${stem}.onnx`);
  const manifest = readJson<Manifest>(`models/${stem}.manifest.json`);
  const holdout = readJson<{ rows: { features: RawRow; label: number }[] }>("models/credit-risk-holdout.json");
  const fs = manifest.featureSchema;
  if (fs.input.kind !== "dense" || fs.output.kind !== "classifier") throw new Error("unexpected manifest");
  check(JSON.stringify(params.features) === JSON.stringify(fs.features), "params.features == manifest features");
  check(JSON.stringify(params.columns) === JSON.stringify(fs.input.columns), "params.columns == manifest input columns");

  const session = await ort.InferenceSession.create(readFileSync(join(ROOT, `models/${stem}.onnx`)));
  check(session.inputNames.length === 1 && session.inputNames[0] === fs.input.name, `input name ${session.inputNames}`);
  check(session.outputNames.includes(fs.output.probabilities) && session.outputNames.includes(fs.output.label), `outputs ${session.outputNames}`);

  // holdout rows, then the same rows with every non-required feature removed at random
  const rand = mulberry32(99);
  const optional = fs.features.filter((f) => f.missing.policy !== "reject").map((f) => f.name);
  const stressed = holdout.rows.map((r) => {
    const row: RawRow = { ...r.features };
    for (const k of optional) if (rand() < 0.3) delete row[k];
    return row;
  });
  for (const [label, rows] of [["holdout", holdout.rows.map((r) => r.features)], ["holdout with optional features removed", stressed]] as const) {
    const feeds = feedsToOrt(buildFeeds(fs.features, fs.input, rows));
    const out = await session.run(feeds);
    const P = out[fs.output.probabilities];
    const L = out[fs.output.label];
    check(P.type === "float32" && P.dims[0] === rows.length && P.dims[1] === 2, `probabilities ${P.type} ${P.dims}`);
    check(L.type === "int64" && L.dims.length === 1 && L.dims[0] === rows.length, `label ${L.type} ${L.dims}`);
    const pd = P.data as Float32Array;
    const ld = L.data as BigInt64Array;
    let maxDiff = 0;
    let labelMismatch = 0;
    let sumDiff = 0;
    for (let i = 0; i < rows.length; i++) {
      const ref = predict(rows[i]);
      maxDiff = Math.max(maxDiff, Math.abs(pd[2 * i + 1] - ref), Math.abs(pd[2 * i] - (1 - ref)));
      sumDiff = Math.max(sumDiff, Math.abs(pd[2 * i] + pd[2 * i + 1] - 1));
      if (Number(ld[i]) !== (ref > 0.5 ? 1 : 0)) labelMismatch++;
    }
    console.log(`  ${label}: ${rows.length} rows, max |onnx - reference| = ${maxDiff.toExponential(2)}, label mismatches ${labelMismatch}`);
    check(maxDiff < TOL, `max diff ${maxDiff}`);
    check(labelMismatch === 0, "labels");
    check(sumDiff < 1e-6, "probability rows sum to 1");
    if (label === "holdout") {
      const m = binaryMetrics(holdout.rows.map((r) => r.label), Array.from({ length: rows.length }, (_, i) => pd[2 * i + 1]));
      for (const k of ["auc", "ks", "gini", "log_loss", "brier", "accuracy", "n_holdout"] as const) {
        check(Math.abs(m[k] - manifest.metrics[k]) < 1e-4, `metric ${k}: onnx ${m[k]} vs manifest ${manifest.metrics[k]}`);
      }
      console.log(`  metrics from ONNX outputs match the manifest: auc ${m.auc} ks ${m.ks}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
interface Expected {
  inputs: Record<string, { dtype: string; dims: number[]; data: (number | string | null)[] }>;
  rows: { features: RawRow; expected: { probabilities?: number[]; label?: number | string; value?: number } }[];
}

function compareOutputs(
  name: string,
  out: ort.InferenceSession.ReturnType,
  manifest: Manifest,
  exp: Expected,
  probName: string | null,
  labelName: string | null,
): void {
  const o = manifest.featureSchema.output;
  let maxDiff = 0;
  if (o.kind === "regressor") {
    const v = out[o.value];
    check(v.dims.join() === `${exp.rows.length},1`, `${name}: regressor dims ${v.dims}`);
    exp.rows.forEach((r, i) => (maxDiff = Math.max(maxDiff, Math.abs((v.data as Float32Array)[i] - r.expected.value!))));
  } else {
    const C = o.classes.length;
    if (probName) {
      const P = out[probName];
      check(P.type === "float32" && P.dims.join() === `${exp.rows.length},${C}`, `${name}: prob dims ${P.dims}`);
      exp.rows.forEach((r, i) => {
        for (let c = 0; c < C; c++) maxDiff = Math.max(maxDiff, Math.abs((P.data as Float32Array)[i * C + c] - r.expected.probabilities![c]));
      });
    }
    if (labelName) {
      const L = out[labelName];
      const labels = Array.from(L.data as ArrayLike<unknown>, (v) => (typeof v === "bigint" ? Number(v) : v));
      check(JSON.stringify(labels) === JSON.stringify(exp.rows.map((r) => r.expected.label)), `${name}: labels ${JSON.stringify(labels)} (${L.type})`);
    }
  }
  check(maxDiff < TOL, `${name}: max diff ${maxDiff}`);
  console.log(`  ${name}: ${exp.rows.length} rows, max |onnx - expected| = ${maxDiff.toExponential(2)}`);
}

async function verifyFixture(stem: string): Promise<void> {
  const dir = "test/fixtures/onnx";
  console.log(`${dir}/${stem}.onnx`);
  const manifest = readJson<Manifest>(`${dir}/${stem}.manifest.json`);
  const exp = readJson<Expected>(`${dir}/${stem}.expected.json`);
  const fs = manifest.featureSchema;
  const rebuilt = buildFeeds(fs.features, fs.input, exp.rows.map((r) => r.features));
  check(JSON.stringify(rebuilt) === JSON.stringify(exp.inputs), "feeds rebuilt from manifest == stored feeds");
  const bytes = readFileSync(join(ROOT, `${dir}/${stem}.onnx`));
  const session = await ort.InferenceSession.create(bytes);
  const feeds = feedsToOrt(exp.inputs);
  const types = Object.values(exp.inputs).map((t) => t.dtype).join("/");
  console.log(`  loaded; inputs ${session.inputNames.join(", ")} (${types}); outputs ${session.outputNames.join(", ")}`);
  const o = fs.output;
  const hasZipMap = (onnx.ModelProto.decode(bytes).graph?.node ?? []).some((n) => n.opType === "ZipMap");
  if (!hasZipMap) {
    compareOutputs("run", await session.run(feeds), manifest, exp, o.kind === "classifier" ? o.probabilities : null, o.kind === "classifier" ? o.label : null);
    return;
  }
  if (o.kind !== "classifier") throw new Error("ZipMap on a regressor?");
  try {
    await session.run(feeds);
    console.log("  note: fetching the ZipMap output worked");
  } catch (e) {
    console.log(`  (expected) fetching all outputs fails: ${(e as Error).message.split("\n")[0]}`);
  }
  compareOutputs("label output only", await session.run(feeds, [o.label]), manifest, exp, null, o.label);
  const stripped = await ort.InferenceSession.create(stripZipMap(bytes));
  const probName = stripped.outputNames.find((n) => n !== o.label)!;
  console.log(`  ZipMap stripped: outputs ${stripped.outputNames.join(", ")}`);
  compareOutputs("ZipMap stripped", await stripped.run(feeds), manifest, exp, probName, o.label);
}

async function main(): Promise<void> {
  await verifyDemo("credit-risk-lr", (r) => predictLogistic(lrParams, r), lrParams);
  await verifyDemo("credit-risk-gbt", (r) => predictTrees(gbtParams, r), gbtParams);
  const stems = readdirSync(join(ROOT, "test/fixtures/onnx")).filter((f) => f.endsWith(".onnx")).map((f) => f.slice(0, -5)).sort();
  for (const s of stems) await verifyFixture(s);
  console.log(failures === 0 ? `\nOK: ${2 + stems.length} models verified` : `\n${failures} check(s) FAILED`);
  process.exitCode = failures === 0 ? 0 : 1;
}

const lrParams = readJson<LogisticParams>("models/credit-risk-lr.params.json");
const gbtParams = readJson<TreeParams>("models/credit-risk-gbt.params.json");
await main();
