/**
 * Every statistic against reference values computed offline by scipy / scikit-learn / numpy
 * (scripts/reference-stats.py -> test/fixtures/stats/reference.json), and DDSketch quantiles
 * against exact quantiles of 100,000 values.
 */
import { describe, expect, it } from "vitest";
import { gaussian, mulberry32 } from "../../scripts/lib/prng";
import { accuracy, auc, brier, confusion, gini, ks, logLoss, multiclassMetrics, precisionRecallF1 } from "../../src/stats/classification";
import { psi } from "../../src/stats/drift";
import { mae, r2, rmse } from "../../src/stats/regression";
import { emptyReservoir, mergeManyReservoirs, mergeReservoirs, offer } from "../../src/stats/reservoir";
import { DDSketch } from "../../src/stats/sketch";
import { chiSquareSf, kolmogorovSf } from "../../src/stats/special";
import { chiSquareHomogeneity, jensenShannonDistance, ksStatistic, ksTwoSample } from "../../src/stats/tests";
import { repoJson } from "../support/files";

const ref = await repoJson("test/fixtures/stats/reference.json");
const close = (actual: number, expected: number, tol = 1e-9) => expect(Math.abs(actual - expected), `${actual} vs ${expected}`).toBeLessThanOrEqual(tol);
const rel = (actual: number, expected: number, tol: number) => expect(Math.abs(actual - expected) / Math.abs(expected), `${actual} vs ${expected}`).toBeLessThanOrEqual(tol);

describe("classification metrics vs scikit-learn", () => {
  const { labels, scores, expected: e } = ref.classification;
  it("AUC, KS, Gini, log loss, Brier, accuracy", () => {
    close(auc(labels, scores), e.auc, 1e-12);
    close(ks(labels, scores), e.ks, 1e-12);
    close(gini(labels, scores), e.gini, 1e-12);
    close(logLoss(labels, scores), e.log_loss, 1e-12);
    close(brier(labels, scores), e.brier, 1e-12);
    close(accuracy(labels, scores), e.accuracy, 1e-12);
  });
  it("precision, recall, F1 at threshold 0.5", () => {
    const m = precisionRecallF1(confusion(labels, scores));
    close(m.precision, e.precision, 1e-12);
    close(m.recall, e.recall, 1e-12);
    close(m.f1, e.f1, 1e-12);
  });
  it("multiclass accuracy and macro precision / recall / F1", () => {
    const m = multiclassMetrics(ref.multiclass.actual, ref.multiclass.predicted);
    for (const k of ["accuracy", "precision_macro", "recall_macro", "f1_macro"] as const) close(m[k], ref.multiclass.expected[k], 1e-12);
  });
});

describe("regression metrics vs scikit-learn", () => {
  it("RMSE, MAE, R^2", () => {
    const { actual, predicted, expected: e } = ref.regression;
    close(rmse(actual, predicted), e.rmse, 1e-10);
    close(mae(actual, predicted), e.mae, 1e-10);
    close(r2(actual, predicted), e.r2, 1e-12);
  });
});

describe("two-sample Kolmogorov-Smirnov vs scipy", () => {
  it.each(ref.ks_2samp as any[])("$name", (c: any) => {
    const r = ksTwoSample(c.a, c.b);
    close(r.statistic, c.statistic, 1e-12);
    close(ksStatistic(c.b, c.a), c.statistic, 1e-12);
    // Same formula as scipy's kstwobign.sf at Stephens' corrected lambda: tight.
    rel(r.pvalue, c.kolmogorov_sf_stephens, 1e-8);
    // Against scipy's own asymptotic and exact p-values: the approximation is within 15 % relative
    // (the fixtures show 1-12 %), and always on the same side of alpha = 0.01 and 0.05.
    rel(r.pvalue, c.pvalue_asymp, 0.15);
    for (const alpha of [0.01, 0.05]) expect(r.pvalue < alpha).toBe(c.pvalue_exact < alpha);
  });
  it("Kolmogorov survival function on both series branches", () => {
    for (const { x, sf } of ref.kolmogorov_sf) close(kolmogorovSf(x), sf, 1e-12);
  });
});

describe("chi-square and Jensen-Shannon vs scipy", () => {
  it("chi-square survival function", () => {
    for (const { x, df, sf } of ref.chi2_sf) rel(chiSquareSf(x, df), sf, 1e-9);
  });
  it.each(ref.chi2_contingency as any[])("chi2_contingency: $name", (c: any) => {
    const r = chiSquareHomogeneity(c.reference, c.current);
    rel(r.statistic, c.statistic, 1e-10);
    expect(r.dof).toBe(c.dof);
    close(r.pvalue, c.pvalue, 1e-12);
    rel(r.pvalue, c.pvalue, 1e-8);
  });
  it("Jensen-Shannon distance (base 2)", () => {
    for (const { p, q, distance } of ref.jensen_shannon) close(jensenShannonDistance(p, q), distance, 1e-12);
  });
});

