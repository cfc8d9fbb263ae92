/**
 * Parity: the served ONNX models agree with an independent TypeScript computation of the same
 * trained parameters (scripts/lib/predict-reference.ts) within 1e-5 on every row of the data set,
 * through the real HTTP route (schema validation, missing-value policies, tensor building,
 * onnxruntime-web in workerd, output decoding).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { predictLogistic, predictTrees, type LogisticParams, type TreeParams } from "../scripts/lib/predict-reference";
import { call, registerStem } from "./support/api";
import { creditRows } from "./support/credit-data";
import { repoJson } from "./support/files";

beforeAll(async () => {
  expect((await registerStem("models", "credit-risk-lr", ["champion"])).status).toBe(201);
  expect((await registerStem("models", "credit-risk-gbt", ["challenger"])).status).toBe(201);
});

async function scoreAll(rows: Record<string, unknown>[], selector: { alias?: string; version?: string }): Promise<number[]> {
  const scores: number[] = [];
  for (let i = 0; i < rows.length; i += 1000) {
    const res = await call("POST", "/v1/models/credit-risk/predict", { instances: rows.slice(i, i + 1000), ...selector });
    expect(res.status, res.text).toBe(200);
    for (const p of res.json.predictions) scores.push(p.score);
  }
  return scores;
}

describe.each([
  { stem: "credit-risk-lr", selector: { alias: "champion" }, predict: (p: any, r: any) => predictLogistic(p as LogisticParams, r) },
  { stem: "credit-risk-gbt", selector: { version: "1.1.0" }, predict: (p: any, r: any) => predictTrees(p as TreeParams, r) },
])("$stem", ({ stem, selector, predict }) => {
  it("matches the reference computation within 1e-5 on all 4,454 rows", async () => {
    const params = await repoJson(`models/${stem}.params.json`);
    const manifest = await repoJson(`models/${stem}.manifest.json`);
    const rows = await creditRows(manifest.featureSchema.features);
    expect(rows).toHaveLength(4454);
    expect(rows.some((r) => r.features.Income === undefined)).toBe(true); // missing values are exercised

    const served = await scoreAll(rows.map((r) => r.features), selector);
    expect(served).toHaveLength(rows.length);
    let worst = 0;
    rows.forEach((r, i) => {
      worst = Math.max(worst, Math.abs(served[i] - predict(params, r.features)));
    });
    expect(worst).toBeLessThan(1e-5);
  });
});
