/**
 * Champion/challenger on the out-of-time set, and the release of a winner.
 *
 * The worker does not trust the trainer's numbers: it scores the job's OOT export itself with the
 * champion (registered version) and the candidate (staged by the trainer's signed upload, not yet
 * registered). Verdict: at least `min_oot_samples` labelled rows (binary classifiers: at least 10
 * of each class), and every configured business metric passing its paired-bootstrap rule at the
 * configured alpha (metrics.ts: objectives credibly better by more than `min_improvement`,
 * guardrails credibly not worse by more than `max_degradation`; default: AUC, or RMSE for
 * regressors, with `min_improvement`), so a candidate that only looks better by chance on a small
 * set is not released. The report lists every metric (both values, delta, bounds, verdict) and the
 * sizes. Pass: the candidate is registered and released as a canary deployment (the existing
 * deployments API functions: create, validate on the OOT rows, start); the deployments cron then
 * advances it and the watch (watch.ts) compares live metrics. Fail: the job is rejected with the
 * report and the staged artifact is dropped.
 */
import { createDeployment, deploymentsDb, applyChange, getDeployment, listDeployments } from "../deployments/store";
import { abort, start } from "../deployments/lifecycle";
import { validateVersions } from "../deployments/validation";
import { createDeploymentSchema, OPEN_STATES } from "../deployments/model";
import { ApiError } from "../http/errors";
import { score } from "../inference/predictor";
import { positiveClassOf } from "../monitoring/performance";
import { manifestSchema, type Manifest } from "../registry/manifest";
import { invalidateResolved } from "../registry/resolver";
import { artifactInUse, artifactKey, findVersion, getVersion, insertVersion, registryDb, toModelVersion, type ModelVersion } from "../registry/store";
import { auc } from "../stats/classification";
import { readExport, type ExportRow } from "./export";
import { ACTOR, announce, championOf, failJob } from "./jobs";
import { BINARY_METRICS, REGRESSION_METRICS, compareMetrics, directionOf, metricLabel, metricValue, type MetricComparison, type MetricSpec } from "./metrics";
import type { StoredConfig } from "./model";
import { getConfig, getJob, updateJob } from "./store";

export interface StagedCandidate {
  manifest: Manifest;
  sha256: string;
  size_bytes: number;
  ir_version: number;
  opsets: Record<string, number>;
  uploaded_at: string;
}

export function stagedKey(jobId: string): string {
  return `retraining/candidates/${jobId}.json`;
}

export async function stagedCandidate(env: Env, jobId: string): Promise<StagedCandidate | null> {
  const o = await env.ARTIFACTS.get(stagedKey(jobId));
  return o ? ((await o.json()) as StagedCandidate) : null;
}

/** The staged candidate as a version the inference layer can score (artifact already in R2). */
function asVersion(c: StagedCandidate): ModelVersion {
  const m = manifestSchema.parse(c.manifest);
  return {
    id: 0,
    modelName: m.name,
    version: m.version,
    major: 0,
    minor: 0,
    patch: 0,
    task: m.task,
    description: m.description,
    environment: m.environment,
    status: "registered",
    artifactKey: artifactKey(c.sha256),
    sha256: c.sha256,
    sizeBytes: c.size_bytes,
    irVersion: c.ir_version,
    opsets: c.opsets,
    metrics: m.metrics,
    featureSchema: m.featureSchema,
    reference: m.reference ?? null,
    createdAt: c.uploaded_at,
    createdBy: ACTOR,
  };
}

async function scores(env: Env, v: ModelVersion, rows: ExportRow[]): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < rows.length; i += 1000) {
    const chunk = rows.slice(i, i + 1000);
    const r = await score(env, v, chunk.map((x) => x.features), (k) => `oot[${i + k}]`);
    out.push(...r.columns.scores);
  }
  return out;
}

/** Seed of the paired bootstrap: the same OOT rows and models always give the same verdict. */
export const BOOTSTRAP_SEED = 20261201;

