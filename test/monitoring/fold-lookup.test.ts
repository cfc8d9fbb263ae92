/**
 * The fold's fast lookups give exactly what plain binary searches give (src/stats/locate.ts
 * SortedIndex, KsGrid.cellOf / binsOfCells, the categorical scratch counts in foldPrediction), for
 * the values where a lookup table could go wrong: values equal to a reference value or a bin edge,
 * the doubles just beside them, out-of-range, infinite, -0, NaN and missing values, heavy tails,
 * spans too wide for a guide, and in the fold values the request left out (counted missing even
 * where the impute value is also sent) and booleans.
 * The references here are the plain searches the fold used before the lookup tables.
 */
import { describe, expect, it } from "vitest";
import { rowValidator } from "../../src/inference/features";
import { emptyAggregate } from "../../src/monitoring/aggregate";
import { foldPrediction, sealTarget, type FoldTarget } from "../../src/monitoring/collector";
import type { ModelVersion } from "../../src/registry/store";
import type { PredictionEvent } from "../../src/serving/events";
import { binIndex } from "../../src/stats/drift";
import { SortedIndex } from "../../src/stats/locate";
import { mulberry32 } from "../../src/stats/random";
import { KsGrid } from "../../src/stats/tests";
import { DDSketch } from "../../src/stats/sketch";

const bits = new Float64Array(1);
const ints = new BigInt64Array(bits.buffer);
/** The next double above (dir 1) or below (dir -1) x (finite x). */
function nextTo(x: number, dir: 1 | -1): number {
  if (x === 0) return dir * Number.MIN_VALUE;
  bits[0] = x;
  ints[0] += (x > 0) === (dir > 0) ? 1n : -1n;
  return bits[0];
}

