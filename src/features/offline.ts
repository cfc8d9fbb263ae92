/**
 * Offline features: bulk loads into KV through a Queue, and the one-read lookup that serves them.
 *
 * KV layout (the CONFIG namespace, under prefixes of its own):
 *   fo:<group>:<load>:<entity>  {"h": [[eventTimeMs, {feature: value}], ...]}  (time ascending, last 32)
 *   fp:<group>                  {"load": <id>, "previous": [<id>, ...]}        (the serving pointer)
 * Each load writes its own keys and is a full snapshot of the group; the pointer moves to it only
 * after the whole file is in, so a load that fails (too many rejected rows, an unreadable file, a
 * consumer that gave up) leaves the previous load serving. One KV read per entity and group returns
 * all of its offline features, and, with the row history, the value as of a past moment (point in
 * time, as Feast's historical retrieval): the latest row at or before `as_of`, looking back through
 * up to 10 previous loads when the current one has none that old.
 *
 * A load: the file is staged in R2 (an upload is stored under its sha256; or an existing R2 key is
 * named), a D1 row tracks it, and queue messages carry (load, byte offset). A consumer takes a lease
 * on the chunk at that offset in D1, reads up to FEATURE_LOAD_CHUNK_ROWS lines (one KV read and one
 * write per entity: within the 1,000 KV operations of an invocation), merges them into the entity
 * keys, enqueues the next offset, and then records progress. Delivery is at least once, so every
 * step is idempotent: merges replace rows of equal event time, a message whose offset is behind the
 * recorded progress is a duplicate (acknowledged), one ahead of it is early (retried), and a leased
 * chunk is not processed twice at once. The same file, group and options give the same load
 * (idempotency key), unless that load failed.
 */
import { and, desc, eq, gte, inArray, lt } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
import { sha256Hex } from "../http/encoding";
import { ApiError } from "../http/errors";
import { intVar } from "../http/limits";
import { featuresDb, groupDefinitions, type Dtype } from "./definitions";
import { parseRow, splitCsv, type LoadRow, type RowSpec, type Scalar } from "./rows";
import { featureLoads } from "./tables";

export const HISTORY = 32;
const CHUNK_BYTES = 1 << 20;
const LEASE_MS = 60_000;
const MAX_REJECTED_SAMPLE = 100;
const MAX_ATTEMPTS = 5;

export interface LoadMessage {
  kind: "feature_load";
  load: string;
  offset: number;
}

/** Precompute: put these entities' current offline records into the Cache API tier (same queue as loads). */
export interface WarmMessage {
  kind: "feature_warm";
  group: string;
  entities: string[];
}

export type LoadRowRecord = typeof featureLoads.$inferSelect;
export interface OfflineRecord {
  h: [number, Record<string, Scalar>][];
}
interface Pointer {
  load: string;
  previous: string[];
}

const recordKey = (group: string, load: string, entity: string) => `fo:${group}:${load}:${entity}`;
const pointerKey = (group: string) => `fp:${group}`;

export function describeLoad(l: LoadRowRecord) {
  return {
    id: l.id,
    group: l.group,
    format: l.format,
    source_key: l.sourceKey,
    status: l.status,
    entity_column: l.entityColumn,
    time_column: l.timeColumn,
    progress: { bytes_done: Math.max(0, l.nextOffset), bytes_total: l.totalBytes, fraction: l.totalBytes ? Math.min(1, l.nextOffset / l.totalBytes) : 1 },
    rows_loaded: l.rowsLoaded,
    rows_rejected: l.rowsRejected,
    max_rejected: l.maxRejected,
    rejected: l.rejected,
    ...(l.error ? { error: l.error } : {}),
    created_at: l.createdAt,
    created_by: l.createdBy,
    ...(l.finishedAt ? { finished_at: l.finishedAt } : {}),
  };
}

/** The group's active offline features: dtype, and `name@version` of each (what a load is validated against). */
async function offlineDtypes(env: Env, group: string): Promise<{ dtypes: Map<string, Dtype>; versions: string[] }> {
  const defs = await groupDefinitions(env, group);
  const dtypes = new Map<string, Dtype>();
  const versions: string[] = [];
  for (const d of defs.current.values()) {
    if (d.kind !== "offline") continue;
    dtypes.set(d.name, d.dtype);
    versions.push(`${d.name}@${d.version}`);
  }
  return { dtypes, versions: versions.sort() };
}

export interface NewLoad {
  group: string;
  format: "csv" | "ndjson";
  entityColumn: string;
  timeColumn?: string;
  maxRejected: number;
  /** Uploaded bytes, or the key of an object already in R2. */
  upload?: Uint8Array;
  r2Key?: string;
}

