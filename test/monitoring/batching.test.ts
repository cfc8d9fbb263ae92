/**
 * Drift must not depend on how callers batch their rows: one data set (data/credit_data.csv, two
 * features shifted) sent as 1-row, 16-row, 100-row and 1,000-row requests, each batching to its
 * own model, gives identical histogram statistics (PSI, chi-square, Jensen-Shannon, missing
 * rates, to 1e-9), identical KS results and identical drift flags; the PSI and the KS statistic
 * match ones computed here from all the rows themselves. Numbers come back at full precision.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { binIndex, psi } from "../../src/stats/drift";
import { ksStatistic } from "../../src/stats/tests";
import { call, registerStem } from "../support/api";
import { creditRows } from "../support/credit-data";
import { repoJson } from "../support/files";
import { eventually } from "./helpers";

const ROWS = 2000;
const BATCHES = [1, 16, 100, 1000] as const;
let manifest: any;
let rows: Record<string, number | string>[];

beforeAll(async () => {
  manifest = await repoJson("models/credit-risk-lr.manifest.json");
  const data = await creditRows(manifest.featureSchema.features);
  // Two features shifted: incomes tripled (capped at the schema's max), everyone renting.
  rows = data.slice(0, ROWS).map(({ features }) => ({ ...features, Income: Math.min(5000, Number(features.Income ?? 125) * 3), Home: "rent" }));
  for (const size of BATCHES) expect((await registerStem("models", "credit-risk-lr", ["champion"], { name: `batching-${size}` })).status).toBe(201);
});

async function send(model: string, size: number) {
  for (let i = 0; i < rows.length; i += size) {
    const body = size === 1 ? { features: rows[i] } : { instances: rows.slice(i, i + size) };
    const res = await call("POST", `/v1/models/${model}/predict`, body);
    expect(res.status, res.text).toBe(200);
  }
}

async function drift(model: string) {
  return eventually(async () => {
    const res = await call("GET", `/v1/monitoring/models/${model}/drift?window=1h`);
    expect(res.status, res.text).toBe(200);
    expect(res.json.versions[0]?.n).toBe(ROWS);
    return res.json.versions[0];
  }, 30_000);
}

/** The histogram statistics of a report, feature by feature. */
function histogramStats(report: any) {
  return Object.fromEntries(
    Object.entries(report.features).map(([name, f]: [string, any]) => [name, { n: f.n, psi: f.psi, missing: f.missing_rate.current, chi: f.chi_square?.statistic ?? null, chiP: f.chi_square?.pvalue ?? null, js: f.js_distance ?? null }]),
  );
}

describe("drift does not depend on batching", () => {
  it("gives identical histogram statistics and flags for 1-, 16-, 100- and 1,000-row requests", async () => {
    const reports: Record<number, any> = {};
    for (const size of BATCHES) {
      await send(`batching-${size}`, size);
      reports[size] = await drift(`batching-${size}`);
    }
    const base = histogramStats(reports[1]);
    for (const size of BATCHES.slice(1)) {
      const stats = histogramStats(reports[size]);
      for (const [name, s] of Object.entries(base)) {
        for (const [k, v] of Object.entries(s)) {
          const w = (stats[name] as any)[k];
          if (v === null) expect(w, `${size}-row ${name}.${k}`).toBeNull();
          else expect(Math.abs(w - v), `${size}-row ${name}.${k}: ${w} vs ${v}`).toBeLessThanOrEqual(1e-9);
        }
      }
      expect(Math.abs(reports[size].score.psi - reports[1].score.psi)).toBeLessThanOrEqual(1e-9);
      expect(reports[size].drifted_features, `${size}-row flags`).toEqual(reports[1].drifted_features);
      expect(reports[size].score.drifted).toBe(reports[1].score.drifted);
    }
    expect(reports[1].drifted_features).toEqual(expect.arrayContaining(["Income", "Home"]));

    // Every row counted: the histogram of Income over all rows, on the reference bins, gives the reported PSI exactly.
    const ref = manifest.reference.features.Income;
    const counts = new Array(ref.edges.length - 1).fill(0);
    for (const r of rows) counts[binIndex(ref.edges, Number(r.Income))]++;
    const expected = psi(ref.counts, counts);
    for (const size of BATCHES) {
      expect(reports[size].features.Income.n).toBe(ROWS);
      expect(Math.abs(reports[size].features.Income.psi - expected), `${size}-row Income PSI`).toBeLessThanOrEqual(1e-12);
      // Full precision: not rounded to 6 significant digits.
      expect(reports[size].features.Income.psi).toBe(expected);
      // KS takes every row too: the exact two-sample statistic of the reference sample against all rows.
      for (const name of ["Age", "Income", "Expenses"]) {
        const ks = reports[size].features[name].ks;
        const values = rows.map((r) => r[name]).filter((v) => v !== undefined).map(Number);
        expect(ks.sample_size, `${size}-row ${name}`).toBe(values.length);
        expect(ks.rows_observed).toBe(values.length);
        expect(ks.rows_represented).toBe(values.length);
        expect(ks.reference_size).toBe(manifest.reference.features[name].sample.length);
        expect(Math.abs(ks.statistic - ksStatistic(manifest.reference.features[name].sample, values)), `${size}-row ${name} KS`).toBeLessThanOrEqual(1e-12);
        expect(Math.abs(ks.pvalue - reports[1].features[name].ks.pvalue)).toBeLessThanOrEqual(1e-12);
      }
    }
    // Missing rates are exact too: Income was never missing after the shift, Job's come from the data.
    const jobMissing = rows.filter((r) => r.Job === undefined).length / ROWS;
    expect(reports[1000].features.Job.missing_rate.current).toBe(jobMissing);
  });
});
