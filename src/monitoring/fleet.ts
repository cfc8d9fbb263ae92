/**
 * The read side: finds a model's active versions and their shards (from the model's control
 * object) and merges windows and labels across shards. Everything that answers "how is this
 * version doing" goes through here, so routes, evaluations, reports and /metrics agree.
 */
import { getVersion, registryDb, toModelVersion, type ModelVersion } from "../registry/store";
import { mergeAll, mergeInto, SAMPLE_CAP, emptyAggregate, windowRandom, type Aggregate } from "./aggregate";
import { DAY, HOUR, MINUTE, shardName } from "./config";
import type { LabelRow } from "./shard";

export const WINDOWS = { "1m": MINUTE, "5m": 5 * MINUTE, "30m": 30 * MINUTE, "1h": HOUR, "6h": 6 * HOUR, "24h": DAY, "7d": 7 * DAY } as const;
export type WindowName = keyof typeof WINDOWS;
export const WINDOW_NAMES = Object.keys(WINDOWS) as WindowName[];

export interface ActiveVersion {
  version: string;
  shards: string[];
}

export async function activeVersions(env: Env, model: string, since?: number): Promise<ActiveVersion[]> {
  return env.MODEL_CONTROL.getByName(model).active(since);
}

export async function loadVersion(env: Env, model: string, version: string): Promise<ModelVersion> {
  return toModelVersion(await getVersion(registryDb(env.DB), model, version));
}

export async function fleetWindow(env: Env, shards: string[], span: number, now = Date.now()): Promise<{ aggregate: Aggregate; seconds: number; from: number; to: number }> {
  const parts = await Promise.all(shards.map((s) => env.MONITOR_SHARD.getByName(s).window(span, now)));
  if (!parts.length) return { aggregate: emptyAggregate(), seconds: span / 1000, from: now - span, to: now };
  const from = Math.min(...parts.map((p) => p.from));
  return { aggregate: mergeAll(parts.map((p) => p.aggregate), SAMPLE_CAP.window, windowRandom(shards.join(","), from, span)), seconds: Math.max(...parts.map((p) => p.seconds)), from, to: now };
}

export async function fleetSeries(env: Env, shards: string[], span: number, now = Date.now()): Promise<{ start: number; aggregate: Aggregate }[]> {
  const parts = await Promise.all(shards.map((s) => env.MONITOR_SHARD.getByName(s).series(span, now)));
  const byStart = new Map<number, Aggregate>();
  for (const part of parts) for (const { start, aggregate } of part) byStart.set(start, byStart.has(start) ? mergeInto(byStart.get(start)!, aggregate, SAMPLE_CAP.window) : aggregate);
  return [...byStart].sort((a, b) => a[0] - b[0]).map(([start, aggregate]) => ({ start, aggregate }));
}

/** Labels of a version live in its shard 0 (`labelShard`), whatever MONITOR_SHARDS is. */
export function labelShard(model: string, version: string): string {
  return shardName(model, version, 0);
}

export async function fleetLabels(env: Env, model: string, version: string, since: number): Promise<LabelRow[]> {
  return env.MONITOR_SHARD.getByName(labelShard(model, version)).labelled(since);
}
