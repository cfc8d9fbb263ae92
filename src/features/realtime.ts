/**
 * Realtime features: FeatureAggregates, a Durable Object per (group, shard), the shard chosen by a
 * hash of the entity id (FEATURE_SHARDS per group), so an entity's events always meet in one
 * object and no object is global.
 *
 * Storage (SQLite), bounded by time rather than traffic:
 * - seen(entity, event_id, ts): the ids of accepted events, so a re-sent event is counted once;
 * - buckets(entity, event, field, start, n, sum, min, max): one-minute buckets per event type and
 *   numeric field ("" holds the plain count).
 * Both keep RETENTION (7 days, the longest window, plus a day); an hourly alarm purges older rows.
 *
 * Events are placed by their event time, not arrival: a late event lands in the bucket of its
 * time and every window that covers that time sees it. Events older than the retention (a window
 * could no longer count them correctly) are refused as `too_late`, and so are events more than
 * MAX_SKEW in the future. A window of span S covers the buckets starting at or after
 * floor((now - S) / 1 min) * 1 min: its edge is minute-granular (at most one minute wider).
 * count and sum of an empty window are 0; mean, min and max of an empty window are missing (null),
 * which the feature's fallback then handles.
 */
import { DurableObject } from "cloudflare:workers";
import { intVar } from "../http/limits";
import { hash32 } from "../stats/random";
import type { AggregateSpec } from "./definitions";
import { MAX_WINDOW_SECONDS, WINDOWS } from "./definitions";

export const BUCKET_MS = 60_000;
export const RETENTION_MS = (MAX_WINDOW_SECONDS + 86_400) * 1000;
export const MAX_SKEW_MS = 5 * 60_000;
const PURGE_EVERY_MS = 3_600_000;

export interface FeatureEvent {
  entity: string;
  event: string;
  id: string;
  ts: number;
  fields: Record<string, number>;
}

export interface IngestResult {
  accepted: number;
  duplicates: number;
  too_late: number;
}

export interface AggregateQuery {
  key: string;
  spec: AggregateSpec;
}

export class FeatureAggregates extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`CREATE TABLE IF NOT EXISTS seen (entity TEXT NOT NULL, event_id TEXT NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY (entity, event_id))`);
      this.sql.exec(`CREATE INDEX IF NOT EXISTS seen_ts ON seen (ts)`);
      this.sql.exec(
        `CREATE TABLE IF NOT EXISTS buckets (entity TEXT NOT NULL, event TEXT NOT NULL, field TEXT NOT NULL, start INTEGER NOT NULL,
           n INTEGER NOT NULL, sum REAL NOT NULL, min REAL, max REAL, PRIMARY KEY (entity, event, field, start))`,
      );
      this.sql.exec(`CREATE INDEX IF NOT EXISTS buckets_start ON buckets (start)`);
    });
  }

  /** Adds events (deduplicated by entity and event id) to their buckets, in one transaction. */
  async ingest(events: FeatureEvent[], now = Date.now()): Promise<IngestResult> {
    const result: IngestResult = { accepted: 0, duplicates: 0, too_late: 0 };
    this.ctx.storage.transactionSync(() => {
      for (const e of events) {
        if (e.ts < now - RETENTION_MS) {
          result.too_late++;
          continue;
        }
        const insert = this.sql.exec(`INSERT OR IGNORE INTO seen (entity, event_id, ts) VALUES (?, ?, ?)`, e.entity, e.id, e.ts);
        insert.toArray();
        if (!insert.rowsWritten) {
          result.duplicates++;
          continue;
        }
        result.accepted++;
        const start = Math.floor(e.ts / BUCKET_MS) * BUCKET_MS;
        this.add(e.entity, e.event, "", start, 0);
        for (const [field, value] of Object.entries(e.fields)) this.add(e.entity, e.event, field, start, value);
      }
    });
    if (result.accepted && (await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(now + PURGE_EVERY_MS);
    return result;
  }

  private add(entity: string, event: string, field: string, start: number, value: number) {
    this.sql.exec(
      `INSERT INTO buckets (entity, event, field, start, n, sum, min, max) VALUES (?, ?, ?, ?, 1, ?, ?, ?)
       ON CONFLICT (entity, event, field, start) DO UPDATE SET n = n + 1, sum = sum + excluded.sum,
         min = MIN(min, excluded.min), max = MAX(max, excluded.max)`,
      entity,
      event,
      field,
      start,
      value,
      value,
      value,
    );
  }

  /** Values of the given aggregates for each entity: result[entity][key]. */
  async read(entities: string[], queries: AggregateQuery[], now = Date.now()): Promise<Record<string, Record<string, number | null>>> {
    const out: Record<string, Record<string, number | null>> = {};
    for (const entity of entities) {
      const values: Record<string, number | null> = {};
      for (const { key, spec } of queries) {
        const from = Math.floor((now - WINDOWS[spec.window] * 1000) / BUCKET_MS) * BUCKET_MS;
        const row = this.sql
          .exec<{ n: number | null; sum: number | null; min: number | null; max: number | null }>(
            `SELECT SUM(n) AS n, SUM(sum) AS sum, MIN(min) AS min, MAX(max) AS max FROM buckets WHERE entity = ? AND event = ? AND field = ? AND start >= ? AND start <= ?`,
            entity,
            spec.event,
            spec.field ?? "",
            from,
            now,
          )
          .one();
        const n = row.n ?? 0;
        values[key] =
          spec.fn === "count" ? n : spec.fn === "sum" ? (row.sum ?? 0) : n === 0 ? null : spec.fn === "mean" ? row.sum! / n : spec.fn === "min" ? row.min : row.max;
      }
      out[entity] = values;
    }
    return out;
  }

  async alarm() {
    const cutoff = Date.now() - RETENTION_MS;
    this.sql.exec(`DELETE FROM seen WHERE ts < ?`, cutoff);
    this.sql.exec(`DELETE FROM buckets WHERE start < ?`, cutoff - BUCKET_MS);
    const left = this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM seen`).one().n;
    if (left) await this.ctx.storage.setAlarm(Date.now() + PURGE_EVERY_MS);
  }
}

export function shardOf(env: Env, group: string, entity: string): string {
  return `${group}#${hash32(entity) % intVar(env.FEATURE_SHARDS, 16)}`;
}

export function aggregatesStub(env: Env, shard: string) {
  return env.FEATURE_AGGREGATES.getByName(shard);
}