/** Stages and validates a load, then enqueues its first chunk. Returns an existing load for a repeated request. */
export async function createLoad(env: Env, req: NewLoad, actor: string): Promise<{ load: LoadRowRecord; created: boolean }> {
  const { dtypes, versions } = await offlineDtypes(env, req.group);
  if (!dtypes.size) throw new ApiError("invalid_input", `group '${req.group}' has no active offline features; define them first`, [{ path: "group", message: "no offline features" }]);

  let key: string;
  let contentId: string;
  let size: number;
  if (req.upload) {
    if (!req.upload.byteLength) throw new ApiError("invalid_input", "the uploaded file is empty");
    const sha = await sha256Hex(req.upload);
    key = `feature-loads/${sha}`;
    contentId = sha;
    size = req.upload.byteLength;
    if (!(await env.ARTIFACTS.head(key))) await env.ARTIFACTS.put(key, req.upload);
  } else {
    key = req.r2Key!;
    const head = await env.ARTIFACTS.head(key);
    if (!head) throw new ApiError("not_found", `R2 object '${key}' not found`);
    if (!head.size) throw new ApiError("invalid_input", `R2 object '${key}' is empty`);
    contentId = head.etag;
    size = head.size;
  }

  let columns: string[] | null = null;
  let dataOffset = 0;
  if (req.format === "csv") {
    const head = await env.ARTIFACTS.get(key, { range: { offset: 0, length: Math.min(size, 65_536) } });
    const bytes = new Uint8Array(await head!.arrayBuffer());
    const nl = bytes.indexOf(10);
    if (nl < 0 && size > bytes.byteLength) throw new ApiError("invalid_input", "CSV header line is longer than 64 KiB");
    const headerLine = new TextDecoder().decode(bytes.subarray(0, nl < 0 ? bytes.byteLength : nl)).replace(/\r$/, "").replace(/^\uFEFF/, "");
    columns = splitCsv(headerLine) ?? null;
    if (!columns) throw new ApiError("invalid_input", "malformed CSV header");
    dataOffset = nl < 0 ? bytes.byteLength : nl + 1;
    const issues = [];
    if (!columns.includes(req.entityColumn)) issues.push({ path: "entity_column", message: `CSV header has no column '${req.entityColumn}'` });
    if (req.timeColumn && !columns.includes(req.timeColumn)) issues.push({ path: "time_column", message: `CSV header has no column '${req.timeColumn}'` });
    const seen = new Set<string>();
    for (const c of columns) {
      if (seen.has(c)) issues.push({ path: `columns.${c}`, message: "duplicate column" });
      seen.add(c);
      if (c !== req.entityColumn && c !== req.timeColumn && !dtypes.has(c)) issues.push({ path: `columns.${c}`, message: `'${c}' is not an active offline feature of group '${req.group}'` });
    }
    if (issues.length) throw new ApiError("invalid_input", `CSV header does not match group '${req.group}': ${issues[0].message}`, issues);
  }

  // The definitions' versions are part of the key: the same file sent after a feature was redefined
  // (a new type) is a new load, validated against the new definitions, not the earlier load returned.
  const idempotencyKey = await sha256Hex(JSON.stringify([req.group, req.format, req.entityColumn, req.timeColumn ?? null, req.maxRejected, key, contentId, versions]));
  const db = featuresDb(env.DB);
  const previous = await db.select().from(featureLoads).where(eq(featureLoads.idempotencyKey, idempotencyKey)).orderBy(desc(featureLoads.createdAt));
  const reusable = previous.find((l) => l.status !== "failed");
  if (reusable) return { load: reusable, created: false };

  const load: LoadRowRecord = {
    id: uuidv7(),
    group: req.group,
    format: req.format,
    sourceKey: key,
    idempotencyKey,
    entityColumn: req.entityColumn,
    timeColumn: req.timeColumn ?? null,
    columns,
    status: "queued",
    totalBytes: size,
    nextOffset: dataOffset,
    rowsSeen: 0,
    rowsLoaded: 0,
    rowsRejected: 0,
    maxRejected: req.maxRejected,
    rejected: [],
    leaseUntil: 0,
    error: null,
    createdAt: new Date().toISOString(),
    createdBy: actor,
    finishedAt: null,
  };
  await db.insert(featureLoads).values(load);
  try {
    await env.FEATURE_LOADS.send({ kind: "feature_load", load: load.id, offset: dataOffset } satisfies LoadMessage);
  } catch (error) {
    await db.delete(featureLoads).where(eq(featureLoads.id, load.id));
    throw error;
  }
  return { load, created: true };
}

