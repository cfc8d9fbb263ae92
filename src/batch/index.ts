/**
 * Batch scoring's public face: the admin routes, the queue consumer (batch queue and its dead-letter
 * queue) and the /metrics series. src/app.ts and src/index.ts wire these and nothing else.
 */
import { batchTotals } from "./store";

export { batchRoutes } from "./routes";
export { consumeBatch } from "./consumer";
export { BATCH_DLQ, BATCH_QUEUE, type BatchMessage } from "./messages";

const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

/**
 * Fleet-wide batch series for /metrics, read from the job table (one grouped query): rows scored
 * and rows rejected by batch jobs, labelled traffic="batch", and jobs by state.
 */
export async function renderBatchMetrics(env: Env): Promise<string> {
  const totals = await batchTotals(env);
  if (!totals.length) return "";
  const rows = new Map<string, { scored: number; failed: number }>();
  const jobs = new Map<string, number>();
  for (const t of totals) {
    const key = `model="${esc(t.model)}",version="${esc(t.version)}"`;
    const r = rows.get(key) ?? { scored: 0, failed: 0 };
    r.scored += t.rows - t.failed;
    r.failed += t.failed;
    rows.set(key, r);
    jobs.set(t.state, (jobs.get(t.state) ?? 0) + t.jobs);
  }
  let out = "# HELP edge_ml_batch_rows_total Rows processed by batch scoring jobs, by outcome (scored, or rejected as bad rows).\n# TYPE edge_ml_batch_rows_total counter\n";
  for (const [key, r] of rows) {
    out += `edge_ml_batch_rows_total{${key},traffic="batch",outcome="scored"} ${r.scored}\n`;
    out += `edge_ml_batch_rows_total{${key},traffic="batch",outcome="rejected"} ${r.failed}\n`;
  }
  out += "# HELP edge_ml_batch_jobs Batch scoring jobs by state.\n# TYPE edge_ml_batch_jobs gauge\n";
  for (const [state, n] of jobs) out += `edge_ml_batch_jobs{state="${esc(state)}"} ${n}\n`;
  return out;
}
