/**
 * The routing table each isolate keeps: which deployment (if any) routes a model's traffic.
 *
 * The source of truth is D1. Each isolate caches the model's routing deployment and, at most
 * every ROUTING_CHECK_SECONDS (default 2 s), reads one small KV key (`routing:<model>`) that every
 * change rewrites; a different token means reload from D1. Independently of KV, the cache is
 * reloaded from D1 once it is ROUTING_MAX_STALE_SECONDS old (default 10 s).
 *
 * Bound on how long a change takes to reach an isolate:
 * - the isolate that made the change: immediately (it drops its cache);
 * - any other isolate: at most min(check interval + KV propagation, max staleness). KV is
 *   eventually consistent: in the location of the write a new value is normally read within the
 *   check interval; Cloudflare documents up to ~60 s elsewhere, which the D1 max-staleness caps
 *   at 10 s. With the defaults: ~2 s typically, 10 s worst case, everywhere.
 * Cost on the hot path: a Map lookup; per isolate and model, one KV read every 2 s and one D1
 * query every 10 s (or on change). While one request refreshes a model's entry, concurrent requests
 * keep using the entry they have (at most one refresh's duration older); with no entry at all
 * (cold isolate, or a change made here) each request reads for itself. A refresh is never shared as
 * a promise: it wraps the refreshing request's KV and D1 I/O, and another request awaiting it can
 * fail with "Cannot perform I/O on behalf of a different request" (or hang when the refreshing
 * request is cancelled). Only the stored entry (plain data) is shared.
 */
import { intVar } from "../http/limits";
import { segmentsOf, type Segments } from "./assignment";
import { deploymentsDb, routingDeployment, type Deployment } from "./store";

export interface RoutingTable {
  deployment: Deployment;
  /** Which variant owns which part of [0, 1) (assignment.ts). */
  segments: Segments;
}

interface Entry {
  table: RoutingTable | null;
  token: string | null;
  loadedAt: number;
  checkedAt: number;
}

const entries = new Map<string, Entry>();
/** When some request began refreshing a model's entry (a time, never the refresh's promise). */
const refreshing = new Map<string, number>();
/** A refresh older than this is taken as abandoned (its request was cancelled): the next request refreshes. */
const REFRESH_ABANDONED_MS = 5_000;
const MAX_MODELS = 1000;

export function routingTokenKey(model: string): string {
  return `routing:${model}`;
}

export function forgetRouting(model?: string) {
  if (model === undefined) entries.clear();
  else entries.delete(model);
}

export function routingTimings(env: Env): { checkMs: number; maxStaleMs: number } {
  return { checkMs: intVar(env.ROUTING_CHECK_SECONDS, 2) * 1000, maxStaleMs: intVar(env.ROUTING_MAX_STALE_SECONDS, 10) * 1000 };
}

function build(d: Deployment | null): RoutingTable | null {
  return d ? { deployment: d, segments: segmentsOf(d.variants, d.config.segments) } : null;
}

/** The model's routing table as this isolate sees it at `now` (ms). */
export function routingFor(env: Env, model: string, now = Date.now()): RoutingTable | null | Promise<RoutingTable | null> {
  const entry = entries.get(model);
  const { checkMs, maxStaleMs } = routingTimings(env);
  if (entry && now - entry.checkedAt < checkMs && now - entry.loadedAt < maxStaleMs) return entry.table;
  const since = refreshing.get(model);
  if (entry && since !== undefined && Date.now() - since < REFRESH_ABANDONED_MS) return entry.table;
  const mine = Date.now();
  refreshing.set(model, mine);
  const refresh = (async () => {
    // Token first, then D1: a change landing in between is seen at the next check, never lost.
    const token = await env.CONFIG.get(routingTokenKey(model));
    if (entry && token === entry.token && now - entry.loadedAt < maxStaleMs) {
      entry.checkedAt = now;
      return entry.table;
    }
    const table = build(await routingDeployment(deploymentsDb(env.DB), model));
    if (entries.size >= MAX_MODELS && !entries.has(model)) entries.delete(entries.keys().next().value!);
    entries.set(model, { table, token, loadedAt: now, checkedAt: now });
    return table;
  })();
  const done = () => {
    if (refreshing.get(model) === mine) refreshing.delete(model);
  };
  refresh.then(done, done);
  return refresh;
}