export async function getLoad(env: Env, id: string): Promise<LoadRowRecord> {
  const [row] = await featuresDb(env.DB).select().from(featureLoads).where(eq(featureLoads.id, id));
  if (!row) throw new ApiError("not_found", `load '${id}' not found`);
  return row;
}

export async function listLoads(env: Env, group: string) {
  return featuresDb(env.DB).select().from(featureLoads).where(eq(featureLoads.group, group)).orderBy(desc(featureLoads.createdAt)).limit(100);
}

/** Merges rows into a history: one entry per event time (a re-sent row replaces its twin), the last HISTORY kept. */
export function mergeHistory(record: OfflineRecord | null, rows: LoadRow[]): OfflineRecord {
  const byTime = new Map<number, Record<string, Scalar>>(record?.h ?? []);
  for (const r of rows) byTime.set(r.t, r.values);
  const h = [...byTime.entries()].sort((a, b) => a[0] - b[0]).slice(-HISTORY);
  return { h };
}

type Outcome = "ack" | "retry";

/** Processes one queue message of a load. Throws on transient failures (the message is retried). */
export async function processLoadMessage(env: Env, body: LoadMessage, attempts: number): Promise<Outcome> {
  const db = featuresDb(env.DB);
  const load = await getLoad(env, body.load).catch(() => undefined);
  if (!load || load.status === "succeeded" || load.status === "failed") return "ack";
  if (body.offset < load.nextOffset) return "ack"; // a duplicate of a chunk already recorded
  if (body.offset > load.nextOffset) return "retry"; // enqueued before the previous chunk's progress was recorded
  const now = Date.now();
  const claimed = await db
    .update(featureLoads)
    .set({ leaseUntil: now + LEASE_MS, status: "running" })
    .where(and(eq(featureLoads.id, load.id), eq(featureLoads.nextOffset, body.offset), lt(featureLoads.leaseUntil, now)))
    .returning({ id: featureLoads.id });
  if (!claimed.length) return "retry"; // another delivery holds this chunk

  try {
    await processChunk(env, load, body.offset);
    return "ack";
  } catch (error) {
    await db.update(featureLoads).set({ leaseUntil: 0 }).where(eq(featureLoads.id, load.id));
    if (attempts >= MAX_ATTEMPTS) {
      await db
        .update(featureLoads)
        .set({ status: "failed", error: `gave up after ${attempts} attempts: ${String((error as Error).message ?? error).slice(0, 300)}`, finishedAt: new Date().toISOString() })
        .where(eq(featureLoads.id, load.id));
      return "ack";
    }
    throw error;
  }
}

async function fail(env: Env, id: string, error: string, extra: Partial<LoadRowRecord> = {}) {
  await featuresDb(env.DB)
    .update(featureLoads)
    .set({ ...extra, status: "failed", error, leaseUntil: 0, finishedAt: new Date().toISOString() })
    .where(eq(featureLoads.id, id));
}

