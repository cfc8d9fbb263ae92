/**
 * In-isolate inference profiling: how long this isolate takes to build tensors, run the session
 * and decode outputs for a batch of rows, averaged over many iterations.
 *
 * Workers' clocks are coarse (1 ms here) and, once deployed, do not advance during pure CPU work;
 * they move at I/O. So the loop is timed as a whole, bracketed by a cheap KV read that lets the
 * clock catch up, and the figure is a mean per run and per row, not a per-call distribution. When
 * the clock did not move at all, the result says so instead of reporting zero.
 */
import { rowValidator } from "./features";
import { decodeOutputs, requestedOutputs } from "./outputs";
import { getOrt } from "./ort";
import { loadModel } from "./predictor";
import { buildFeeds } from "./tensors";
import type { ModelVersion } from "../registry/store";

export interface ProfileResult {
  rows_per_run: number;
  iterations: number;
  total_ms: number | null;
  mean_ms_per_run: number | null;
  mean_ms_per_row: number | null;
  note?: string;
}

async function clockTick(env: Env): Promise<number> {
  await env.CONFIG.get("__profile_clock_tick"); // I/O: lets a deployed Worker's clock advance
  return performance.now();
}

export async function profileInference(env: Env, version: ModelVersion, rows: unknown[], iterations: number): Promise<ProfileResult> {
  const schema = version.featureSchema;
  const [ort, model] = await Promise.all([getOrt(), loadModel(env, version)]);
  const outputs = requestedOutputs(schema.output);
  const resolved = rowValidator(schema).resolve(rows, (i) => `instances[${i}]`);
  await model.run(buildFeeds(ort, schema, resolved), outputs); // warm-up
  const started = await clockTick(env);
  for (let i = 0; i < iterations; i++) {
    const results = await model.run(buildFeeds(ort, schema, resolved), outputs);
    decodeOutputs(schema.output, results, resolved.n, model.info.zipMapClasses);
  }
  const total = (await clockTick(env)) - started;
  if (total <= 0) {
    return { rows_per_run: rows.length, iterations, total_ms: null, mean_ms_per_run: null, mean_ms_per_row: null, note: "the isolate's clock did not advance; increase iterations" };
  }
  return { rows_per_run: rows.length, iterations, total_ms: total, mean_ms_per_run: total / iterations, mean_ms_per_row: total / iterations / rows.length };
}
