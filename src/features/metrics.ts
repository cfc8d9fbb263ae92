/**
 * Per-feature serving metrics of this isolate (the original design's `get_metrics`): lookups,
 * which tier answered, fallbacks, errors, and latency quantiles. Latency is the time from the
 * start of the lookup until the feature's value was settled (a cache hit costs microseconds; a KV
 * or Durable Object read, its round trip). Quantiles are exact over the last 1,024 lookups of each
 * feature (a ring buffer, sorted on read), so memory stays bounded whatever the traffic.
 *
 * Like the other isolate metrics these are per isolate: a scrape or an API read sees the isolate
 * that answered it.
 */
const RING = 1024;

export type Tier = "cache" | "stale_cache" | "cache_api" | "kv" | "durable_object" | "computed" | "override" | "default" | "last_known";

class FeatureMetric {
  lookups = 0;
  byTier: Record<string, number> = {};
  fallbacks = 0;
  errors = 0;
  sumMs = 0;
  private readonly ring = new Float64Array(RING);
  private filled = 0;
  private next = 0;

  record(tier: Tier | "error", ms: number) {
    this.lookups++;
    this.sumMs += ms;
    if (tier === "error") this.errors++;
    else this.byTier[tier] = (this.byTier[tier] ?? 0) + 1;
    if (tier === "default" || tier === "last_known") this.fallbacks++;
    this.ring[this.next] = ms;
    this.next = (this.next + 1) % RING;
    this.filled = Math.min(this.filled + 1, RING);
  }

  quantile(q: number): number | null {
    if (!this.filled) return null;
    const sorted = Array.from(this.ring.subarray(0, this.filled)).sort((a, b) => a - b);
    // Nearest rank: the smallest value with at least q of the samples at or below it.
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  }

  /** Share of lookups of a stored feature answered by the isolate cache (computed ones have none). */
  hitRate(): number | null {
    const hits = (this.byTier.cache ?? 0) + (this.byTier.stale_cache ?? 0);
    const stored = hits + (this.byTier.cache_api ?? 0) + (this.byTier.kv ?? 0) + (this.byTier.durable_object ?? 0);
    return stored ? hits / stored : null;
  }
}

class FeatureMetrics {
  private readonly byFeature = new Map<string, FeatureMetric>();

  record(feature: string, tier: Tier | "error", ms: number) {
    let m = this.byFeature.get(feature);
    if (!m) {
      if (this.byFeature.size >= 10_000) return; // bounded: a runaway set of names stops being tracked
      this.byFeature.set(feature, (m = new FeatureMetric()));
    }
    m.record(tier, ms);
  }

  snapshot() {
    return [...this.byFeature.entries()].map(([feature, m]) => ({
      feature,
      lookups: m.lookups,
      tiers: { ...m.byTier },
      cache_hit_rate: m.hitRate(),
      fallbacks: m.fallbacks,
      errors: m.errors,
      latency_ms: { p50: m.quantile(0.5), p95: m.quantile(0.95) },
    }));
  }

  /** Prometheus text: counters by tier, fallbacks and errors; latency as a summary (p50/p95). */
  render(): string {
    const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
    const out: string[] = [];
    const rows = [...this.byFeature.entries()];
    out.push("# HELP edge_ml_feature_lookups_total Feature lookups by the tier that answered, in this isolate.", "# TYPE edge_ml_feature_lookups_total counter");
    for (const [f, m] of rows) for (const [tier, n] of Object.entries(m.byTier)) out.push(`edge_ml_feature_lookups_total{feature="${esc(f)}",tier="${tier}"} ${n}`);
    out.push("# HELP edge_ml_feature_fallbacks_total Feature lookups answered by a fallback (default or last known value).", "# TYPE edge_ml_feature_fallbacks_total counter");
    for (const [f, m] of rows) out.push(`edge_ml_feature_fallbacks_total{feature="${esc(f)}"} ${m.fallbacks}`);
    out.push("# HELP edge_ml_feature_errors_total Feature lookups that failed (fallback policy error).", "# TYPE edge_ml_feature_errors_total counter");
    for (const [f, m] of rows) out.push(`edge_ml_feature_errors_total{feature="${esc(f)}"} ${m.errors}`);
    out.push("# HELP edge_ml_feature_cache_hit_ratio Share of stored-feature lookups answered by the isolate cache.", "# TYPE edge_ml_feature_cache_hit_ratio gauge");
    for (const [f, m] of rows) {
      const h = m.hitRate();
      if (h !== null) out.push(`edge_ml_feature_cache_hit_ratio{feature="${esc(f)}"} ${h}`);
    }
    out.push("# HELP edge_ml_feature_latency_seconds Feature lookup latency over the last 1024 lookups.", "# TYPE edge_ml_feature_latency_seconds summary");
    for (const [f, m] of rows) {
      for (const q of [0.5, 0.95]) {
        const v = m.quantile(q);
        if (v !== null) out.push(`edge_ml_feature_latency_seconds{feature="${esc(f)}",quantile="${q}"} ${v / 1000}`);
      }
      out.push(`edge_ml_feature_latency_seconds_sum{feature="${esc(f)}"} ${m.sumMs / 1000}`, `edge_ml_feature_latency_seconds_count{feature="${esc(f)}"} ${m.lookups}`);
    }
    return out.join("\n") + "\n";
  }

  reset() {
    this.byFeature.clear();
  }
}

export const featureMetrics = new FeatureMetrics();
