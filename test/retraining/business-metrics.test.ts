/**
 * Business metrics of the champion/challenger validation (src/retraining/metrics.ts and
 * validate.ts): every metric value against an independent computation on fixed data, the bootstrap
 * weights against explicit resamples, the decision rule (an A/A comparison never promotes, and
 * exchangeable challengers promote at about alpha; a real improvement passes; a guardrail
 * violation rejects), the config's 4xx answers, and the whole comparison on real ONNX models
 * (scored in workerd, exports and staged candidates in R2, jobs in D1).
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { registryDb, getVersion } from "../../src/registry/store";
import { exportKey, gzip } from "../../src/retraining/export";
import { compareMetrics, metricValue, weightedValue, type MetricSpec } from "../../src/retraining/metrics";
import { createJob } from "../../src/retraining/store";
import { compareOnOot, stagedKey, type StagedCandidate } from "../../src/retraining/validate";
import { auc as statsAuc, brier as statsBrier, ks as statsKs, logLoss as statsLogLoss } from "../../src/stats/classification";
import { mulberry32 } from "../../src/stats/random";
import { ADMIN, call, registerStem } from "../support/api";
import { repoJson, repoText } from "../support/files";
import { configBody, holdout, setupModel } from "./helpers";

// ---- independent reference implementations (brute force, straight from the definitions) ----
function refAuc(y: number[], s: number[]): number {
  let wins = 0;
  let pairs = 0;
  for (let i = 0; i < y.length; i++)
    for (let j = 0; j < y.length; j++)
      if (y[i] === 1 && y[j] === 0) {
        pairs++;
        wins += s[i] > s[j] ? 1 : s[i] === s[j] ? 0.5 : 0;
      }
  return wins / pairs;
}
function refKs(y: number[], s: number[]): number {
  const P = y.filter((v) => v === 1).length;
  const N = y.length - P;
  let best = 0;
  for (const t of s) {
    const fp = y.filter((v, i) => v === 1 && s[i] <= t).length / P;
    const fn = y.filter((v, i) => v === 0 && s[i] <= t).length / N;
    best = Math.max(best, Math.abs(fp - fn));
  }
  return best;
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const refLogLoss = (y: number[], s: number[]) => mean(y.map((v, i) => -(v * Math.log(s[i]) + (1 - v) * Math.log(1 - s[i]))));
const refBrier = (y: number[], s: number[]) => mean(y.map((v, i) => (s[i] - v) ** 2));
function refAtThreshold(y: number[], s: number[], t: number) {
  const pred = s.map((v) => v > t);
  const tp = pred.filter((p, i) => p && y[i] === 1).length;
  return { precision: tp / pred.filter(Boolean).length, recall: tp / y.filter((v) => v === 1).length, approval_rate: pred.filter((p) => !p).length / s.length };
}
const refRmse = (y: number[], s: number[]) => Math.sqrt(mean(y.map((v, i) => (s[i] - v) ** 2)));
const refMae = (y: number[], s: number[]) => mean(y.map((v, i) => Math.abs(s[i] - v)));

// Fixed data with ties across classes (0.7 and 0.4 appear for both labels).
const Y = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1];
const S = [0.9, 0.7, 0.7, 0.4, 0.35, 0.7, 0.4, 0.3, 0.2, 0.1, 0.05, 0.6];

function normal(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

describe("metric values", () => {
  it("match brute-force references on fixed data (with ties)", () => {
    const v = (spec: MetricSpec) => metricValue(spec, Y, S)!;
    expect(v({ name: "auc" })).toBeCloseTo(refAuc(Y, S), 12);
    expect(v({ name: "auc" })).toBeCloseTo(statsAuc(Y, S), 12);
    expect(v({ name: "gini" })).toBeCloseTo(2 * refAuc(Y, S) - 1, 12);
    expect(v({ name: "ks_statistic" })).toBeCloseTo(refKs(Y, S), 12);
    expect(v({ name: "ks_statistic" })).toBeCloseTo(statsKs(Y, S), 12);
    expect(v({ name: "log_loss" })).toBeCloseTo(refLogLoss(Y, S), 12);
    expect(v({ name: "log_loss" })).toBeCloseTo(statsLogLoss(Y, S), 12);
    expect(v({ name: "brier" })).toBeCloseTo(refBrier(Y, S), 12);
    expect(v({ name: "brier" })).toBeCloseTo(statsBrier(Y, S), 12);
    for (const t of [0.3, 0.5, 0.7]) {
      const r = refAtThreshold(Y, S, t);
      expect(v({ name: "precision", threshold: t })).toBeCloseTo(r.precision, 12);
      expect(v({ name: "recall", threshold: t })).toBeCloseTo(r.recall, 12);
      expect(v({ name: "approval_rate", threshold: t })).toBeCloseTo(r.approval_rate, 12);
    }
    // By hand: 6 positives x 6 negatives = 36 pairs; the positive at 0.9 beats all 6 negatives...
    // 0.9: 6; 0.7, 0.7: 5.5 each (tie with the negative 0.7); 0.6: 5; 0.4: 4.5 (tie); 0.35: 4 -> 30.5/36.
    expect(v({ name: "auc" })).toBeCloseTo(30.5 / 36, 12);
    // Precision at 0.5: predicted positive {0.9, 0.7, 0.7, 0.7(neg), 0.6}: 4 of 5; approval 7/12.
    expect(v({ name: "precision", threshold: 0.5 })).toBeCloseTo(4 / 5, 12);
    expect(v({ name: "approval_rate", threshold: 0.5 })).toBeCloseTo(7 / 12, 12);
    const target = [3, 5, 2.5, 7];
    const pred = [2.5, 5, 4, 8];
    expect(metricValue({ name: "rmse" }, target, pred)).toBeCloseTo(refRmse(target, pred), 12);
    expect(metricValue({ name: "rmse" }, target, pred)).toBeCloseTo(Math.sqrt((0.25 + 0 + 2.25 + 1) / 4), 12);
    expect(metricValue({ name: "mae" }, target, pred)).toBeCloseTo(refMae(target, pred), 12);
  });

  it("on bootstrap weights equal the metric on the explicitly resampled rows", () => {
    const rand = mulberry32(7);
    const specs: MetricSpec[] = [{ name: "auc" }, { name: "ks_statistic" }, { name: "log_loss" }, { name: "brier" }, { name: "precision", threshold: 0.5 }, { name: "recall", threshold: 0.5 }, { name: "approval_rate", threshold: 0.5 }];
    for (let trial = 0; trial < 20; trial++) {
      const w = new Array(Y.length).fill(0);
      for (let i = 0; i < Y.length; i++) w[Math.floor(rand() * Y.length)]++;
      const y: number[] = [];
      const s: number[] = [];
      w.forEach((c, i) => {
        for (let k = 0; k < c; k++) (y.push(Y[i]), s.push(S[i]));
      });
      if (!y.includes(1) || !y.includes(0)) continue;
      for (const spec of specs) {
        const expected = spec.name === "auc" ? refAuc(y, s) : spec.name === "ks_statistic" ? refKs(y, s) : spec.name === "log_loss" ? refLogLoss(y, s) : spec.name === "brier" ? refBrier(y, s) : refAtThreshold(y, s, 0.5)[spec.name as "precision"];
        const got = weightedValue(spec, Y, S, w);
        if (Number.isNaN(expected)) expect(got).toBeNull();
        else expect(got, `${spec.name} trial ${trial}`).toBeCloseTo(expected, 12);
      }
    }
  });
});

describe("decision rule", () => {
  const settings = { alpha: 0.05, iterations: 400, seed: 20261201 };
  const ALL: MetricSpec[] = [
    { name: "auc", min_improvement: 0 },
    { name: "ks_statistic", min_improvement: 0 },
    { name: "log_loss", min_improvement: 0 },
    { name: "brier", max_degradation: 0.01 },
    { name: "approval_rate", threshold: 0.5, max_degradation: 0.1 },
  ];

  function world(seed: number, n: number) {
    const rand = mulberry32(seed);
    const z = Array.from({ length: n }, () => normal(rand));
    const y = z.map((v) => (rand() < sigmoid(v) ? 1 : 0));
    return { rand, z, y };
  }

  it("A/A, the champion against itself: nothing is better, no guardrail is violated, not promoted", () => {
    const { z, y } = world(1, 500);
    const s = z.map(sigmoid);
    const out = compareMetrics(ALL, y, s, s, settings);
    expect(out.map((m) => m.metric)).toEqual(["auc", "ks_statistic", "log_loss", "brier", "approval_rate@0.5"]);
    for (const m of out) {
      expect(m.delta).toBe(0);
      expect(m.interval).toEqual({ lower: 0, upper: 0 });
      expect(m.verdict).toBe(m.role === "objective" ? "fail" : "pass");
    }
    expect(out.every((m) => m.verdict === "pass")).toBe(false);
  });

  it("A/A, exchangeable challengers (same signal, independent noise): promoted at most about alpha of the time", () => {
    let promoted = 0;
    const trials = 200;
    for (let t = 0; t < trials; t++) {
      const { rand, z, y } = world(100 + t, 300);
      const champion = z.map((v) => sigmoid(v + normal(rand)));
      const challenger = z.map((v) => sigmoid(v + normal(rand)));
      const out = compareMetrics([{ name: "auc", min_improvement: 0 }], y, challenger, champion, { ...settings, iterations: 200, seed: 20261201 + t });
      if (out[0].verdict === "pass") promoted++;
    }
    console.log(`A/A exchangeable challengers: ${promoted} of ${trials} promoted at alpha 0.05 (one-sided)`);
    // Binomial(200, 0.05) has mean 10; above 20 has probability < 0.002 if the rule holds its level.
    expect(promoted).toBeLessThanOrEqual(20);
  });

  it("a real improvement passes every metric; a guardrail violation rejects with the metric named", () => {
    const { rand, z, y } = world(2, 800);
    const champion = z.map((v) => sigmoid(0.4 * v + 0.8 * normal(rand)));
    const challenger = z.map(sigmoid);
    const out = compareMetrics(ALL, y, challenger, champion, settings);
    for (const m of out) expect(m.verdict, m.detail).toBe("pass");
    expect(out[0].improvement!).toBeGreaterThan(0);
    expect(out[0].interval.lower!).toBeGreaterThan(0);
    // log loss is lower-is-better: the improvement is champion - challenger.
    expect(out[2].improvement).toBeCloseTo(-(out[2].candidate! - out[2].champion!), 5);
    // The same better challenger, shifted up: it ranks the same (AUC unchanged) but approves far fewer.
    const harsh = challenger.map((p) => sigmoid(Math.log(p / (1 - p)) + 1.5));
    const rejected = compareMetrics(ALL, y, harsh, champion, settings);
    expect(rejected[0].verdict).toBe("pass");
    const approval = rejected.find((m) => m.name === "approval_rate")!;
    expect(approval.verdict).toBe("fail");
    expect(approval.detail).toMatch(/guardrail violated: credibly worse by more than 0.1/);
    expect(approval.candidate).toBeCloseTo(refAtThreshold(y, harsh, 0.5).approval_rate, 5);
    expect(approval.champion).toBeCloseTo(refAtThreshold(y, champion, 0.5).approval_rate, 5);
    expect(rejected.every((m) => m.verdict === "pass")).toBe(false);
  });
});

// ---- the whole comparison on real models, through D1, R2 and the ONNX runtime ----

async function predictScores(model: string, rows: { features: Record<string, unknown> }[]): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < rows.length; i += 100) {
    const res = await call("POST", `/v1/models/${model}/predict`, { instances: rows.slice(i, i + 100).map((r) => r.features) });
    expect(res.status, res.text).toBe(200);
    out.push(...res.json.predictions.map((p: { score?: number; value?: number }) => p.score ?? p.value));
  }
  return out;
}

/** A job for `model` whose OOT export holds `rows` and whose staged candidate is `stem` (registered under `source`). */
async function jobWith(model: string, rows: { features: Record<string, unknown>; label: unknown }[], source: string, stem: string, dir = "models") {
  const db = registryDb(env.DB);
  const job = await createJob(db, { model, triggerType: "manual", reason: "business metrics test", championVersion: "1.0.0", actor: "test" });
  const ndjson = rows.map((r, i) => JSON.stringify({ request_id: `r${i}`, row: 0, at: i, version: "1.0.0", features: r.features, score: 0, label: r.label })).join("\n") + "\n";
  await env.ARTIFACTS.put(exportKey(job.id, "oot"), await gzip(ndjson));
  const original = await repoJson(`${dir}/${stem}.manifest.json`);
  const v = await getVersion(db, source, original.version);
  const manifest = { ...original, name: model, version: "9.0.0" };
  const staged: StagedCandidate = { manifest, sha256: v.sha256, size_bytes: v.sizeBytes, ir_version: v.irVersion, opsets: v.opsets as Record<string, number>, uploaded_at: new Date().toISOString() };
  await env.ARTIFACTS.put(stagedKey(job.id), JSON.stringify(staged));
  return job.id;
}

