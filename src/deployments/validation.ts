/**
 * Validation before traffic (the original design's validate_deployment). For each version a
 * deployment would send traffic to, a report of checks:
 *
 *   loads             the artifact loads into an onnxruntime session
 *   schema_compatible every feature the stable version accepts is accepted by the candidate with a
 *                     compatible type, range and categories, and the candidate requires nothing
 *                     the stable version does not (so today's requests keep working)
 *   scores_test_set   every row of the test set scores without an error
 *   outputs_in_bounds probabilities finite, in [0, 1], summing to 1; regression values finite and
 *                     inside output_min/output_max when configured
 *   metric_floor      AUC (binary) >= min_auc, or >= stable's AUC on the same set - max_auc_drop;
 *                     RMSE (regression) <= max_rmse when configured
 *   latency           mean single-row latency <= latency_budget_ms
 *
 * Latency: workerd's clocks have ~1 ms granularity and, in deployed Workers, do not advance during
 * pure CPU work (only across I/O). The check scores one row LATENCY_ITERATIONS times and divides the
 * elapsed time; the report says how it was measured and whether the clock moved at all.
 *
 * The test set is the one in the request, else the model's stored set (R2 `test-sets/<model>.json`,
 * uploaded with PUT /admin/deployments/test-sets/:model). Its labels must be labels the model can
 * predict (src/registry/labels.ts, the check feedback uses), else AUC would read a stray label as the
 * negative class: when stored, against the classes of the model's versions that are not archived
 * (the set may be stored before the version it will validate exists); when validating, against each
 * version validated and the baseline, one at a time (each version's AUC reads the labels as its own
 * classes). A request's set that fails is a 422; a stored one that fails is a 409 (store a new one).
 */
import { ApiError, type FieldIssue } from "../http/errors";
import { intVar } from "../http/limits";
import { loadModel, score } from "../inference/predictor";
import type { Prediction } from "../inference/outputs";
import { labelIssues } from "../registry/labels";
import type { FeatureSchema, FeatureSpec, OutputSpec } from "../registry/manifest";
import { findVersion, toModelVersion, type Db, type ModelVersion } from "../registry/store";
import { auc } from "../stats/classification";
import type { TestSet, ValidationConfig } from "./model";
import { testSetSchema } from "./model";

export const LATENCY_ITERATIONS = 200;

export interface Check {
  name: "exists" | "loads" | "schema_compatible" | "scores_test_set" | "outputs_in_bounds" | "metric_floor" | "latency" | "test_set";
  passed: boolean;
  detail: string;
  value?: unknown;
}

export interface VersionReport {
  version: string;
  passed: boolean;
  checks: Check[];
}

export interface ValidationReport {
  passed: boolean;
  validated_at: string;
  baseline: string | null;
  test_set: { source: "request" | "stored" | "none"; rows: number; labelled: number };
  versions: VersionReport[];
}

export function testSetKey(model: string): string {
  return `test-sets/${model}.json`;
}

export async function storedTestSet(env: Env, model: string): Promise<TestSet | null> {
  const object = await env.ARTIFACTS.get(testSetKey(model));
  if (!object) return null;
  const parsed = testSetSchema.safeParse(await object.json());
  return parsed.success ? (parsed.data as TestSet) : null;
}

/** The labelled rows of `set` whose label none of `outputs` can predict; paths `<prefix>rows[i].label`. */
export function testSetLabelIssues(set: TestSet, outputs: OutputSpec[], prefix = ""): FieldIssue[] {
  const labels = set.rows.flatMap((r, i) => (r.label === undefined ? [] : [{ path: `${prefix}rows[${i}].label`, value: r.label }]));
  return labelIssues(labels, outputs);
}

/**
 * Refuses a test set with a label one of `versions` (those that exist and are not archived; the
 * others fail their "exists" check in the report) cannot predict: 422 for the request's set, 409
 * for the stored one.
 */
export async function checkTestSetLabels(db: Db, model: string, versions: string[], testSet: { source: "request" | "stored"; set: TestSet }): Promise<void> {
  for (const name of new Set(versions)) {
    const row = await findVersion(db, model, name);
    if (!row || row.status === "archived") continue;
    const request = testSet.source === "request";
    const issues = testSetLabelIssues(testSet.set, [toModelVersion(row).featureSchema.output], request ? "test_set." : "");
    if (!issues.length) continue;
    const first = `${issues[0].path}: ${issues[0].message}`;
    if (request) throw new ApiError("invalid_input", `test_set: ${issues.length} label(s) that ${model}@${name} cannot predict; first: ${first}`, issues.slice(0, 50));
    throw new ApiError("conflict", `the stored test set of ${model} has ${issues.length} label(s) that ${model}@${name} cannot predict; first: ${first}; store a new one with PUT /admin/deployments/test-sets/${model} or send test_set`, issues.slice(0, 50));
  }
}

