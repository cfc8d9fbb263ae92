/**
 * The live metrics a canary step is judged on, read from the monitoring Durable Objects
 * (src/monitoring): the stable and canary versions' requests, failures, latency sketch and score
 * sample since the step began. Flagger reads its canary metrics from the monitoring system in the
 * same way; one source of truth means the dashboard, the alerts and the rollout agree.
 *
 * Windows are bucket-aligned: the minute bucket in which the step began is included whole.
 * Failures count whatever their class: a canary that rejects inputs the stable version accepts
 * (4xx) is as much a regression as one that crashes. With monitoring turned off
 * (MONITORING_ENABLED = "false") a canary sees no traffic and holds; it never advances blind.
 *
 * Output is the StatsSummary shape the verdict (analysis.ts) reads; scores are binned from the
 * monitoring score sample into SCORE_BINS equal bins over [0, 1].
 */
import { monitoringConfig, shardName } from "../monitoring/config";
import { fleetWindow } from "../monitoring/fleet";
import type { Aggregate } from "../monitoring/aggregate";
import { DDSketch } from "../stats/sketch";
import { SCORE_BINS, type StatsSummary, type VariantSummary } from "./live-stats";

export function variantOf(version: string, agg: Aggregate): VariantSummary {
  const scores = agg.score.sample.values.filter((s) => Number.isFinite(s) && s >= 0 && s <= 1);
  const counts = new Array(SCORE_BINS).fill(0);
  for (const s of scores) counts[Math.min(SCORE_BINS - 1, Math.floor(s * SCORE_BINS))]++;
  return {
    version,
    requests: agg.requests,
    errors: Object.values(agg.errors).reduce((a, b) => a + b, 0),
    latency: agg.latency ?? new DDSketch().toJSON(),
    score_counts: counts,
    score_sum: scores.reduce((a, b) => a + b, 0),
    scored_rows: scores.length,
    score_sample: scores,
    feedback: { n: 0, positives: 0, correct: 0 },
    labels: [],
  };
}

/** Stable and canary metrics since `since` (epoch ms), as variants "stable" and "canary". */
export async function canaryWindow(env: Env, model: string, versions: { stable: string; canary: string }, since: number, now = Date.now()): Promise<StatsSummary> {
  const shards = monitoringConfig(env).statsShards;
  const span = Math.max(1, now - since);
  const windowOf = (version: string) =>
    fleetWindow(
      env,
      Array.from({ length: shards }, (_, k) => shardName(model, version, k)),
      span,
      now,
    );
  const [stable, canary] = await Promise.all([windowOf(versions.stable), windowOf(versions.canary)]);
  return {
    since,
    variants: { stable: variantOf(versions.stable, stable.aggregate), canary: variantOf(versions.canary, canary.aggregate) },
    shadow: { requests: 0, errors: 0, timeouts: 0, compared_rows: 0, skipped_rows: 0, agreements: 0, abs_diff: new DDSketch().toJSON(), latency: new DDSketch().toJSON() },
  };
}