export interface ComparisonReport {
  passed: boolean;
  reasons: string[];
  task: "binary_classification" | "regression";
  oot: { rows: number; positives?: number; negatives?: number };
  /** AUC of each model (binary classifiers), as before business metrics were configurable. */
  champion: { version: string | null; auc: number | null };
  candidate: { version: string; auc: number | null; trainer_metrics: Record<string, number> };
  /** The AUC entry of `metrics` (estimate, lower bound, requirement) when AUC is configured. */
  difference: { estimate: number | null; lower_95: number | null; min_improvement: number };
  /** Every configured metric: champion, candidate, delta, one-sided bounds, verdict. */
  metrics: MetricComparison[];
  alpha: number;
  bootstrap: { iterations: number; seed: number };
  min_oot_samples: number;
  compared_at: string;
}

type ValidationConfig = StoredConfig["validation"];

/** The metrics a model's validation compares: the configured ones, else AUC (RMSE) with `min_improvement`. */
export function metricSpecs(v: ValidationConfig, task: "binary_classification" | "regression"): MetricSpec[] {
  if (v.metrics?.length) return v.metrics;
  return [{ name: task === "regression" ? "rmse" : "auc", min_improvement: v.min_improvement ?? 0 }];
}

/** Which configured metrics do not apply to a model of this task (empty: all apply). */
export function misfits(specs: readonly MetricSpec[], task: string): { index: number; message: string }[] {
  const allowed: readonly string[] = task === "regression" ? REGRESSION_METRICS : task === "binary_classification" ? BINARY_METRICS : [];
  return specs.flatMap((m, index) =>
    allowed.includes(m.name) ? [] : [{ index, message: task === "regression" || task === "binary_classification" ? `${m.name} does not apply to a ${task} model (use ${allowed.join(", ")})` : `champion/challenger validation supports binary classifiers and regressors, not ${task}` }],
  );
}

export async function compareOnOot(env: Env, jobId: string): Promise<ComparisonReport> {
  const db = registryDb(env.DB);
  const job = await getJob(db, jobId);
  const cfg = await getConfig(db, job.modelName);
  const staged = await stagedCandidate(env, jobId);
  if (!staged) throw new ApiError("conflict", `job ${jobId}: the trainer reported success but uploaded no candidate`);
  const candidate = asVersion(staged);
  const champion = job.championVersion ? toModelVersion(await getVersion(db, job.modelName, job.championVersion)) : null;
  const reference = champion ?? candidate;
  const positive = positiveClassOf(reference);
  const task = reference.task === "regression" ? "regression" : positive !== null ? "binary_classification" : null;
  if (task === null) throw new ApiError("conflict", "champion/challenger comparison supports binary classifiers and regressors only");
  if (champion && candidate.task !== champion.task) throw new ApiError("conflict", `candidate is a ${candidate.task} model, the champion a ${champion.task} model`);
  const v = cfg.config.validation;
  const specs = metricSpecs(v, task);
  const wrong = misfits(specs, task);
  if (wrong.length) throw new ApiError("conflict", `validation.metrics: ${wrong.map((w) => w.message).join("; ")}`);
  const settings = { alpha: v.alpha ?? 0.05, iterations: v.bootstrap_iterations ?? 1000, seed: BOOTSTRAP_SEED };
  const { min_oot_samples } = v;
  const minImprovement = v.min_improvement ?? 0;
  let rows = await readExport(env, jobId, "oot");
  let y: number[];
  if (task === "regression") {
    rows = rows.filter((r) => r.label !== null && r.label !== "" && Number.isFinite(Number(r.label)));
    y = rows.map((r) => Number(r.label));
  } else y = rows.map((r) => (String(r.label) === positive ? 1 : 0));
  const reasons: string[] = [];
  const positives = y.reduce((a, b) => a + b, 0);
  const report: ComparisonReport = {
    passed: false,
    reasons,
    task,
    oot: task === "regression" ? { rows: rows.length } : { rows: rows.length, positives, negatives: rows.length - positives },
    champion: { version: champion?.version ?? null, auc: null },
    candidate: { version: candidate.version, auc: null, trainer_metrics: (job.metrics as Record<string, number>) ?? {} },
    difference: { estimate: null, lower_95: null, min_improvement: minImprovement },
    metrics: [],
    alpha: settings.alpha,
    bootstrap: { iterations: settings.iterations, seed: settings.seed },
    min_oot_samples,
    compared_at: new Date().toISOString(),
  };
  if (task === "binary_classification" && (rows.length < min_oot_samples || positives < 10 || rows.length - positives < 10)) {
    reasons.push(`out-of-time set too small: ${rows.length} rows (${positives} positive) of ${min_oot_samples} needed, at least 10 per class`);
    return report;
  }
  if (task === "regression" && rows.length < min_oot_samples) {
    reasons.push(`out-of-time set too small: ${rows.length} rows with a numeric label of ${min_oot_samples} needed`);
    return report;
  }
  const candidateScores = await scores(env, candidate, rows);
  if (task === "binary_classification") report.candidate.auc = auc(y, candidateScores);
  if (!champion) {
    report.metrics = specs.map((spec) => ({ ...alone(spec, metricValue(spec, y, candidateScores)) }));
    report.passed = true;
    reasons.push("no champion to compare with");
    return report;
  }
  const championScores = await scores(env, champion, rows);
  if (task === "binary_classification") report.champion.auc = auc(y, championScores);
  report.metrics = compareMetrics(specs, y, candidateScores, championScores, settings);
  const aucEntry = report.metrics.find((m) => m.name === "auc");
  if (aucEntry) {
    report.difference.estimate = aucEntry.delta;
    report.difference.lower_95 = aucEntry.interval.lower;
    if ("min_improvement" in aucEntry.requirement) report.difference.min_improvement = aucEntry.requirement.min_improvement;
  }
  report.passed = report.metrics.every((m) => m.verdict === "pass");
  reasons.push(...report.metrics.map((m) => `${m.verdict}: ${m.detail}`));
  return report;
}