/** Why a candidate would reject requests the stable version accepts; empty when compatible. */
export function schemaIncompatibilities(stable: FeatureSchema, candidate: FeatureSchema): string[] {
  const problems: string[] = [];
  const cand = new Map(candidate.features.map((f) => [f.name, f]));
  const old = new Map(stable.features.map((f) => [f.name, f]));
  for (const f of stable.features) {
    const c = cand.get(f.name);
    if (!c) {
      problems.push(`feature '${f.name}' is sent today but unknown to the candidate`);
      continue;
    }
    problems.push(...featureIncompatibility(f, c));
  }
  for (const c of candidate.features) {
    if (!old.has(c.name) && c.missing.policy === "reject") problems.push(`candidate requires feature '${c.name}', which requests do not carry today`);
  }
  return problems;
}

function featureIncompatibility(f: FeatureSpec, c: FeatureSpec): string[] {
  const numeric = (t: string) => t === "numeric" || t === "integer";
  if (!(f.type === c.type || (f.type === "integer" && c.type === "numeric"))) return [`feature '${f.name}' is ${f.type} today but ${c.type} in the candidate`];
  const out: string[] = [];
  if (numeric(f.type) && numeric(c.type)) {
    const fn = f as Extract<FeatureSpec, { type: "numeric" | "integer" }>;
    const cn = c as Extract<FeatureSpec, { type: "numeric" | "integer" }>;
    if (cn.min !== undefined && (fn.min === undefined || fn.min < cn.min)) out.push(`feature '${f.name}': candidate minimum ${cn.min} rejects values accepted today (${fn.min ?? "unbounded"})`);
    if (cn.max !== undefined && (fn.max === undefined || fn.max > cn.max)) out.push(`feature '${f.name}': candidate maximum ${cn.max} rejects values accepted today (${fn.max ?? "unbounded"})`);
  }
  if (f.type === "categorical" && c.type === "categorical") {
    const missing = f.categories.filter((k) => !c.categories.includes(k));
    if (missing.length) out.push(`feature '${f.name}': candidate lacks categories ${missing.join(", ")}`);
  }
  if (f.missing.policy !== "reject" && c.missing.policy === "reject") out.push(`feature '${f.name}' may be missing today but is required by the candidate`);
  return out;
}

function outputProblems(v: ModelVersion, predictions: Prediction[], cfg: ValidationConfig): string[] {
  const problems: string[] = [];
  predictions.forEach((p, i) => {
    if (problems.length >= 5) return;
    if ("probabilities" in p) {
      const values = Object.values(p.probabilities);
      const sum = values.reduce((a, b) => a + b, 0);
      if (!values.every((x) => Number.isFinite(x) && x >= 0 && x <= 1)) problems.push(`row ${i}: probabilities outside [0, 1]`);
      else if (Math.abs(sum - 1) > 1e-3) problems.push(`row ${i}: probabilities sum to ${sum.toFixed(4)}`);
    } else {
      if (!Number.isFinite(p.value)) problems.push(`row ${i}: value is not finite`);
      else if (cfg.output_min !== undefined && p.value < cfg.output_min) problems.push(`row ${i}: value ${p.value} < output_min ${cfg.output_min}`);
      else if (cfg.output_max !== undefined && p.value > cfg.output_max) problems.push(`row ${i}: value ${p.value} > output_max ${cfg.output_max}`);
    }
  });
  return problems;
}

async function scoreAll(env: Env, v: ModelVersion, rows: TestSet["rows"]): Promise<Prediction[]> {
  const chunk = intVar(env.MAX_BATCH_ROWS, 1000);
  const out: Prediction[] = [];
  for (let i = 0; i < rows.length; i += chunk) {
    const part = rows.slice(i, i + chunk).map((r) => r.features);
    const { predictions } = await score(env, v, part, (k) => `test_set.rows[${i + k}].features`);
    out.push(...predictions);
  }
  return out;
}

function binaryLabels(v: ModelVersion, rows: TestSet["rows"]): number[] | null {
  const out = v.featureSchema.output;
  if (out.kind !== "classifier" || out.classes.length !== 2) return null;
  const positive = String(out.positiveClass ?? out.classes[1]);
  const labelled = rows.filter((r) => r.label !== undefined);
  if (labelled.length !== rows.length) return null;
  const labels = labelled.map((r) => (String(r.label) === positive ? 1 : 0));
  return labels.includes(0) && labels.includes(1) ? labels : null;
}

function scoreOf(p: Prediction): number {
  return "score" in p ? p.score : p.value;
}

