/**
 * Assignment and routing statistics, as pure functions: the split over 100,000 distinct keys is
 * unbiased (each variant inside its 99.9% binomial interval), assignment is sticky, growing a
 * canary moves only new units into it, and the statistics (z-test, Wilson, Beta/Thompson) agree
 * with known values.
 */
import { mulberry32 } from "../../src/stats/random";
import { describe, expect, it } from "vitest";
import { cumulativeBounds, pickIndex, unitPosition } from "../../src/deployments/assignment";
import type { Variant } from "../../src/deployments/model";
import { binomialCountInterval, binomialInterval, normalQuantile, sampleBeta, thompsonShares, twoProportionZTest } from "../../src/deployments/stats";

const assign = (variants: Variant[], salt: string, key: string) => pickIndex(cumulativeBounds(variants), unitPosition(salt, key));

describe("sticky assignment", () => {
  it.each([
    { weights: [50, 30, 20], salt: "salt-a" },
    { weights: [90, 10], salt: "canary-salt" },
    { weights: [34, 33, 33], salt: "x" },
    { weights: [5, 95], salt: "another" },
  ])("is unbiased over 100,000 distinct keys: weights $weights", ({ weights, salt }) => {
    const variants = weights.map((w, i) => ({ name: `v${i}`, version: "1.0.0", weight: w }));
    const n = 100_000;
    const counts = new Array(weights.length).fill(0);
    for (let i = 0; i < n; i++) counts[assign(variants, salt, `user-${i}`)]++;
    weights.forEach((w, i) => {
      const { low, high } = binomialCountInterval(n, w / 100, 0.999);
      expect(counts[i], `variant ${i}: ${counts[i]} not in [${low.toFixed(0)}, ${high.toFixed(0)}]`).toBeGreaterThanOrEqual(low);
      expect(counts[i]).toBeLessThanOrEqual(high);
    });
  });

  it("gives the same unit the same variant every time, and differs between salts", () => {
    const variants = [50, 50].map((w, i) => ({ name: `v${i}`, version: "1.0.0", weight: w }));
    for (let i = 0; i < 1000; i++) expect(assign(variants, "s", `u${i}`)).toBe(assign(variants, "s", `u${i}`));
    let same = 0;
    for (let i = 0; i < 10_000; i++) same += assign(variants, "s1", `u${i}`) === assign(variants, "s2", `u${i}`) ? 1 : 0;
    expect(same / 10_000).toBeGreaterThan(0.47);
    expect(same / 10_000).toBeLessThan(0.53);
  });

  it("growing a canary from 10% to 25% moves only stable units into the canary", () => {
    const at = (p: number) => [
      { name: "stable", version: "1.0.0", weight: 100 - p },
      { name: "canary", version: "1.1.0", weight: p },
    ];
    let moved = 0;
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const before = assign(at(10), "grow", `k${i}`);
      const after = assign(at(25), "grow", `k${i}`);
      if (before === 1) expect(after).toBe(1); // no canary unit leaves
      if (before !== after) moved++;
    }
    const { low, high } = binomialCountInterval(n, 0.15, 0.999);
    expect(moved).toBeGreaterThanOrEqual(low);
    expect(moved).toBeLessThanOrEqual(high);
  });

  it("never sends traffic to a variant of weight 0", () => {
    const variants = [
      { name: "blue", version: "1.0.0", weight: 0 },
      { name: "green", version: "1.1.0", weight: 100 },
    ];
    for (let i = 0; i < 10_000; i++) expect(assign(variants, "bg", `k${i}`)).toBe(1);
  });
});

describe("routing statistics", () => {
  it("normal quantiles and the two-proportion z-test match reference values", () => {
    expect(normalQuantile(0.975)).toBeCloseTo(1.959964, 5);
    expect(normalQuantile(0.9995)).toBeCloseTo(3.290527, 5);
    // 120/1000 vs 100/1000: pooled 0.11, se 0.013993, z = 1.4293, p = 0.1529
    const t = twoProportionZTest(120, 1000, 100, 1000);
    expect(t.z).toBeCloseTo(1.4293, 3);
    expect(t.p_value).toBeCloseTo(0.1529, 3);
  });

  it("Wilson interval covers the truth at its nominal rate", () => {
    const rand = mulberry32(7);
    let covered = 0;
    for (let trial = 0; trial < 2000; trial++) {
      let k = 0;
      for (let i = 0; i < 200; i++) k += rand() < 0.3 ? 1 : 0;
      const { low, high } = binomialInterval(k, 200, 0.95);
      if (low <= 0.3 && 0.3 <= high) covered++;
    }
    expect(covered / 2000).toBeGreaterThan(0.93);
    expect(covered / 2000).toBeLessThan(0.975);
  });

  it("Beta samples have the right mean, and Thompson shares respect the floor and favour the better arm", () => {
    const rand = mulberry32(11);
    let sum = 0;
    for (let i = 0; i < 20_000; i++) sum += sampleBeta(3, 7, rand);
    expect(sum / 20_000).toBeCloseTo(0.3, 2);
    const shares = thompsonShares(
      [
        { successes: 10, failures: 90 },
        { successes: 40, failures: 60 },
        { successes: 12, failures: 88 },
      ],
      0.05,
      4000,
      mulberry32(3),
    );
    expect(shares.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    for (const s of shares) expect(s).toBeGreaterThanOrEqual(0.05);
    expect(shares[1]).toBeGreaterThan(0.8);
  });
});
