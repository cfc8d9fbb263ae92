/**
 * A/B weights changed in place, and what routed error responses name:
 * - reweightSegments moves exactly the share the new weights require (the least any layout can),
 *   where re-creating cumulative ranges moves more;
 * - through the API: same salt and variants, only the needed units move, results are kept per
 *   weight period, bad input is a 4xx that changes nothing;
 * - a routed request that fails with 5xx still carries x-deployment / x-variant.
 */
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { cumulativeBounds, pickSegment, reweightSegments, segmentsOf, unitPosition, type Segments } from "../../src/deployments/assignment";
import { invalidateResolved } from "../../src/registry/resolver";
import { ADMIN, call } from "../support/api";
import { admin, createStarted, predict, setupModel, storeTestSet } from "./helpers";

/** Share of [0, 1) whose variant differs between two layouts (exact, from the range ends). */
function movedShare(a: Segments, b: Segments): number {
  const cuts = [...new Set([0, ...a.map((s) => s[1]), ...b.map((s) => s[1])])].sort((x, y) => x - y);
  let moved = 0;
  for (let i = 1; i < cuts.length; i++) {
    const mid = (cuts[i - 1] + cuts[i]) / 2;
    if (pickSegment(a, mid) !== pickSegment(b, mid)) moved += cuts[i] - cuts[i - 1];
  }
  return moved;
}
const variants = (weights: number[]) => weights.map((w, i) => ({ name: `v${i}`, version: "1.0.0", weight: w }));
const shares = (s: Segments, k: number) => {
  const out = new Array(k).fill(0);
  let lo = 0;
  for (const [i, hi] of s) {
    out[i] += hi - lo;
    lo = hi;
  }
  return out;
};

describe("reweightSegments", () => {
  it.each([
    { from: [33, 33, 34], to: [50, 25, 25], least: 0.17 },
    { from: [50, 50], to: [20, 80], least: 0.3 },
    { from: [25, 25, 25, 25], to: [10, 40, 10, 40], least: 0.3 },
    { from: [10, 90], to: [0, 100], least: 0.1 },
  ])("$from -> $to moves $least of the units, and gives each variant its new share", ({ from, to, least }) => {
    const before = segmentsOf(variants(from));
    const { segments, moved } = reweightSegments(before, to);
    expect(moved).toBeCloseTo(least, 9);
    expect(movedShare(before, segments)).toBeCloseTo(least, 9);
    shares(segments, to.length).forEach((s, i) => expect(s).toBeCloseTo(to[i] / 100, 9));
    // Units only leave shrinking variants and only join growing ones.
    const cuts = [...new Set([0, ...before.map((s) => s[1]), ...segments.map((s) => s[1])])].sort((x, y) => x - y);
    for (let i = 1; i < cuts.length; i++) {
      const mid = (cuts[i - 1] + cuts[i]) / 2;
      const [a, b] = [pickSegment(before, mid), pickSegment(segments, mid)];
      const shrank = from[a] - to[a] > 0;
      const grew = to[b] - from[b] > 0;
      if (a !== b) expect([shrank, grew]).toEqual([true, true]);
    }
  });

  it("moves fewer units than re-laying cumulative ranges would", () => {
    const before = segmentsOf(variants([33, 33, 34]));
    const cumulative = cumulativeBounds(variants([50, 25, 25])).map((b, i) => [i, b] as [number, number]);
    expect(movedShare(before, cumulative)).toBeCloseTo(0.26, 9);
    expect(movedShare(before, reweightSegments(before, [50, 25, 25]).segments)).toBeCloseTo(0.17, 9);
  });

  it("stays minimal over successive changes", () => {
    let s = segmentsOf(variants([50, 30, 20]));
    for (const to of [[20, 30, 50], [40, 40, 20], [10, 10, 80], [34, 33, 33]]) {
      const before = s;
      const prior = shares(before, 3);
      const next = reweightSegments(before, to);
      const least = to.reduce((acc, w, i) => acc + Math.max(0, w / 100 - prior[i]), 0);
      expect(movedShare(before, next.segments)).toBeCloseTo(least, 9);
      s = next.segments;
    }
  });
});

