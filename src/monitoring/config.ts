/** Monitoring settings from wrangler vars, with defaults (see wrangler.toml for what each means). */
import { intVar } from "../http/limits";
import { hash32 } from "../stats/random";

export interface MonitoringConfig {
  enabled: boolean;
  /** Models served without monitoring (MONITORING_EXCLUDE_MODELS): no statistics, no prediction log. */
  excluded: ReadonlySet<string>;
  flushMs: number;
  flushEvents: number;
  flushRows: number;
  statsShards: number;
  logShards: number;
  logDays: number;
}

const parsed = new WeakMap<object, MonitoringConfig>();

/** Parsed once per env object (it is read on every request). */
export function monitoringConfig(env: Env): MonitoringConfig {
  let cfg = parsed.get(env);
  if (!cfg) parsed.set(env, (cfg = parse(env as unknown as Record<string, string | undefined>)));
  return cfg;
}

function parse(vars: Record<string, string | undefined>): MonitoringConfig {
  return {
    enabled: vars.MONITORING_ENABLED !== "false",
    excluded: new Set((vars.MONITORING_EXCLUDE_MODELS ?? "").split(",").map((name) => name.trim()).filter(Boolean)),
    flushMs: intVar(vars.MONITORING_FLUSH_MS, 2000),
    flushEvents: intVar(vars.MONITORING_FLUSH_EVENTS, 5000),
    flushRows: intVar(vars.MONITORING_FLUSH_ROWS, 250000),
    statsShards: Math.min(intVar(vars.MONITOR_SHARDS, 1), 64),
    logShards: Math.min(intVar(vars.PREDICTION_LOG_SHARDS, 4), 256),
    logDays: intVar(vars.PREDICTION_LOG_DAYS, 30),
  };
}

export const shardName = (model: string, version: string, shard: number) => `${model}@${version}#${shard}`;
/** The prediction-log shard of a request id, and its object name (where /v1/feedback finds the request). */
export const logShardOf = (requestId: string, shards: number) => hash32(requestId) % shards;
export const logShardNameAt = (model: string, shard: number) => `${model}#${shard}`;
export const logShardName = (model: string, requestId: string, shards: number) => logShardNameAt(model, logShardOf(requestId, shards));
export const MINUTE = 60_000;
export const HOUR = 3_600_000;
export const DAY = 86_400_000;