async function processChunk(env: Env, load: LoadRowRecord, offset: number) {
  const end = Math.min(load.totalBytes, offset + CHUNK_BYTES);
  let bytes = new Uint8Array(0);
  if (end > offset) {
    const object = await env.ARTIFACTS.get(load.sourceKey, { range: { offset, length: end - offset } });
    if (!object) return fail(env, load.id, `source object '${load.sourceKey}' is gone`);
    bytes = new Uint8Array(await object.arrayBuffer());
  }
  const atEof = end >= load.totalBytes;
  const maxRows = intVar(env.FEATURE_LOAD_CHUNK_ROWS, 400);
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
  const lines: string[] = [];
  let consumed = 0;
  while (lines.length < maxRows && consumed < bytes.byteLength) {
    const nl = bytes.indexOf(10, consumed);
    if (nl < 0 && !atEof) break;
    const stop = nl < 0 ? bytes.byteLength : nl;
    try {
      lines.push(decoder.decode(bytes.subarray(consumed, stop)).replace(/\r$/, ""));
    } catch {
      lines.push("\u0000invalid utf-8");
    }
    consumed = nl < 0 ? bytes.byteLength : nl + 1;
  }
  if (!lines.length && bytes.byteLength && !atEof) return fail(env, load.id, `line at byte ${offset} is longer than ${CHUNK_BYTES} bytes`);

  const { dtypes } = await offlineDtypes(env, load.group);
  const spec: RowSpec = {
    format: load.format,
    columns: load.columns,
    entityColumn: load.entityColumn,
    timeColumn: load.timeColumn,
    dtypes,
    defaultTime: Date.parse(load.createdAt),
  };
  const firstLine = (load.format === "csv" ? 2 : 1) + load.rowsSeen;
  const rejected: { row: number; message: string }[] = [];
  const byEntity = new Map<string, LoadRow[]>();
  let loaded = 0;
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    const row = line.startsWith("\u0000") ? "not valid UTF-8" : parseRow(line, spec, firstLine + i);
    if (typeof row === "string") {
      rejected.push({ row: firstLine + i, message: row });
      return;
    }
    loaded++;
    const list = byEntity.get(row.entity) ?? [];
    list.push(row);
    byEntity.set(row.entity, list);
  });

  const rowsRejected = load.rowsRejected + rejected.length;
  const sample = [...load.rejected, ...rejected].slice(0, MAX_REJECTED_SAMPLE);
  const progress = { rowsSeen: load.rowsSeen + lines.length, rowsLoaded: load.rowsLoaded + loaded, rowsRejected, rejected: sample };
  if (rowsRejected > load.maxRejected) {
    // Nothing of this chunk is written: rows_loaded keeps counting written rows only.
    return fail(env, load.id, `${rowsRejected} rejected row(s), more than max_rejected ${load.maxRejected}; the previous values keep serving`, { ...progress, rowsLoaded: load.rowsLoaded });
  }

  const entries = [...byEntity.entries()];
  for (let i = 0; i < entries.length; i += 50) {
    await Promise.all(
      entries.slice(i, i + 50).map(async ([entity, rows]) => {
        const key = recordKey(load.group, load.id, entity);
        const existing = await env.CONFIG.get<OfflineRecord>(key, "json");
        await env.CONFIG.put(key, JSON.stringify(mergeHistory(existing, rows)));
      }),
    );
  }

  const nextOffset = offset + consumed;
  const done = nextOffset >= load.totalBytes;
  const db = featuresDb(env.DB);
  if (done) {
    await switchPointer(env, load.group, load.id);
    await db
      .update(featureLoads)
      .set({ ...progress, nextOffset, status: "succeeded", leaseUntil: 0, finishedAt: new Date().toISOString() })
      .where(eq(featureLoads.id, load.id));
    return;
  }
  await env.FEATURE_LOADS.send({ kind: "feature_load", load: load.id, offset: nextOffset } satisfies LoadMessage);
  await db.update(featureLoads).set({ ...progress, nextOffset, leaseUntil: 0 }).where(eq(featureLoads.id, load.id));
}

async function switchPointer(env: Env, group: string, load: string) {
  const current = await env.CONFIG.get<Pointer>(pointerKey(group), "json");
  if (current?.load === load) return;
  const next: Pointer = { load, previous: current ? [current.load, ...current.previous].slice(0, 10) : [] };
  await env.CONFIG.put(pointerKey(group), JSON.stringify(next));
  pointers.delete(group);
}

// ---- serving ----

// Resolved values only: a pending KV read belongs to the request that started it, and workerd
// refuses to let another request await it ("Cannot perform I/O on behalf of a different request").
const pointers = new Map<string, { expires: number; value: Pointer | null }>();

export function invalidatePointers() {
  pointers.clear();
}

async function pointerOf(env: Env, group: string): Promise<Pointer | null> {
  const hit = pointers.get(group);
  if (hit && hit.expires > Date.now()) return hit.value;
  const value = await env.CONFIG.get<Pointer>(pointerKey(group), "json");
  if (pointers.size >= 1000) pointers.delete(pointers.keys().next().value!);
  pointers.set(group, { expires: Date.now() + intVar(env.REGISTRY_CACHE_SECONDS, 5) * 1000, value });
  return value;
}

export interface OfflineValues {
  t: number;
  values: Record<string, Scalar>;
}

/** The entity's latest offline row of a group (or the latest at or before `asOf`), null when it has none. */
export async function readOffline(env: Env, group: string, entity: string, asOf?: number): Promise<OfflineValues | null> {
  const pointer = await pointerOf(env, group);
  if (!pointer) return null;
  const loads = asOf === undefined ? [pointer.load] : [pointer.load, ...pointer.previous];
  for (const load of loads) {
    const record = await env.CONFIG.get<OfflineRecord>(recordKey(group, load, entity), "json");
    if (!record?.h.length) {
      if (asOf === undefined) return null;
      continue;
    }
    if (asOf === undefined) {
      const [t, values] = record.h[record.h.length - 1];
      return { t, values };
    }
    for (let i = record.h.length - 1; i >= 0; i--) if (record.h[i][0] <= asOf) return { t: record.h[i][0], values: record.h[i][1] };
  }
  return null;
}