describe("champion/challenger on real models", () => {
  const METRICS = [
    { name: "auc", min_improvement: 0 },
    { name: "ks_statistic", min_improvement: 0 },
    { name: "gini", max_degradation: 0.02 },
    { name: "log_loss", max_degradation: 0.05 },
    { name: "brier", max_degradation: 0.02 },
    { name: "precision", threshold: 0.5, max_degradation: 0.1 },
    { name: "recall", threshold: 0.5, max_degradation: 0.1 },
  ];

  it("refuses bad metric configs with 422 naming the field, and stores nothing", async () => {
    await setupModel("bm-cfg");
    const before = (await call("GET", "/admin/retraining/bm-cfg/config", undefined, ADMIN)).json;
    const bad = async (metrics: unknown[], path: string, message: RegExp) => {
      const res = await call("PUT", "/admin/retraining/bm-cfg/config", configBody({ validation: { min_oot_samples: 60, metrics } }), ADMIN);
      expect(res.status, res.text).toBe(422);
      const issue = res.json.error.details.find((d: { path: string }) => d.path === path);
      expect(issue, JSON.stringify(res.json.error.details)).toBeTruthy();
      expect(issue.message).toMatch(message);
    };
    await bad([{ name: "precision", min_improvement: 0 }], "validation.metrics[0].threshold", /give threshold/);
    await bad([{ name: "auc", threshold: 0.5, min_improvement: 0 }], "validation.metrics[0].threshold", /takes no threshold/);
    await bad([{ name: "auc", direction: "lower", min_improvement: 0 }], "validation.metrics[0].direction", /higher is better \(fixed/);
    await bad([{ name: "auc", min_improvement: 0, max_degradation: 0.1 }], "validation.metrics[0].min_improvement", /exactly one/);
    await bad([{ name: "auc" }], "validation.metrics[0].min_improvement", /exactly one/);
    await bad([{ name: "brier", max_degradation: 0.01 }], "validation.metrics", /at least one metric needs min_improvement/);
    await bad([{ name: "auc", min_improvement: 0 }, { name: "auc", max_degradation: 0.01 }], "validation.metrics[1].name", /listed twice/);
    await bad([{ name: "accuracy", min_improvement: 0 }], "validation.metrics[0].name", /Invalid|expected/i);
    // Fits the schema but not the model: a binary classifier has no RMSE.
    await bad([{ name: "rmse", min_improvement: 0 }], "validation.metrics[0].name", /rmse does not apply to a binary_classification model/);
    const after = (await call("GET", "/admin/retraining/bm-cfg/config", undefined, ADMIN)).json;
    expect(after).toEqual(before);
    const ok = await call("PUT", "/admin/retraining/bm-cfg/config", configBody({ validation: { min_oot_samples: 60, metrics: [...METRICS, { name: "approval_rate", threshold: 0.3, direction: "higher", max_degradation: 0.05 }] } }), ADMIN);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json.validation).toMatchObject({ alpha: 0.05, bootstrap_iterations: 1000 });
    expect(ok.json.validation.metrics).toHaveLength(8);
  });

  it("A/A: the champion's own artifact as the candidate is not promoted; every metric is reported and matches the reference", async () => {
    const model = "bm-aa";
    await setupModel(model, { validation: { min_oot_samples: 60, metrics: METRICS } });
    const rows = (await holdout()).slice(0, 400);
    const jobId = await jobWith(model, rows, model, "credit-risk-lr");
    const report = await compareOnOot(env, jobId);
    expect(report.passed).toBe(false);
    expect(report.metrics.map((m) => m.metric)).toEqual(["auc", "ks_statistic", "gini", "log_loss", "brier", "precision@0.5", "recall@0.5"]);
    const y = rows.map((r) => r.label);
    const s = await predictScores(model, rows);
    const ref: Record<string, number> = { auc: refAuc(y, s), ks_statistic: refKs(y, s), gini: 2 * refAuc(y, s) - 1, log_loss: refLogLoss(y, s), brier: refBrier(y, s), "precision@0.5": refAtThreshold(y, s, 0.5).precision, "recall@0.5": refAtThreshold(y, s, 0.5).recall };
    for (const m of report.metrics) {
      expect(m.champion, m.metric).toBeCloseTo(ref[m.metric], 12);
      expect(m.candidate).toBe(m.champion);
      expect(m.delta).toBe(0);
      expect(m.interval).toEqual({ lower: 0, upper: 0 });
      expect(m.verdict).toBe(m.role === "objective" ? "fail" : "pass");
    }
    expect(report.reasons.join("\n")).toMatch(/auc improves by 0: not credibly more than 0/);
    expect(report).toMatchObject({ alpha: 0.05, bootstrap: { iterations: 1000, seed: 20261201 }, oot: { rows: 400 } });
    // The fields clients read before business metrics were configurable are still there.
    // At full precision (issue 11: JSON carries full precision, only the CLI rounds for display).
    expect(report.champion.auc).toBeCloseTo(ref.auc, 12);
    expect(report.candidate.auc).toBeCloseTo(ref.auc, 12);
    expect(report.champion.auc).toBe(report.metrics[0].champion);
    expect(report.difference).toEqual({ estimate: 0, lower_95: 0, min_improvement: 0 });
  });

  it("the default (no metrics configured) is AUC with min_improvement, and an identical candidate is not promoted", async () => {
    const model = "bm-default";
    await setupModel(model);
    const jobId = await jobWith(model, (await holdout()).slice(0, 300), model, "credit-risk-lr");
    const report = await compareOnOot(env, jobId);
    expect(report.passed).toBe(false);
    expect(report.metrics).toHaveLength(1);
    expect(report.metrics[0]).toMatchObject({ metric: "auc", role: "objective", requirement: { min_improvement: 0 }, verdict: "fail" });
  });

  it("a real improvement passes; the same candidate is rejected by an approval-rate guardrail it breaks", async () => {
    // Labels from a world the tree ensemble describes exactly (label = its score above the median).
    const gbt = await registerStem("models", "credit-risk-gbt", ["champion"], { name: "bm-gbt-source" });
    expect(gbt.status, JSON.stringify(gbt.json)).toBe(201);
    const all = await holdout();
    const gbtScores = await predictScores("bm-gbt-source", all);
    const median = [...gbtScores].sort((a, b) => a - b)[Math.floor(all.length / 2)];
    const rows = all.map((r, i) => ({ features: r.features, label: gbtScores[i] > median ? 1 : 0 }));

    await setupModel("bm-better", { validation: { min_oot_samples: 60, min_improvement: 0, metrics: METRICS.slice(0, 2) } });
    const better = await compareOnOot(env, await jobWith("bm-better", rows, "bm-gbt-source", "credit-risk-gbt"));
    for (const m of better.metrics) expect(m.verdict, m.detail).toBe("pass");
    expect(better.passed).toBe(true);
    const y = rows.map((r) => r.label);
    expect(better.metrics[0].candidate).toBeCloseTo(refAuc(y, gbtScores), 5);

    // Better at ranking, but it approves more applicants than the risk appetite allows: a guardrail
    // "approval rate must not rise" (direction lower, max_degradation 0) at the threshold where the
    // candidate approves the most more than the champion (by an independent count).
    const lrScores = await predictScores("bm-better", all);
    const grid = Array.from({ length: 19 }, (_, k) => (k + 1) / 20);
    const rise = (t: number) => refAtThreshold(y, gbtScores, t).approval_rate - refAtThreshold(y, lrScores, t).approval_rate;
    const t = grid.reduce((a, b) => (rise(b) > rise(a) ? b : a));
    expect(rise(t)).toBeGreaterThan(0.02);
    await setupModel("bm-guard", { validation: { min_oot_samples: 60, metrics: [...METRICS.slice(0, 2), { name: "approval_rate", threshold: t, direction: "lower", max_degradation: 0 }] } });
    const guarded = await compareOnOot(env, await jobWith("bm-guard", rows, "bm-gbt-source", "credit-risk-gbt"));
    expect(guarded.passed).toBe(false);
    expect(guarded.metrics.slice(0, 2).map((m) => m.verdict)).toEqual(["pass", "pass"]);
    const guard = guarded.metrics[2];
    expect(guard).toMatchObject({ metric: `approval_rate@${t}`, direction: "lower", role: "guardrail", verdict: "fail" });
    expect(guard.champion).toBeCloseTo(refAtThreshold(y, lrScores, t).approval_rate, 5);
    expect(guard.candidate).toBeCloseTo(refAtThreshold(y, gbtScores, t).approval_rate, 5);
    expect(guard.improvement).toBeCloseTo(-rise(t), 5);
    console.log(`guardrail broken by the better-ranking candidate: ${guard.metric} champion ${guard.champion}, candidate ${guard.candidate}, interval ${JSON.stringify(guard.interval)}`);
    expect(guarded.reasons.join("\n")).toMatch(/approval_rate@[\d.]+ guardrail violated: credibly worse by more than 0/);
  });

  it("regressors: RMSE and MAE on the OOT rows; an identical candidate is not promoted", async () => {
    const model = "bm-reg";
    const reg = await registerStem("test/fixtures/onnx", "tree-regressor", ["champion"], { name: model });
    expect(reg.status, JSON.stringify(reg.json)).toBe(201);
    const cfg = await call("PUT", `/admin/retraining/${model}/config`, configBody({ validation: { min_oot_samples: 60, metrics: [{ name: "rmse", min_improvement: 0 }, { name: "mae", max_degradation: 1 }] } }), ADMIN);
    expect(cfg.status, cfg.text).toBe(200);
    const bad = await call("PUT", `/admin/retraining/${model}/config`, configBody({ validation: { min_oot_samples: 60, metrics: [{ name: "auc", min_improvement: 0 }] } }), ADMIN);
    expect(bad.status).toBe(422);
    expect(bad.json.error.details[0]).toMatchObject({ path: "validation.metrics[0].name", message: expect.stringMatching(/auc does not apply to a regression model/) });
    const lines = (await repoText("test/fixtures/onnx/tree-regressor.train.csv")).trim().split("\n").slice(1);
    const rows = lines.map((l) => {
      const [age, income, home, records, label] = l.split(",");
      // An empty cell is a missing value (the manifest's policy imputes it).
      const features = Object.fromEntries(
        Object.entries({ Age: age, Income: income, Home: home, Records: records })
          .filter(([, v]) => v !== "")
          .map(([k, v]) => [k, k === "Home" ? v : k === "Records" ? v === "true" : Number(v)]),
      );
      return { features, label: Number(label) };
    });
    const report = await compareOnOot(env, await jobWith(model, rows, model, "tree-regressor", "test/fixtures/onnx"));
    expect(report.task).toBe("regression");
    expect(report.passed).toBe(false);
    const y = rows.map((r) => r.label);
    const s = await predictScores(model, rows);
    expect(report.metrics[0]).toMatchObject({ metric: "rmse", direction: "lower", verdict: "fail", delta: 0 });
    expect(report.metrics[0].champion).toBeCloseTo(refRmse(y, s), 4);
    expect(report.metrics[1]).toMatchObject({ metric: "mae", direction: "lower", verdict: "pass" });
    expect(report.metrics[1].champion).toBeCloseTo(refMae(y, s), 4);
  });
});