async function validateOne(env: Env, db: Db, model: string, versionName: string, stable: ModelVersion | null, stableAuc: number | null, testSet: TestSet | null, cfg: ValidationConfig): Promise<VersionReport> {
  const checks: Check[] = [];
  const done = () => ({ version: versionName, passed: checks.every((c) => c.passed), checks });
  const row = await findVersion(db, model, versionName);
  if (!row || row.status === "archived") {
    checks.push({ name: "exists", passed: false, detail: row ? `version ${versionName} is archived` : `version ${versionName} does not exist` });
    return done();
  }
  const v = toModelVersion(row);
  try {
    await loadModel(env, v);
    checks.push({ name: "loads", passed: true, detail: "session created" });
  } catch (error) {
    checks.push({ name: "loads", passed: false, detail: error instanceof ApiError ? error.message : "the artifact did not load" });
    return done();
  }
  if (stable) {
    const problems = schemaIncompatibilities(stable.featureSchema, v.featureSchema);
    checks.push({ name: "schema_compatible", passed: problems.length === 0, detail: problems.length ? problems.join("; ") : `accepts every request ${stable.version} accepts`, value: problems });
  } else {
    checks.push({ name: "schema_compatible", passed: true, detail: "no stable version to compare with" });
  }
  if (!testSet) {
    checks.push({ name: "test_set", passed: false, detail: `no test set: send "test_set" or store one with PUT /admin/deployments/test-sets/${model}` });
    return done();
  }
  let predictions: Prediction[];
  try {
    predictions = await scoreAll(env, v, testSet.rows);
    checks.push({ name: "scores_test_set", passed: true, detail: `${predictions.length} rows scored` });
  } catch (error) {
    const detail = error instanceof ApiError ? `${error.message}${error.details?.length ? `: ${error.details[0].path}: ${error.details[0].message}` : ""}` : "scoring failed";
    checks.push({ name: "scores_test_set", passed: false, detail });
    return done();
  }
  const problems = outputProblems(v, predictions, cfg);
  checks.push({ name: "outputs_in_bounds", passed: problems.length === 0, detail: problems.length ? problems.join("; ") : "all outputs within bounds" });

  const labels = binaryLabels(v, testSet.rows);
  if (labels) {
    const value = auc(labels, predictions.map(scoreOf));
    const floor = cfg.min_auc ?? (stableAuc !== null ? stableAuc - cfg.max_auc_drop : null);
    const source = cfg.min_auc !== undefined ? "min_auc" : stableAuc !== null ? `stable AUC ${stableAuc.toFixed(4)} - max_auc_drop ${cfg.max_auc_drop}` : "none";
    checks.push({
      name: "metric_floor",
      passed: floor === null || value >= floor,
      detail: floor === null ? `AUC ${value.toFixed(4)}; no floor configured and no stable version` : `AUC ${value.toFixed(4)} vs floor ${floor.toFixed(4)} (${source})`,
      value: { auc: value, floor },
    });
  } else if (v.featureSchema.output.kind === "regressor" && cfg.max_rmse !== undefined && testSet.rows.every((r) => typeof r.label === "number")) {
    const rmse = Math.sqrt(predictions.reduce((s, p, i) => s + (scoreOf(p) - (testSet.rows[i].label as number)) ** 2, 0) / predictions.length);
    checks.push({ name: "metric_floor", passed: rmse <= cfg.max_rmse, detail: `RMSE ${rmse.toFixed(4)} vs ceiling ${cfg.max_rmse}`, value: { rmse } });
  } else {
    const required = cfg.min_auc !== undefined || cfg.max_rmse !== undefined;
    checks.push({ name: "metric_floor", passed: !required, detail: required ? "a metric floor is configured but the test set has no usable labels" : "no labels or no metric for this task: not checked" });
  }

  const one = [testSet.rows[0].features];
  await score(env, v, one, () => "features");
  const started = performance.now();
  for (let i = 0; i < LATENCY_ITERATIONS; i++) await score(env, v, one, () => "features");
  const totalMs = performance.now() - started;
  const mean = totalMs / LATENCY_ITERATIONS;
  checks.push({
    name: "latency",
    passed: mean <= cfg.latency_budget_ms,
    detail: `mean single-row latency ${mean.toFixed(3)} ms over ${LATENCY_ITERATIONS} runs (budget ${cfg.latency_budget_ms} ms)${totalMs === 0 ? "; the clock did not advance (deployed Workers stop timers during CPU work), so this bound is not informative here" : ""}`,
    value: { mean_ms: mean, total_ms: totalMs, iterations: LATENCY_ITERATIONS, method: "elapsed wall time of sequential runs / iterations (timer granularity ~1 ms)" },
  });
  return done();
}

export async function validateVersions(
  env: Env,
  db: Db,
  model: string,
  versions: string[],
  baseline: string | null,
  testSet: { source: "request" | "stored"; set: TestSet } | null,
  cfg: ValidationConfig,
): Promise<ValidationReport> {
  const stableRow = baseline ? await findVersion(db, model, baseline) : undefined;
  const stable = stableRow ? toModelVersion(stableRow) : null;
  let stableAuc: number | null = null;
  if (stable && testSet) {
    const labels = binaryLabels(stable, testSet.set.rows);
    if (labels) {
      try {
        stableAuc = auc(labels, (await scoreAll(env, stable, testSet.set.rows)).map(scoreOf));
      } catch {
        stableAuc = null; // the stable version cannot score this set: no relative floor
      }
    }
  }
  const reports: VersionReport[] = [];
  for (const version of versions) reports.push(await validateOne(env, db, model, version, stable, stableAuc, testSet?.set ?? null, cfg));
  return {
    passed: reports.every((r) => r.passed),
    validated_at: new Date().toISOString(),
    baseline,
    test_set: { source: testSet?.source ?? "none", rows: testSet?.set.rows.length ?? 0, labelled: testSet?.set.rows.filter((r) => r.label !== undefined).length ?? 0 },
    versions: reports,
  };
}