function plainLowerBound(u: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = u.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (u[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
function plainUpperBound(u: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = u.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (u[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
/** KsGrid.cellOf as it was: a binary search over every reference value. */
function plainCell(u: ArrayLike<number>, x: number): number {
  const lo = plainLowerBound(u, x);
  return lo < u.length && u[lo] === x ? 2 * lo + 1 : 2 * lo;
}

/** Every stored value, the doubles beside it, midpoints, and values outside and at infinity. */
function probes(values: ArrayLike<number>, random: () => number): number[] {
  const out = [-Infinity, Infinity, 0, -0, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE, -Number.MIN_VALUE, 2 ** 53, -(2 ** 53), 2 ** 53 + 2, 1 + 2 ** -52, 1 - 2 ** -53];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out.push(v);
    if (Number.isFinite(v)) out.push(nextTo(v, 1), nextTo(v, -1), v - 1, v + 1, v * (1 + 1e-12));
    if (i + 1 < values.length) out.push((v + values[i + 1]) / 2);
  }
  const lo = values.length ? values[0] : 0;
  const hi = values.length ? values[values.length - 1] : 1;
  for (let k = 0; k < 500; k++) out.push(lo + (hi - lo) * (random() * 1.2 - 0.1));
  return out.filter((x) => x === x);
}

function sortedSamples(): { name: string; values: number[] }[] {
  const r = mulberry32(11);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return [
    { name: "uniform", values: Array.from({ length: 1000 }, () => r() * 100) },
    { name: "integers with ties", values: Array.from({ length: 1000 }, () => Math.floor(r() * 60)) },
    { name: "heavy tail (lognormal)", values: Array.from({ length: 1000 }, () => Math.exp(3 * gauss())) },
    { name: "mostly zero, a few huge", values: Array.from({ length: 1000 }, (_, i) => (i % 50 === 0 ? r() * 1e9 : 0)) },
    { name: "negative and positive, tiny spacing", values: Array.from({ length: 300 }, (_, i) => (i - 150) * 1e-300) },
    { name: "span overflows (no guide)", values: [-1e308, -1, 0, 1, 2, 3, 4, 5, 6, 1e308] },
    { name: "with infinities (no guide)", values: [-Infinity, 1, 2, 3, 4, 5, 6, 7, 8, Infinity] },
    { name: "all equal (no guide)", values: Array.from({ length: 50 }, () => 7) },
    { name: "short (no guide)", values: [1, 2, 3] },
    { name: "single", values: [42] },
    // Integer values within 16 per value get a direct cell table: integers in and beyond range, the
    // doubles beside each one and fractions take exactly the searches' answers too.
    { name: "integers far from zero (direct table)", values: Array.from({ length: 500 }, () => 1e15 + Math.floor(r() * 200)) },
    { name: "negative integers up to 1 (direct table, wide span)", values: Array.from({ length: 6001 }, (_, i) => i * 10 - 60_000 + (i === 6000 ? -9 : 0)) },
    { name: "binary 0/1 (direct table, no guide)", values: Array.from({ length: 100 }, (_, i) => i % 2) },
    { name: "sparse integers at the direct table's limit", values: Array.from({ length: 64 }, (_, i) => i * 16) },
    { name: "integers just past the direct table's limit", values: Array.from({ length: 64 }, (_, i) => i * 17) },
  ].map((s) => ({ ...s, values: s.values.sort((a, b) => a - b) }));
}

describe("SortedIndex (guide table)", () => {
  it("answers lowerBound and upperBound exactly as a plain binary search, for every probe", () => {
    const random = mulberry32(5);
    for (const { name, values } of sortedSamples()) {
      const u = Float64Array.from(values);
      const index = new SortedIndex(u);
      for (const x of probes(u, random)) {
        expect([name, x, index.lowerBound(x)]).toEqual([name, x, plainLowerBound(u, x)]);
        expect([name, x, index.upperBound(x)]).toEqual([name, x, plainUpperBound(u, x)]);
      }
    }
  });
});

describe("KsGrid lookups", () => {
  it("cellOf is the cell a binary search over every reference value gives", () => {
    const random = mulberry32(6);
    for (const { name, values } of sortedSamples()) {
      const grid = new KsGrid(values);
      for (const x of probes(grid.values, random)) expect([name, x, grid.cellOf(x)]).toEqual([name, x, plainCell(grid.values, x)]);
    }
  });

  it("binsOfCells gives binIndex's bin for every value of a cell, or -1 (only for cells an edge splits)", () => {
    const random = mulberry32(7);
    for (const { name, values } of sortedSamples()) {
      const grid = new KsGrid(values);
      const u = grid.values;
      const lo = u[0];
      const hi = u[u.length - 1];
      const edgeSets = [
        // Edges on reference values (as quantile edges are), between them, repeated, and beyond the range.
        [lo, u[Math.floor(u.length / 3)], u[Math.floor((2 * u.length) / 3)], hi],
        [lo - 1, (lo + hi) / 2, nextTo(Number.isFinite(hi) ? hi : 1, 1)],
        [lo, lo, u[Math.floor(u.length / 2)], u[Math.floor(u.length / 2)], hi, hi],
        Array.from({ length: 11 }, (_, i) => (Number.isFinite(lo) && Number.isFinite(hi) ? lo + ((hi - lo) * i) / 10 : i)),
      ].map((e) => e.filter((x) => Number.isFinite(x)).sort((a, b) => a - b));
      for (const edges of edgeSets) {
        if (edges.length < 2) continue;
        const table = grid.binsOfCells(edges);
        expect(table.length).toBe(grid.cells);
        expect(Array.from(table).filter((b) => b < 0).length).toBeLessThanOrEqual(edges.length);
        for (const x of [...probes(u, random), ...probes(edges, random)]) {
          const bin = table[grid.cellOf(x)];
          if (bin >= 0) expect([name, edges, x, bin]).toEqual([name, edges, x, binIndex(edges, x)]);
        }
      }
    }
  });
});

describe("foldPrediction with the lookup tables", () => {
  const edges = [0, 10, 20, 30, 40];
  const sample = [0, 5, 10, 10, 15, 20, 25, 30, 35, 40];
  const version = {
    modelName: "lookup",
    version: "1.0.0",
    sha256: "s",
    featureSchema: {
      features: [
        { name: "x", type: "numeric", missing: { policy: "impute", value: 10 } },
        { name: "c", type: "categorical", categories: ["a", "b", "c"], missing: { policy: "impute", value: "b" } },
        { name: "flag", type: "boolean", missing: { policy: "reject" } },
      ],
      input: { kind: "per_feature", tensors: [] },
      output: { kind: "regressor", value: "v" },
    },
    reference: {
      features: { x: { type: "numeric", edges, counts: [2, 2, 2, 4], sample }, c: { type: "categorical", counts: { a: 1, b: 1, c: 1 } } },
      score: { edges: [0, 0.25, 0.5, 0.75, 1], counts: [1, 1, 1, 1], sample: [0.1, 0.25, 0.5, 0.75, 0.9] },
    },
  } as unknown as ModelVersion;

  /** The fold's histograms computed row by row from the request's rows with plain searches (what the fold computed before the tables and the columns). */
  function reference(rows: Record<string, unknown>[], scores: number[]) {
    const grid = new KsGrid(sample);
    const scoreGrid = new KsGrid([0.1, 0.25, 0.5, 0.75, 0.9]);
    const x = { counts: [0, 0, 0, 0], missing: 0, ks: {} as Record<string, number> };
    const score = { counts: [0, 0, 0, 0], ks: {} as Record<string, number> };
    const cat: Record<string, number> = {};
    const flag: Record<string, number> = {};
    let catMissing = 0;
    for (const s of scores) {
      score.counts[binIndex([0, 0.25, 0.5, 0.75, 1], s)]++;
      const cell = plainCell(scoreGrid.values, s);
      score.ks[cell] = (score.ks[cell] ?? 0) + 1;
    }
    for (const raw of rows) {
      if (raw.x == null) x.missing++;
      else {
        const v = Number(raw.x);
        x.counts[binIndex(edges, v)]++;
        const cell = plainCell(grid.values, v);
        x.ks[cell] = (x.ks[cell] ?? 0) + 1;
      }
      if (raw.c == null) catMissing++;
      else cat[String(raw.c)] = (cat[String(raw.c)] ?? 0) + 1;
      if (raw.flag != null) flag[String(raw.flag)] = (flag[String(raw.flag)] ?? 0) + 1;
    }
    return { x, score, cat, catMissing, flag };
  }

  function eventOf(rows: Record<string, unknown>[], scores: number[]): PredictionEvent {
    return {
      requestId: "r",
      at: 0,
      route: "v1",
      dispatch: { version },
      resolved: rowValidator(version.featureSchema).resolve(rows, (i) => `instances[${i}]`),
      rows,
      predictions: [],
      columns: { scores: Float64Array.from(scores), labels: new Uint32Array(scores.length), classes: [] },
      latencyMs: 1,
      inferenceMs: 0,
    } as unknown as PredictionEvent;
  }

  function fold(rows: Record<string, unknown>[], scores: number[]) {
    const target: FoldTarget = { agg: emptyAggregate(), sketch: new DDSketch(0.01) };
    foldPrediction(target, eventOf(rows, scores));
    const afterFold = structuredClone(target.agg.features);
    sealTarget(target);
    return { agg: target.agg, afterFold };
  }

  // Values on every edge and sample value, beside them, out of range, -0, missing and imputed
  // (the impute value 10 is also sent); categories known, imputed, absent.
  const xs = [0, 10, 20, 30, 40, 5, 15, 25, 35, nextTo(10, -1), nextTo(10, 1), nextTo(40, 1), -5, 45, -1e300, 1e300, -0, 7.5, 12, 39.999];
  const cs = ["c", "a", "c", "b", "a", "c"];

  it("counts bins, KS cells, missing values and categories exactly as plain searches over the rows, in first-appearance order", () => {
    const rows: Record<string, unknown>[] = [];
    for (let i = 0; i < 60; i++) {
      const raw: Record<string, unknown> = {};
      const x = xs[i % xs.length];
      if (i % 7 !== 3) raw.x = x; // absent: imputed as 10, counted missing
      else if (i % 2) raw.x = null; // null: the same
      if (i % 5 !== 4) raw.c = cs[i % cs.length]; // absent: imputed as "b", counted missing
      raw.flag = i % 3 === 0;
      rows.push(raw);
    }
    const scores = rows.map((_, i) => [0, 0.1, 0.25, nextTo(0.25, 1), 0.5, 0.75, 0.9, 1, 0.3, 0.6][i % 10]);
    const { agg, afterFold } = fold(rows, scores);
    const want = reference(rows, scores);
    expect(want.x.missing).toBeGreaterThan(0);
    expect(want.catMissing).toBeGreaterThan(0);
    const x = agg.features.x as { counts: number[]; missing: number; ks: Record<string, number> };
    expect(x.counts).toEqual(want.x.counts);
    expect(x.missing).toBe(want.x.missing);
    expect(x.ks).toEqual(want.x.ks);
    expect(agg.score.counts).toEqual(want.score.counts);
    expect(agg.score.ks).toEqual(want.score.ks);
    const c = afterFold.c as { counts: Record<string, number>; missing: number };
    expect(c.counts).toEqual(want.cat);
    expect(Object.keys(c.counts)).toEqual(Object.keys(want.cat)); // same insertion order as per-row increments
    expect(c.missing).toBe(want.catMissing);
    const flag = afterFold.flag as { counts: Record<string, number> };
    expect(flag.counts).toEqual(want.flag);
    expect(Object.keys(flag.counts)).toEqual(Object.keys(want.flag));
  });

  it("adds to counts already in the aggregate across requests", () => {
    const target: FoldTarget = { agg: emptyAggregate(), sketch: new DDSketch(0.01) };
    const requests = [["a", "b"], ["b", "c", "c"], ["a"]];
    for (const cats of requests) {
      const rows = cats.map((c) => ({ c, x: 1, flag: false }));
      foldPrediction(target, eventOf(rows, rows.map(() => 0.5)));
    }
    expect((target.agg.features.c as { counts: Record<string, number> }).counts).toEqual({ a: 2, b: 2, c: 2 });
    expect((target.agg.features.flag as { counts: Record<string, number> }).counts).toEqual({ false: 6 });
  });
});
