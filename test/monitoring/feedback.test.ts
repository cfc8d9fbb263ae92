/**
 * Delayed labels: POST /v1/feedback joins outcomes to logged predictions (by request id and row),
 * live performance is computed from the joined pairs and compared with the registered metrics,
 * and every joined label is re-emitted as a FeedbackEvent (what deployments' bandits consume).
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { livePerformance } from "../../src/monitoring/performance";
import { logShardName } from "../../src/monitoring/config";
import { onFeedback, type FeedbackEvent } from "../../src/serving/events";
import { binaryMetrics } from "../../src/stats/classification";
import { call, registerStem } from "../support/api";
import { repoJson } from "../support/files";
import { eventually } from "./helpers";

let holdout: { features: Record<string, unknown>; label: number }[];
let manifest: any;
const feedbackEvents: FeedbackEvent[] = [];
onFeedback(async (_env, e) => {
  feedbackEvents.push(e);
});

beforeAll(async () => {
  expect((await registerStem("models", "credit-risk-lr", ["champion"])).status).toBe(201);
  holdout = (await repoJson("models/credit-risk-holdout.json")).rows;
  manifest = await repoJson("models/credit-risk-lr.manifest.json");
});

describe("POST /v1/feedback", () => {
  it("joins labels to logged predictions; live metrics reproduce the registered holdout metrics", async () => {
    const res = await call("POST", "/v1/models/credit-risk/predict", { instances: holdout.map((r) => r.features) }, { "x-request-id": "holdout-batch" });
    expect(res.status).toBe(200);
    const id = res.json.request_id;
    const scores: number[] = res.json.predictions.map((p: any) => p.score);

    // The log is written from waitUntil; wait until the request's rows are there.
    await eventually(async () => {
      const entries = await env.PREDICTION_LOG.getByName(logShardName("credit-risk", id, 4)).entries(id);
      expect(entries).toHaveLength(891);
    });
    const fb = await call("POST", "/v1/feedback", { model: "credit-risk", feedback: holdout.map((r, row) => ({ request_id: id, row, actual: r.label })) });
    expect(fb.status, fb.text).toBe(200);
    expect(fb.json).toMatchObject({ joined: 891, duplicates: [], not_found: [] });

    const perf = await call("GET", "/v1/monitoring/models/credit-risk/performance?window=7d");
    expect(perf.status).toBe(200);
    const live = perf.json.versions[0];
    expect(live.n).toBe(891);
    const local = binaryMetrics(holdout.map((r) => r.label), scores);
    for (const k of ["auc", "ks", "gini", "log_loss", "brier", "accuracy"] as const) {
      expect(Math.abs(live.metrics[k] - local[k]), k).toBeLessThan(2e-6);
      // The registered metrics were computed on this same holdout at training time.
      expect(Math.abs(live.metrics[k] - manifest.metrics[k]), k).toBeLessThan(1e-4);
      expect(Math.abs(live.degradation[k].degradation), k).toBeLessThan(1e-4);
    }
    expect(live.metrics.precision).toBeGreaterThan(0);
    expect(live.metrics.recall).toBeGreaterThan(0);
    expect(live.metrics.f1).toBeGreaterThan(0);
  });

  it("reports duplicates and unknown request ids, and emits one FeedbackEvent per joined label", async () => {
    const res = await call("POST", "/v1/models/credit-risk/predict", { features: holdout[0].features });
    const score = res.json.prediction.score;
    const single = res.json.request_id;
    await eventually(async () => expect(await env.PREDICTION_LOG.getByName(logShardName("credit-risk", single, 4)).entries(single)).toHaveLength(1));
    const first = await call("POST", "/v1/feedback", { model: "credit-risk", feedback: [{ request_id: single, actual: 1 }, { request_id: "never-seen", actual: 0 }] });
    // An id the worker did not generate (not a UUIDv7) is never logged: its label is not_found at once, not kept pending.
    expect(first.json).toMatchObject({ joined: 1, duplicates: [], not_found: [{ request_id: "never-seen", row: 0 }], pending: [] });
    const again = await call("POST", "/v1/feedback", { model: "credit-risk", feedback: [{ request_id: single, actual: 0 }] });
    expect(again.json).toMatchObject({ joined: 0, duplicates: [{ request_id: single, row: 0 }] });

    const event = await eventually(async () => {
      const e = feedbackEvents.find((f) => f.requestId === single);
      expect(e).toBeDefined();
      return e!;
    });
    expect(event).toMatchObject({ model: "credit-risk", version: "1.0.0", row: 0, actual: 1, score });
    expect(feedbackEvents.filter((f) => f.requestId === single)).toHaveLength(1);
  });

  it("validates the body and names the bad field", async () => {
    const res = await call("POST", "/v1/feedback", { model: "credit-risk", feedback: [{ request_id: "x", row: -1, actual: 1 }] });
    expect(res.status).toBe(422);
    expect(res.json.error.details[0].path).toBe("feedback[0].row");
    expect((await call("POST", "/v1/feedback", { model: "credit-risk", feedback: [] })).status).toBe(422);
  });
});

describe("live performance per task", () => {
  it("regression: RMSE, MAE and R^2 as scikit-learn computes them", async () => {
    const ref = await repoJson("test/fixtures/stats/reference.json");
    const rows = ref.regression.actual.map((a: number, i: number) => ({ requestId: `r${i}`, row: 0, predictedAt: 0, labelledAt: 0, score: ref.regression.predicted[i], predicted: null, actual: String(a) }));
    const perf = livePerformance({ task: "regression", featureSchema: { output: { kind: "regressor", value: "v" } } as any, metrics: { rmse: 3.5 } }, rows);
    expect(perf.metrics.rmse).toBeCloseTo(ref.regression.expected.rmse, 5);
    expect(perf.metrics.mae).toBeCloseTo(ref.regression.expected.mae, 5);
    expect(perf.metrics.r2).toBeCloseTo(ref.regression.expected.r2, 5);
    expect(perf.degradation.rmse.degradation).toBeCloseTo(perf.metrics.rmse - 3.5, 5);
  });

  it("multiclass: accuracy and macro precision / recall / F1 from predicted labels", async () => {
    const ref = await repoJson("test/fixtures/stats/reference.json");
    const rows = ref.multiclass.actual.map((a: number, i: number) => ({ requestId: `m${i}`, row: 0, predictedAt: 0, labelledAt: 0, score: 0.5, predicted: String(ref.multiclass.predicted[i]), actual: String(a) }));
    const perf = livePerformance({ task: "multiclass_classification", featureSchema: { output: { kind: "classifier", probabilities: "p", classes: [0, 1, 2] } } as any, metrics: {} }, rows);
    for (const k of ["accuracy", "precision_macro", "recall_macro", "f1_macro"]) expect(perf.metrics[k]).toBeCloseTo(ref.multiclass.expected[k], 5);
  });
});
