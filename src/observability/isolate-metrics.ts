/**
 * This isolate's request counters and latency histograms, rendered in Prometheus text format at
 * /metrics. They cover one isolate only (fleet-wide aggregation belongs to the monitoring Durable
 * Objects); `process_start_time_seconds` lets a scraper tell isolates apart and detect resets.
 *
 * Histograms use fixed millisecond buckets reported in seconds, following Prometheus naming.
 */

const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const INFERENCE_BUCKETS_S = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1];

class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly buckets: number[]) {
    this.counts = new Array(buckets.length).fill(0);
  }
  observe(seconds: number) {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (seconds <= this.buckets[i]) this.counts[i]++;
  }
}

function labels(obj: Record<string, string>): string {
  const parts = Object.entries(obj).map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

export class IsolateMetrics {
  private readonly requests = new Map<string, { labels: Record<string, string>; value: number }>();
  private readonly latency = new Map<string, { labels: Record<string, string>; h: Histogram }>();
  private readonly inference = new Map<string, { labels: Record<string, string>; h: Histogram; rows: number }>();
  readonly startedAt = Date.now() / 1000;

  recordRequest(route: string, status: number, seconds: number) {
    const code = String(status);
    const key = `${route} ${code}`;
    const counter = this.requests.get(key) ?? { labels: { route, code }, value: 0 };
    counter.value++;
    this.requests.set(key, counter);
    const lat = this.latency.get(route) ?? { labels: { route }, h: new Histogram(LATENCY_BUCKETS_S) };
    lat.h.observe(seconds);
    this.latency.set(route, lat);
  }

  recordInference(model: string, version: string, rows: number, seconds: number) {
    const key = `${model} ${version}`;
    const entry = this.inference.get(key) ?? { labels: { model, version }, h: new Histogram(INFERENCE_BUCKETS_S), rows: 0 };
    entry.h.observe(seconds / Math.max(rows, 1));
    entry.rows += rows;
    this.inference.set(key, entry);
  }

  render(gauges: Record<string, { help: string; value: number }> = {}): string {
    const out: string[] = [];
    out.push("# HELP edge_ml_http_requests_total HTTP requests handled by this isolate.", "# TYPE edge_ml_http_requests_total counter");
    for (const { labels: l, value } of this.requests.values()) out.push(`edge_ml_http_requests_total${labels(l)} ${value}`);
    histogram(out, "edge_ml_http_request_duration_seconds", "HTTP request latency in this isolate.", this.latency.values());
    histogram(out, "edge_ml_inference_seconds_per_row", "Inference time per row (tensor build + session run + decode) in this isolate.", this.inference.values());
    out.push("# HELP edge_ml_predicted_rows_total Rows scored by this isolate.", "# TYPE edge_ml_predicted_rows_total counter");
    for (const { labels: l, rows } of this.inference.values()) out.push(`edge_ml_predicted_rows_total${labels(l)} ${rows}`);
    for (const [name, g] of Object.entries(gauges)) out.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`, `${name} ${g.value}`);
    out.push("# HELP process_start_time_seconds Start time of this isolate since the Unix epoch.", "# TYPE process_start_time_seconds gauge", `process_start_time_seconds ${this.startedAt}`);
    return out.join("\n") + "\n";
  }
}

function histogram(out: string[], name: string, help: string, series: Iterable<{ labels: Record<string, string>; h: Histogram }>) {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
  for (const { labels: l, h } of series) {
    h.buckets.forEach((le, i) => out.push(`${name}_bucket${labels({ ...l, le: String(le) })} ${h.counts[i]}`));
    out.push(`${name}_bucket${labels({ ...l, le: "+Inf" })} ${h.count}`, `${name}_sum${labels(l)} ${h.sum}`, `${name}_count${labels(l)} ${h.count}`);
  }
}

/** The isolate's metrics (isolate-scoped by design: nothing request-scoped lives here). */
export const isolateMetrics = new IsolateMetrics();