/** A metric entry when there is no champion to compare with (first model of a name). */
function alone(spec: MetricSpec, value: number | null): MetricComparison {
  const objective = spec.min_improvement !== undefined;
  return {
    metric: metricLabel(spec),
    name: spec.name,
    ...(spec.threshold !== undefined ? { threshold: spec.threshold } : {}),
    direction: directionOf(spec),
    role: objective ? "objective" : "guardrail",
    requirement: objective ? { min_improvement: spec.min_improvement! } : { max_degradation: spec.max_degradation! },
    champion: null,
    candidate: value,
    delta: null,
    improvement: null,
    interval: { lower: null, upper: null },
    resamples: 0,
    verdict: "pass",
    detail: "no champion to compare with",
  };
}

/** Workflow step: validating -> (report); rejected when it fails. Returns whether it passed. */
export async function validateJob(env: Env, jobId: string): Promise<boolean> {
  const db = registryDb(env.DB);
  await updateJob(db, jobId, (j) => (j.state === "training" ? { action: "validate", actor: ACTOR, state: "validating" } : null));
  const job = await getJob(db, jobId);
  if (job.state !== "validating") return false; // cancelled or failed meanwhile
  const report = await compareOnOot(env, jobId);
  if (report.passed) {
    await updateJob(db, jobId, (j) => ({ action: "validation_passed", actor: ACTOR, set: { report }, details: { reasons: report.reasons } }));
    return true;
  }
  const rejected = await updateJob(db, jobId, (j) => (j.state === "validating" ? { action: "reject", actor: ACTOR, state: "rejected", set: { report }, details: { reasons: report.reasons } } : null));
  const staged = await stagedCandidate(env, jobId);
  if (staged && !(await artifactInUse(db, staged.sha256))) await env.ARTIFACTS.delete(artifactKey(staged.sha256));
  await announce(env, rejected, "info", "retraining candidate rejected", report.reasons.join("; "));
  return false;
}

