/** The canary verdict (pure function): error rate, p95 and score-distribution checks, and when each applies. */
import { describe, expect, it } from "vitest";
import { canaryVerdict, MIN_PSI_ROWS } from "../../src/deployments/analysis";
import type { StatsSummary, VariantSummary } from "../../src/deployments/live-stats";
import { DDSketch } from "../../src/stats/sketch";

const analysis = { step_minutes: 1, min_requests: 50, max_error_rate_increase: 0.01, max_p95_ratio: 1.5, p95_slack_ms: 2, max_psi: 0.2 };

function variant(requests: number, errors: number, latencyMs: number, scores: number[]): VariantSummary {
  const sketch = new DDSketch();
  for (let i = 0; i < requests - errors; i++) sketch.add(latencyMs);
  const counts = new Array(20).fill(0);
  for (const s of scores) counts[Math.min(19, Math.floor(s * 20))]++;
  return { version: "v", requests, errors, latency: sketch.toJSON(), score_counts: counts, score_sum: scores.reduce((a, b) => a + b, 0), scored_rows: scores.length, feedback: { n: 0, positives: 0, correct: 0 }, labels: [] };
}
const summary = (stable: VariantSummary, canary: VariantSummary): StatsSummary => ({ since: 0, variants: { stable, canary }, shadow: {} as StatsSummary["shadow"] });
const spread = (n: number, shift = 0) => Array.from({ length: n }, (_, i) => Math.min(0.999, ((i % 100) + 0.5) / 100 + shift));

describe("canaryVerdict", () => {
  it("holds below min_requests, advances a healthy canary", () => {
    expect(canaryVerdict(summary(variant(500, 0, 5, spread(500)), variant(49, 0, 5, spread(49))), analysis).decision).toBe("hold");
    const v = canaryVerdict(summary(variant(500, 1, 5, spread(500)), variant(200, 0, 5, spread(200))), analysis);
    expect(v.decision).toBe("advance");
    expect(v.score_psi).toBeLessThan(0.01);
  });

  it("rolls back on error rate and on p95 latency", () => {
    const errors = canaryVerdict(summary(variant(500, 0, 5, spread(500)), variant(100, 5, 5, spread(95))), analysis);
    expect(errors.decision).toBe("rollback");
    expect(errors.reasons[0]).toMatch(/error rate 5\.00% > stable 0\.00% \+ 1\.00%/);
    const slow = canaryVerdict(summary(variant(500, 0, 5, spread(500)), variant(100, 0, 20, spread(100))), analysis);
    expect(slow.decision).toBe("rollback");
    expect(slow.reasons[0]).toMatch(/p95 latency/);
  });

  it("rolls back on a shifted score distribution only with enough scored rows on both sides", () => {
    const shifted = canaryVerdict(summary(variant(500, 0, 5, spread(500)), variant(MIN_PSI_ROWS, 0, 5, spread(MIN_PSI_ROWS, 0.4))), analysis);
    expect(shifted.decision).toBe("rollback");
    expect(shifted.reasons[0]).toMatch(/score PSI vs stable/);
    const few = canaryVerdict(summary(variant(500, 0, 5, spread(500)), variant(60, 0, 5, spread(MIN_PSI_ROWS - 1, 0.4))), analysis);
    expect(few.score_psi).toBeNull();
    expect(few.decision).toBe("advance");
  });
});