describe("A/B weight change in place (API)", () => {
  const M = "dep-reweight";
  beforeAll(async () => {
    await setupModel(M);
    await storeTestSet(M);
  });

  it("keeps the salt and variants, moves only the units the new weights require, keeps results per period", async () => {
    const id = await createStarted({
      strategy: "ab_test",
      model: M,
      salt: "reweight-salt",
      variants: [
        { name: "a", version: "1.0.0", weight: 50 },
        { name: "b", version: "1.1.0", weight: 50 },
      ],
    });
    const units = Array.from({ length: 80 }, (_, i) => `unit-${i}`);
    const before = new Map<string, string>();
    for (const u of units) before.set(u, (await predict(M, { unit: u })).variant!);

    // Bad input: nothing changes.
    const revision = (await admin("GET", `/${id}`)).json.deployment.revision;
    for (const [body, message] of [
      [{ variants: [{ name: "a", weight: 20 }, { name: "b", weight: 70 }] }, /weights sum to 90, not 100/],
      [{ variants: [{ name: "a", weight: 20 }, { name: "c", weight: 80 }] }, /no variant 'c'.*variant 'b' is missing/],
      [{ variants: [{ name: "a", weight: 50 }, { name: "b", weight: 50 }] }, /unchanged/],
      [{ variants: [{ name: "a", weight: -1 }, { name: "b", weight: 101 }] }, /variants\.0\.weight/],
    ] as const) {
      const r = await admin("POST", `/${id}/weights`, body);
      expect(r.status, r.text).toBe(422);
      expect(r.json.error.message).toMatch(message);
    }
    expect((await admin("GET", `/${id}`)).json.deployment.revision).toBe(revision);

    const changed = await admin("POST", `/${id}/weights`, { variants: [{ name: "a", weight: 20 }, { name: "b", weight: 80 }], reason: "more on b" });
    expect(changed.status, changed.text).toBe(200);
    expect(changed.json.deployment).toMatchObject({ state: "active", variants: [{ name: "a", weight: 20 }, { name: "b", weight: 80 }] });
    const event = (await admin("GET", `/${id}/history`)).json.events.at(-1);
    expect(event).toMatchObject({ action: "reweight", reason: "more on b", details: { from: { a: 50, b: 50 }, to: { a: 20, b: 80 }, moved_share: 0.3 } });

    // Same salt: each unit's new variant is what the stored ranges give its salted position; units only move a -> b.
    const row = await env.DB.prepare("SELECT salt, config FROM deployments WHERE id = ?").bind(id).first<{ salt: string; config: string }>();
    expect(row!.salt).toBe("reweight-salt");
    const segments = JSON.parse(row!.config).segments as Segments;
    let moved = 0;
    for (const u of units) {
      const now = (await predict(M, { unit: u })).variant!;
      expect(now).toBe(["a", "b"][pickSegment(segments, unitPosition("reweight-salt", u))]);
      if (now !== before.get(u)) {
        expect([before.get(u), now]).toEqual(["a", "b"]);
        moved++;
      }
    }
    // Exactly the units whose position lies in the freed part of a's range moved: [0.2, 0.5).
    const expected = units.filter((u) => {
      const x = unitPosition("reweight-salt", u);
      return x >= 0.2 && x < 0.5;
    }).length;
    expect(moved).toBe(expected);

    const results = await admin("GET", `/${id}/results`);
    expect(results.status, results.text).toBe(200);
    expect(results.json.periods.map((p: any) => p.weights)).toEqual([{ a: 50, b: 50 }, { a: 20, b: 80 }]);
    // The first period began with the deployment, and so do its results (before: 1970-01-01 and null).
    const created = (await admin("GET", `/${id}`)).json.deployment.created_at;
    expect(results.json.periods[0].from).toBe(created);
    expect(results.json.since).toBe(created);
    expect(results.json.periods[1].until).toBeNull();
    const total = (vs: any[]) => vs.reduce((s, v) => s + v.requests, 0);
    expect(total(results.json.periods[0].variants) + total(results.json.periods[1].variants)).toBe(total(results.json.variants));

    // Only A/B tests take manual weights.
    await admin("POST", `/${id}/abort`, { reason: "done" });
    expect((await admin("POST", `/${id}/weights`, { variants: [{ name: "a", weight: 30 }, { name: "b", weight: 70 }] })).status).toBe(409);
    const canary = await createStarted({ strategy: "canary", model: M, version: "1.1.0" });
    const refused = await admin("POST", `/${canary}/weights`, { variants: [{ name: "stable", weight: 50 }, { name: "canary", weight: 50 }] });
    expect(refused.status).toBe(409);
    expect(refused.json.error.message).toMatch(/only ab_test weights/);
    await admin("POST", `/${canary}/abort`, {});
  });
});

describe("routed error responses name the variant", () => {
  const M = "dep-5xx";
  beforeAll(async () => {
    await setupModel(M);
    await storeTestSet(M);
  });

  it("a variant that fails with 5xx still answers with x-deployment and x-variant", async () => {
    const id = await createStarted({
      strategy: "ab_test",
      model: M,
      variants: [
        { name: "ok", version: "1.0.0", weight: 50 },
        { name: "broken", version: "1.1.0", weight: 50 },
      ],
    });
    // Break 1.1.0: its artifact is no longer where the registry says (a storage fault: 503).
    await env.DB.prepare("UPDATE model_versions SET artifact_key = 'artifacts/sha256/missing.onnx', sha256 = ? WHERE model_name = ? AND version = '1.1.0'").bind("0".repeat(64), M).run();
    invalidateResolved(M);
    const seen = new Map<string, { status: number; headers: Headers }>();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const r = await predict(M, { unit: `u-${i}` });
      const variant = r.headers.get("x-variant")!;
      seen.set(variant, { status: r.status, headers: r.headers });
    }
    const broken = seen.get("broken")!;
    expect(broken.status).toBeGreaterThanOrEqual(500);
    expect(broken.headers.get("x-deployment")).toBe(id);
    expect(broken.headers.get("x-model-version")).toBe("1.1.0");
    expect(seen.get("ok")!.status).toBe(200);
    expect(seen.get("ok")!.headers.get("x-deployment")).toBe(id);
    const forced = await call("POST", `/v1/models/${M}/predict`, { features: {} }, { "x-force-variant": "broken", "x-admin-token": "test-admin-token" });
    expect(forced.headers.get("x-variant")).toBe("broken");
    await admin("POST", `/${id}/abort`, {});
  });
});