/** Workflow step: register the candidate, release it as a canary, job -> promoted. Idempotent on retry. */
export async function releaseJob(env: Env, jobId: string): Promise<void> {
  const db = registryDb(env.DB);
  const job = await getJob(db, jobId);
  if (job.state !== "validating") return;
  const cfg = await getConfig(db, job.modelName);
  const staged = await stagedCandidate(env, jobId);
  if (!staged) throw new ApiError("conflict", `job ${jobId}: staged candidate disappeared`);
  const manifest = manifestSchema.parse(staged.manifest);
  if (!job.deploymentId) {
    // What the release would stand on must still hold: the champion the candidate was compared with,
    // and no other deployment in progress. Otherwise the job fails once, with the reason, before
    // anything is registered (a retried step cannot change either).
    const champion = await championOf(db, job.modelName);
    if (champion !== job.championVersion) {
      await failJob(env, jobId, `the champion moved from ${job.championVersion ?? "none"} to ${champion ?? "none"} while the job ran; the candidate was validated against ${job.championVersion ?? "no champion"}, so it was not released (start a new job)`);
      return;
    }
    const [open] = await listDeployments(deploymentsDb(env.DB), { model: job.modelName, states: [...OPEN_STATES] }, 1);
    if (open) {
      await failJob(env, jobId, `model '${job.modelName}' has an open deployment ${open.id} (${open.state}); the candidate was not released (complete or abort it, then start a new job)`);
      return;
    }
  }
  const existing = await findVersion(db, job.modelName, manifest.version);
  if (existing && existing.sha256 !== staged.sha256) throw new ApiError("conflict", `version ${manifest.version} of '${job.modelName}' already exists with another artifact`);
  if (!existing) {
    await insertVersion(db, { manifest, sha256: staged.sha256, sizeBytes: staged.size_bytes, irVersion: staged.ir_version, opsets: staged.opsets, actor: `${ACTOR}:${jobId}`, aliases: [] });
    invalidateResolved(job.modelName);
  }
  const ddb = deploymentsDb(env.DB);
  let deploymentId = job.deploymentId;
  if (!deploymentId) {
    const input = createDeploymentSchema.parse({
      model: job.modelName,
      strategy: "canary",
      version: manifest.version,
      steps: cfg.config.release.steps,
      analysis: { step_minutes: cfg.config.release.step_minutes },
      reason: `retraining job ${jobId}`,
      ...(job.championVersion ? { baseline: job.championVersion } : {}),
    });
    const d = await createDeployment(ddb, env, input, `${ACTOR}:${jobId}`);
    deploymentId = d.id;
    await updateJob(db, jobId, () => ({ action: "release", actor: ACTOR, set: { candidateVersion: manifest.version, deploymentId }, details: { deployment: deploymentId, version: manifest.version } }));
  }
  // Validate and start (again, on a retried step: a deployment created by an earlier attempt).
  let d = await getDeployment(ddb, deploymentId);
  if (d.state === "validating") {
    if (d.validationStatus !== "passed") {
      const rows = (await readExport(env, jobId, "oot")).map((r) => ({ features: r.features as Record<string, unknown>, label: r.label }));
      const report = await validateVersions(env, ddb, job.modelName, [manifest.version], d.baselineVersion, { source: "request", set: { rows } }, d.config.validation);
      d = await applyChange(ddb, env, d, { action: "validate", actor: `${ACTOR}:${jobId}`, validationStatus: report.passed ? "passed" : "failed", validation: report, details: { passed: report.passed } });
      if (!report.passed) {
        await abort(ddb, env, d, `${ACTOR}:${jobId}`, "candidate failed deployment validation");
        throw new ApiError("conflict", `deployment validation failed: ${report.versions.flatMap((v) => v.checks.filter((c) => !c.passed).map((c) => `${c.name}: ${c.detail}`)).join("; ")}`);
      }
    }
    d = await start(ddb, env, d, `${ACTOR}:${jobId}`, `retraining job ${jobId}`);
  } else if (!["active", "promoting", "paused", "completed"].includes(d.state)) {
    throw new ApiError("conflict", `deployment ${d.id} of job ${jobId} is ${d.state}; the candidate was not released`);
  }
  const now = Date.now();
  const promoted = await updateJob(db, jobId, (j) =>
    j.state === "validating"
      ? { action: "promote", actor: ACTOR, state: "promoted", set: { candidateVersion: manifest.version, deploymentId, promotedAt: now, watchUntil: now + cfg.config.watch.hours * 3_600_000 }, details: { deployment: deploymentId, version: manifest.version } }
      : null,
  );
  await announce(env, promoted, "info", `retrained ${manifest.version} released as a canary`, `deployment ${deploymentId}; watched for ${cfg.config.watch.hours} h`);
}