describe("PSI vs numpy", () => {
  it("matches the numpy computation of the same formula", () => {
    for (const c of ref.psi) close(psi(c.reference, c.current), c.psi, 1e-12);
  });
});

describe("DDSketch vs exact quantiles", () => {
  it.each([0.01, 0.02])("alpha %s: p50..p99.9 of 100,000 log-normal latencies within relative error alpha", (alpha) => {
    const rand = mulberry32(7);
    const values = Array.from({ length: 100_000 }, () => Math.exp(1.5 + 0.8 * gaussian(rand)));
    // Two sketches merged (as two isolates would be) must answer like one.
    const a = new DDSketch(alpha);
    const b = new DDSketch(alpha);
    values.forEach((v, i) => (i % 2 ? a : b).add(v));
    const merged = DDSketch.fromJSON(JSON.parse(JSON.stringify(a.toJSON()))).merge(b);
    const sorted = [...values].sort((x, y) => x - y);
    for (const q of [0.5, 0.9, 0.95, 0.99, 0.999]) {
      const exact = sorted[Math.floor(q * (sorted.length - 1))];
      expect(Math.abs(merged.quantile(q) - exact) / exact).toBeLessThanOrEqual(alpha);
    }
    expect(merged.count).toBe(100_000);
    // Share above a threshold, for latency SLOs: within the share of values near the threshold.
    const threshold = sorted[95_000];
    const exactAbove = sorted.filter((v) => v > threshold).length / sorted.length;
    const near = sorted.filter((v) => Math.abs(v - threshold) / threshold <= 2 * alpha).length / sorted.length;
    expect(Math.abs(merged.fractionAbove(threshold) - exactAbove)).toBeLessThanOrEqual(near);
  });
});

describe("reservoir samples", () => {
  it("stay uniform when merged in proportion to what they stand for", () => {
    const rand = mulberry32(11);
    const low = emptyReservoir();
    const high = emptyReservoir();
    for (let i = 0; i < 30_000; i++) offer(low, rand(), 500, rand);
    for (let i = 0; i < 10_000; i++) offer(high, 1 + rand(), 500, rand);
    const merged = mergeReservoirs(low, high, 500, rand);
    expect(merged.seen).toBe(40_000);
    expect(merged.values).toHaveLength(500);
    const share = merged.values.filter((v) => v >= 1).length / 500;
    expect(share).toBeCloseTo(0.25, 2);
  });
  it("do not over-weight a complete small reservoir merged with a subsample", () => {
    const rand = mulberry32(12);
    const big = emptyReservoir();
    const small = emptyReservoir();
    for (let i = 0; i < 800; i++) offer(big, 0, 200, rand);
    for (let i = 0; i < 65; i++) offer(small, 1, 200, rand);
    const merged = mergeReservoirs(big, small, 300, rand);
    expect(merged.seen).toBe(865);
    const share = merged.values.filter((v) => v === 1).length / merged.values.length;
    expect(Math.abs(share - 65 / 865)).toBeLessThan(0.01);
    expect(merged.values.length).toBe(216);
  });
  it("merge many at once, each in proportion to what it stands for, as far as every one can fill its share", () => {
    const rand = mulberry32(13);
    // Four reservoirs of 250 values standing for 1,000 .. 4,000 values each (a value names its reservoir).
    const parts = [1000, 2000, 3000, 4000].map((n, k) => {
      const r = emptyReservoir();
      for (let i = 0; i < n; i++) offer(r, k, 250, rand);
      return r;
    });
    const merged = mergeManyReservoirs(parts, 1000, rand);
    expect(merged.seen).toBe(10_000);
    // The largest reservoir can give 250 for its 40%: 625 in all, split 62.5 / 125 / 187.5 / 250.
    expect([0, 1, 2, 3].map((k) => merged.values.filter((v) => v === k).length)).toEqual([63, 125, 188, 250]);
    // Empty reservoirs add nothing; a single one is only capped.
    expect(mergeManyReservoirs([emptyReservoir(), parts[0], emptyReservoir()], 100, rand)).toMatchObject({ seen: 1000, values: expect.any(Array) });
    expect(mergeManyReservoirs([emptyReservoir(), parts[0]], 100, rand).values).toHaveLength(100);
  });
});