/** The Cache API key of an entity's record in a load: a new load gets new keys, so nothing stale is served after a pointer switch. */
function cacheApiRequest(group: string, load: string, entity: string) {
  return new Request(`https://feature-cache.internal/${encodeURIComponent(group)}/${encodeURIComponent(load)}/${encodeURIComponent(entity)}`);
}

/**
 * The current offline values of an entity and the tier that gave them: the Cache API (when
 * FEATURE_CACHE_API_SECONDS > 0 and the entity was warmed) or KV.
 */
export async function readOfflineTiered(env: Env, group: string, entity: string): Promise<{ value: OfflineValues | null; tier: "cache_api" | "kv" }> {
  if (intVar(env.FEATURE_CACHE_API_SECONDS, 300) > 0) {
    const pointer = await pointerOf(env, group);
    if (!pointer) return { value: null, tier: "kv" };
    const hit = await caches.default.match(cacheApiRequest(group, pointer.load, entity));
    if (hit) return { value: await hit.json<OfflineValues | null>(), tier: "cache_api" };
  }
  return { value: await readOffline(env, group, entity), tier: "kv" };
}

/** Warms entities of a group: each one's current record (or its absence) read from KV and put into the Cache API tier. */
export async function warmEntities(env: Env, message: WarmMessage): Promise<number> {
  const seconds = intVar(env.FEATURE_CACHE_API_SECONDS, 300);
  if (seconds <= 0) return 0;
  const pointer = await pointerOf(env, message.group);
  if (!pointer) return 0;
  await Promise.all(
    message.entities.map(async (entity) => {
      const value = await readOffline(env, message.group, entity);
      const body = JSON.stringify(value);
      await caches.default.put(cacheApiRequest(message.group, pointer.load, entity), new Response(body, { headers: { "content-type": "application/json", "cache-control": `max-age=${seconds}` } }));
    }),
  );
  return message.entities.length;
}

// ---- sweep (cron) ----

/**
 * Loads whose queue messages ran out of retries (or were lost) never finish on their own: a load
 * still queued or running FEATURE_LOAD_MAX_HOURS (default 6) after it was created is marked failed
 * with that reason; the pointer never moved to it, so the previous values keep serving. Then the KV
 * records written by failed loads of the last 7 days (in-band failures included) are deleted, up
 * to 1,000 keys per load and run (a later run finishes a larger one); a load the pointer names is
 * never touched. Costs one KV list per recently failed load per cron run.
 */
export async function sweepFeatureLoads(env: Env, now = Date.now()): Promise<{ failed: string[]; deletedKeys: number }> {
  const db = featuresDb(env.DB);
  const maxHours = intVar(env.FEATURE_LOAD_MAX_HOURS, 6);
  const cutoff = new Date(now - maxHours * 3_600_000).toISOString();
  const stalled = await db
    .update(featureLoads)
    .set({ status: "failed", leaseUntil: 0, finishedAt: new Date(now).toISOString(), error: `no progress for ${maxHours} h: its queue messages ran out of retries or were lost; the previous values keep serving` })
    .where(and(inArray(featureLoads.status, ["queued", "running"]), lt(featureLoads.createdAt, cutoff), lt(featureLoads.leaseUntil, now)))
    .returning({ id: featureLoads.id });
  const recent = await db
    .select({ id: featureLoads.id, group: featureLoads.group })
    .from(featureLoads)
    .where(and(eq(featureLoads.status, "failed"), gte(featureLoads.finishedAt, new Date(now - 7 * 86_400_000).toISOString())))
    .limit(100);
  let deletedKeys = 0;
  for (const load of recent) {
    const pointer = await env.CONFIG.get<Pointer>(pointerKey(load.group), "json");
    if (pointer && (pointer.load === load.id || pointer.previous.includes(load.id))) continue;
    const listed = await env.CONFIG.list({ prefix: recordKey(load.group, load.id, "") });
    await Promise.all(listed.keys.map((k) => env.CONFIG.delete(k.name)));
    deletedKeys += listed.keys.length;
  }
  if (stalled.length || deletedKeys) console.log(JSON.stringify({ level: "info", msg: "feature load sweep", failed: stalled.map((s) => s.id), deleted_keys: deletedKeys }));
  return { failed: stalled.map((s) => s.id), deletedKeys };
}
