/**
 * The payload archive (src/retraining/archive.ts): what a job's export reads back is what was
 * predicted: every archived row's features (absent and null both exported as absent), its served
 * score, row number, version and label. The serving isolates write columnar blocks
 * (src/retraining/archive-block.ts); objects written in the earlier formats (gzip NDJSON blocks and
 * one JSON object per prediction) must still export, and the same predictions export identically
 * whichever format holds them. Blocks are written from validated columns; sampled requests keeping
 * their row numbers, categories, booleans, values a row left out (absent or null), and rows that
 * were not feature objects in the earlier formats are all covered.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { registryDb } from "../../src/registry/store";
import { archived as isArchived, archivePrefix, PayloadArchive, type BufferedRequest, type LabelRecord } from "../../src/retraining/archive";
import { hash32, rowDraw } from "../../src/stats/random";
import { exportTrainingData, gzip, readExport, type ExportRow } from "../../src/retraining/export";
import { BlockBuilder, decodeBlock, encodeBlock, isBlock } from "../../src/retraining/archive-block";
import { rowValidator } from "../../src/inference/features";
import type { FeatureSchema } from "../../src/registry/manifest";
import { repoJson } from "../support/files";
import { getConfig } from "../../src/retraining/store";
import type { FeedbackEvent, PredictionEvent } from "../../src/serving/events";
import { call } from "../support/api";
import { archived, holdout, setupModel, trafficWithLabels, type HoldoutRow } from "./helpers";

/** The features as the model sees them: null and absent are both missing (omitted). */
const normalized = (f: Record<string, unknown>) => Object.fromEntries(Object.entries(f).filter(([, v]) => v !== null && v !== undefined));

/** A request as the earlier writers took it: the raw rows. */
interface RawRequest {
  id: string;
  at: number;
  v: string;
  rows: readonly unknown[];
  scores: ArrayLike<number>;
  keep: number[] | null;
}

/**
 * The gzip NDJSON writer the serving isolates used before columnar blocks (kept here, verbatim, to
 * write objects in that format): one block line naming each feature once, per-row lines for rows
 * that are not feature objects, then the labels.
 */
function legacyArchiveLines(requests: readonly RawRequest[], labels: readonly LabelRecord[]): string {
  const isFeatureObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);
  const keys: string[] = [];
  const index = new Map<string, number>();
  const block: unknown[] = [];
  const lines: string[] = [];
  for (const q of requests) {
    if (!q.rows.every(isFeatureObject)) {
      q.rows.forEach((f, n) => lines.push(JSON.stringify({ t: "p", id: q.id, row: q.keep ? q.keep[n] : n, at: q.at, v: q.v, f, s: q.scores[n] })));
      continue;
    }
    const values: unknown[][] = [];
    const scores: number[] = [];
    for (let i = 0; i < q.rows.length; i++) {
      const row = q.rows[i] as Record<string, unknown>;
      const out: unknown[] = [];
      for (const k in row) {
        let j = index.get(k);
        if (j === undefined) index.set(k, (j = keys.push(k) - 1));
        out[j] = row[k];
      }
      values.push(out);
      scores.push(q.scores[i]);
    }
    block.push([q.id, q.at, q.v, q.keep, values, scores]);
  }
  if (block.length) lines.unshift(JSON.stringify({ t: "b", k: keys, q: block }));
  for (const l of labels) lines.push(JSON.stringify(l));
  return lines.join("\n") + "\n";
}

/**
 * A raw request as the serving isolate archives it: the whole request's rows validated into columns
 * against `schema`, and the row numbers kept. A sampled raw request lists only its kept rows, so they
 * are put back at their row numbers (the other rows, never read, repeat the first).
 */
function buffered(schema: FeatureSchema, q: RawRequest): BufferedRequest {
  const rows = q.keep ? Array.from({ length: Math.max(...q.keep) + 1 }, () => q.rows[0]) : [...q.rows];
  const scores = q.keep ? new Array<number>(rows.length).fill(-1) : q.scores;
  q.keep?.forEach((r, m) => {
    rows[r] = q.rows[m];
    (scores as number[])[r] = q.scores[m];
  });
  return { id: q.id, at: q.at, v: q.v, features: schema.features, resolved: rowValidator(schema).resolve(rows, (i) => `rows[${i}]`), scores, keep: q.keep };
}

/** A schema of numeric features (missing: "nan"), accepting any finite double. */
function numericSchema(names: string[], categorical: Record<string, string[]> = {}): FeatureSchema {
  return {
    features: [
      ...names.map((name) => ({ name, type: "numeric", missing: { policy: "nan" } })),
      ...Object.entries(categorical).map(([name, categories]) => ({ name, type: "categorical", categories, missing: { policy: "nan" } })),
    ],
    input: { kind: "per_feature", tensors: [] },
    output: { kind: "regressor", value: "v" },
  } as unknown as FeatureSchema;
}

/** A feature object as text with its keys sorted (the formats may order keys differently). */
const canonical = (f: unknown) => JSON.stringify(Object.entries(f as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : 1)));

async function exported(model: string, jobId: string): Promise<ExportRow[]> {
  const cfg = await getConfig(registryDb(env.DB), model);
  await exportTrainingData(env, model, jobId, cfg.config);
  return [...(await readExport(env, jobId, "train")), ...(await readExport(env, jobId, "oot"))];
}

describe("payload archive", () => {
  it("the same predictions export identically from a columnar block and from the earlier gzip NDJSON formats", async () => {
    // The demo model's schema, plus a boolean and a number the model does not take (monitorOnly).
    const demo = (await repoJson("models/credit-risk-lr.manifest.json")).featureSchema as FeatureSchema;
    const schema = { ...demo, features: [...demo.features, { name: "Flag", type: "boolean", missing: { policy: "nan" }, monitorOnly: true }, { name: "Late", type: "numeric", missing: { policy: "nan" }, monitorOnly: true }] } as FeatureSchema;
    const rows = (await holdout()).slice(0, 30).map((r) => ({ ...r.features }) as Record<string, unknown>);
    delete rows[1].Income; // absent: imputed for the model, archived as missing
    rows[2].Home = null; // null: the same
    delete rows[3].Assets;
    rows[3].Debt = null;
    rows[4] = Object.fromEntries(Object.entries(rows[4]).reverse()); // another key order
    rows[5].Flag = true; // a boolean
    rows[6].Flag = false;
    rows[8].Late = 0.1 + 0.2; // a feature first sent mid-block: missing in the rows before it
    rows[9].Late = -1.5e-300;
    const now = Date.now();
    const raw: RawRequest[] = [
      { id: "req-batch", at: now - 4000, v: "1.0.0", rows: rows.slice(0, 10), scores: Float32Array.from({ length: 10 }, (_, i) => i / 10 + 0.01), keep: null },
      { id: "req-one", at: now - 3000, v: "1.1.0", rows: [rows[10]], scores: [0.5], keep: null },
      // Sampled: rows 3 and 7 of a request, kept as copies with their row numbers.
      { id: "req-sampled", at: now - 2000, v: "1.0.0", rows: [rows[13], rows[17]], scores: [0.25, 0.75], keep: [3, 7] },
    ];
    const expected: ExportRow[] = [
      ...rows.slice(0, 10).map((f, i) => ({ request_id: "req-batch", row: i, at: now - 4000, version: "1.0.0", features: normalized(f), score: Math.fround(i / 10 + 0.01), label: i % 2 })),
      { request_id: "req-one", row: 0, at: now - 3000, version: "1.1.0", features: normalized(rows[10]), score: 0.5, label: 1 },
      { request_id: "req-sampled", row: 3, at: now - 2000, version: "1.0.0", features: normalized(rows[13]), score: 0.25, label: 0 },
      { request_id: "req-sampled", row: 7, at: now - 2000, version: "1.0.0", features: normalized(rows[17]), score: 0.75, label: 1 },
    ];
    const labels: LabelRecord[] = expected.map((e) => ({ t: "l", id: e.request_id, row: e.row, at: now, y: e.label }));
    // An object written before blocks existed: one JSON object per prediction, and rows that were
    // not feature objects (archived as they came before rows were validated).
    const perRow = [
      { t: "p", id: "req-old", row: 0, at: now - 5000, v: "0.9.0", f: rows[20], s: 0.3 },
      { t: "p", id: "req-old", row: 1, at: now - 5000, v: "0.9.0", f: rows[21], s: 0.6 },
      { t: "p", id: "req-odd", row: 0, at: now - 5000, v: "0.9.0", f: [1, 2, 3], s: 0.1 },
      { t: "l", id: "req-old", row: 0, at: now, y: 1 },
      { t: "l", id: "req-old", row: 1, at: now, y: 0 },
      { t: "l", id: "req-odd", row: 0, at: now, y: 0 },
    ];
    expected.unshift(
      { request_id: "req-odd", row: 0, at: now - 5000, version: "0.9.0", features: [1, 2, 3], score: 0.1, label: 0 },
      { request_id: "req-old", row: 0, at: now - 5000, version: "0.9.0", features: rows[20], score: 0.3, label: 1 },
      { request_id: "req-old", row: 1, at: now - 5000, version: "0.9.0", features: rows[21], score: 0.6, label: 0 },
    );
    const day = new Date(now).toISOString().slice(0, 10);

    const block = encodeBlock(
      raw.map((q) => buffered(schema, q)),
      labels,
    );
    expect(isBlock(block)).toBe(true);
    // Feature names and values are not written as text per row.
    const text = new TextDecoder().decode(block);
    expect(text.split('"Seniority"')).toHaveLength(2);
    expect(text.split('"rent"').length).toBeLessThanOrEqual(2);
    await setupModel("ar-columnar");
    await env.ARTIFACTS.put(`${archivePrefix("ar-columnar")}${day}/a.block`, block);
    await env.ARTIFACTS.put(`${archivePrefix("ar-columnar")}${day}/old.ndjson.gz`, await gzip(perRow.map((r) => JSON.stringify(r)).join("\n") + "\n"));

    const legacy = legacyArchiveLines(raw, labels);
    expect(legacy.split("\n")[0]).toMatch(/^\{"t":"b"/);
    await setupModel("ar-legacy");
    await env.ARTIFACTS.put(`${archivePrefix("ar-legacy")}${day}/block.ndjson.gz`, await gzip(legacy));
    await env.ARTIFACTS.put(`${archivePrefix("ar-legacy")}${day}/old.ndjson.gz`, await gzip(perRow.map((r) => JSON.stringify(r)).join("\n") + "\n"));

    const columnar = await exported("ar-columnar", "00000000-0000-7000-8000-00000000a001");
    const earlier = await exported("ar-legacy", "00000000-0000-7000-8000-00000000a003");
    expect(columnar).toEqual(expected);
    expect(earlier).toEqual(expected);
    expect(JSON.stringify(columnar.map((r) => ({ ...r, features: canonical(r.features) })))).toBe(JSON.stringify(earlier.map((r) => ({ ...r, features: canonical(r.features) }))));
  });

  it("columns are stored in the narrowest exact type, and every value decodes exactly", () => {
    const values: Record<string, number[]> = {
      i8: [0, -128, 127],
      i16: [300, -32768, 32767],
      i32: [70000, -2147483648, 2147483647],
      f32: [0.5, -1.25, 16777216],
      f64: [0.1, 1e300, -5e-324],
      negativeZero: [0, -0, 1],
      big: [2 ** 53, -(2 ** 31) - 1, 0],
      intThenFraction: [16777217, 0.5, 0], // an integer float32 cannot hold, then a fraction: float64
    };
    const schema = numericSchema(Object.keys(values));
    const rows = [0, 1, 2].map((r) => Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v[r]])));
    const block = encodeBlock([buffered(schema, { id: "r", at: 1, v: "1", rows, scores: [0.1, 0.2, 0.3], keep: null })], []);
    const decoded = decodeBlock(block).predictions;
    decoded.forEach((p, r) => {
      for (const [k, v] of Object.entries(values)) expect(Object.is((p.f as Record<string, number>)[k], v[r]), `${k} row ${r}: ${(p.f as Record<string, number>)[k]}`).toBe(true);
      expect(p.s).toBe([0.1, 0.2, 0.3][r]);
    });
    const header = JSON.parse(new TextDecoder().decode(block.subarray(8, 8 + new DataView(block.buffer, block.byteOffset).getUint32(4, true))));
    expect(header.t).toEqual(["f64", "i8", "i16", "i32", "f32", "f64", "f32", "f64", "f64"]);
    expect(header.u).toEqual(Object.keys(values).map(() => 1)); // all numbers: no kind bytes
    // 1,000 rows of one small integer feature and float32 scores: ~5 bytes a row.
    const many = Array.from({ length: 1000 }, (_, i) => ({ a: i % 100 }));
    const small = encodeBlock([buffered(numericSchema(["a"]), { id: "m", at: 1, v: "1", rows: many, scores: Float32Array.from(many, (_, i) => i / 1000), keep: null })], []);
    expect(small.length).toBeLessThan(1000 * 5 + 200);
    expect(decodeBlock(small).predictions.map((p) => p.f)).toEqual(many);
  });

  it("a block decodes to exactly its rows; damaged blocks are refused, not misread", () => {
    const schema = numericSchema(["a", "c"], { b: ["x", "y"] });
    const rows: Record<string, unknown>[] = [{ a: 1, b: "x" }, { b: "y", c: null }, {}, { a: -0.5, b: "x" }];
    const block = encodeBlock([buffered(schema, { id: "r", at: 5, v: "1", rows, scores: [0.1, 0.2, 0.3, 0.4], keep: null })], [{ t: "l", id: "r", row: 2, at: 6, y: "yes" }]);
    const { predictions, labels } = decodeBlock(block);
    expect(predictions).toEqual(rows.map((f, row) => ({ t: "p", id: "r", row, at: 5, v: "1", f: normalized(f), s: [0.1, 0.2, 0.3, 0.4][row] })));
    expect(labels).toEqual([{ t: "l", id: "r", row: 2, at: 6, y: "yes" }]);
    // The header's offset need not leave the columns 8-byte aligned in the caller's buffer.
    const shifted = new Uint8Array(block.length + 3);
    shifted.set(block, 3);
    expect(decodeBlock(shifted.subarray(3)).predictions).toEqual(predictions);
    expect(() => decodeBlock(block.subarray(0, block.length - 1))).toThrow(/bytes, expected/);
    // A header whose column types do not match its features (same length, so the bytes still fit).
    const h = new DataView(block.buffer, block.byteOffset).getUint32(4, true);
    const header = JSON.parse(new TextDecoder().decode(block.subarray(8, 8 + h)));
    for (const change of [{ t: [...header.t, "i8"] }, { u: header.u.slice(1) }, { t: header.t.map(() => "u64") }]) {
      const json = new TextEncoder().encode(JSON.stringify({ ...header, ...change }));
      const forged = new Uint8Array(8 + json.length + block.length - 8 - h);
      forged.set(block.subarray(0, 4));
      new DataView(forged.buffer).setUint32(4, json.length, true);
      forged.set(json, 8);
      forged.set(block.subarray(8 + h), 8 + json.length);
      expect(() => decodeBlock(forged), JSON.stringify(change)).toThrow(/header does not describe its columns/);
    }
    expect(isBlock(new TextEncoder().encode('{"t":"p"}'))).toBe(false);
  });

  it("a sampled request archives copies of its kept rows, with their row numbers", () => {
    const schema = numericSchema(["a"], { b: ["x", "y"] });
    const rows = [{ a: 1, b: "x" }, { b: "y" }, { a: 3 }, { a: 4, b: "y" }];
    const all = rowValidator(schema).resolve(rows, (i) => `rows[${i}]`);
    const block = encodeBlock([{ id: "s", at: 1, v: "1", features: schema.features, resolved: all, scores: [0.1, 0.2, 0.3, 0.4], keep: [1, 3] }], []);
    expect(decodeBlock(block).predictions.map((p) => [p.row, p.f, p.s])).toEqual([
      [1, { b: "y" }, 0.2],
      [3, { a: 4, b: "y" }, 0.4],
    ]);
  });

  it("a builder copies each request as it is added, and every block starts empty", () => {
    const wide = numericSchema(["a", "c"], { b: ["x", "y"] });
    const first = [
      { a: 1, b: "x", c: 5 },
      { a: 2.5, b: "y", c: 6 },
      { a: -3, c: 7 },
    ];
    const builder = new BlockBuilder();
    const added = buffered(wide, { id: "one", at: 1, v: "1", rows: first, scores: Float64Array.of(0.1, 0.2, 0.3), keep: null });
    builder.add(added);
    // The request's arrays are reused after it (as a decoder's or validator's buffers could be): the block holds what was added.
    for (const c of added.resolved.columns) c.fill(0);
    (added.scores as Float64Array).fill(9);
    const one = builder.finish([]);
    expect(decodeBlock(one).predictions).toEqual(first.map((f, row) => ({ t: "p", id: "one", row, at: 1, v: "1", f, s: [0.1, 0.2, 0.3][row] })));
    // The next block: fewer rows, another schema, a missing value: no cell, column or level of the first shows through, and its bytes are a fresh builder's.
    const next = buffered(numericSchema(["c"], { d: ["z"] }), { id: "two", at: 2, v: "2", rows: [{ c: 8 }, { d: "z" }], scores: [0.5, 0.6], keep: null });
    builder.add(next);
    const two = builder.finish([]);
    expect(decodeBlock(two).predictions).toEqual([
      { t: "p", id: "two", row: 0, at: 2, v: "2", f: { c: 8 }, s: 0.5 },
      { t: "p", id: "two", row: 1, at: 2, v: "2", f: { d: "z" }, s: 0.6 },
    ]);
    expect(two).toEqual(encodeBlock([next], []));
    expect(builder.rows).toBe(0);
  });

  it("sampling is per row and keyed by request id: labels are archived exactly for the archived predictions, at the configured share", async () => {
    // The draw: over 20,000 sequential ids x 5 rows, each row's share at rate 0.3 is within 4 sigma, and rows of one request are uncorrelated.
    const n = 20_000;
    const kept = Array.from({ length: 5 }, () => 0);
    let both = 0;
    for (let i = 0; i < n; i++) {
      const h = hash32(`req-${i}`);
      for (let row = 0; row < 5; row++) if (rowDraw(h, row) < 0.3) kept[row]++;
      if (rowDraw(h, 0) < 0.3 && rowDraw(h, 1) < 0.3) both++;
    }
    const sigma = Math.sqrt(n * 0.3 * 0.7);
    for (const k of kept) expect(Math.abs(k - 0.3 * n)).toBeLessThan(4 * sigma);
    expect(Math.abs(both - 0.09 * n)).toBeLessThan(4 * Math.sqrt(n * 0.09 * 0.91));

    // Through an isolate's archive: 120 requests of 5 rows at rate 0.3, and a label for every row.
    const model = "ar-sampled";
    await setupModel(model, { sample_rate: 0.3 });
    const schema = (await repoJson("models/credit-risk-lr.manifest.json")).featureSchema as FeatureSchema;
    const rows = (await holdout()).slice(0, 5).map((r) => r.features);
    const archive = new PayloadArchive();
    for (let q = 0; q < 120; q++) {
      const event = { requestId: `smp-${q}`, at: Date.now(), dispatch: { version: { modelName: model, version: "1.0.0", featureSchema: schema } }, resolved: rowValidator(schema).resolve(rows, (i) => `rows[${i}]`), rows, columns: { scores: Float32Array.from(rows, () => 0.5) } } as unknown as PredictionEvent;
      await archive.recordPrediction(env, event);
      for (let row = 0; row < 5; row++) await archive.recordFeedback(env, { requestId: `smp-${q}`, row, model, version: "1.0.0", score: 0.5, actual: row % 2, at: Date.now() } as unknown as FeedbackEvent);
    }
    await archive.flush(env, model);
    const predicted = new Set<string>();
    const labelled = new Set<string>();
    for (const o of (await env.ARTIFACTS.list({ prefix: archivePrefix(model) })).objects) {
      const block = decodeBlock(new Uint8Array(await (await env.ARTIFACTS.get(o.key))!.arrayBuffer()));
      for (const p of block.predictions) predicted.add(`${p.id}#${p.row}`);
      for (const l of block.labels) labelled.add(`${l.id}#${l.row}`);
    }
    expect([...labelled].sort()).toEqual([...predicted].sort());
    expect([...predicted].every((k) => isArchived(k.split("#")[0], Number(k.split("#")[1]), 0.3))).toBe(true);
    expect(Math.abs(predicted.size - 180)).toBeLessThan(4 * Math.sqrt(600 * 0.3 * 0.7));
  });

  it("an isolate's buffers together are bounded: crossing RETRAINING_ARCHIVE_BUFFER_ROWS flushes the model being recorded", async () => {
    await setupModel("ar-cap-a");
    await setupModel("ar-cap-b");
    const schema = (await repoJson("models/credit-risk-lr.manifest.json")).featureSchema as FeatureSchema;
    const rows = (await holdout()).slice(0, 100).map((r) => r.features);
    const event = (model: string, id: string) =>
      ({ requestId: id, at: Date.now(), dispatch: { version: { modelName: model, version: "1.0.0", featureSchema: schema } }, resolved: rowValidator(schema).resolve(rows, (i) => `rows[${i}]`), rows, columns: { scores: Float32Array.from(rows, (_, i) => i / 100) } }) as unknown as PredictionEvent;
    const bounded = { ...env, RETRAINING_ARCHIVE_FLUSH_ROWS: "1000", RETRAINING_ARCHIVE_BUFFER_ROWS: "150" } as Env;
    const archive = new PayloadArchive();
    // Held (under the hold's bounds), then copied into ar-cap-a's block by the flush that crosses the buffer bound.
    await archive.recordPrediction(bounded, event("ar-cap-a", "cap-1"));
    expect(archive.flushes).toBe(0);
    expect(archive.bufferedRows()).toBe(100);
    await archive.recordPrediction(bounded, event("ar-cap-b", "cap-2"));
    expect(archive.flushes).toBe(1);
    expect(archive.bufferedRows()).toBe(100);
    expect((await env.ARTIFACTS.list({ prefix: archivePrefix("ar-cap-a") })).objects).toHaveLength(0);
    const [written] = (await env.ARTIFACTS.list({ prefix: archivePrefix("ar-cap-b") })).objects;
    const block = decodeBlock(new Uint8Array(await (await env.ARTIFACTS.get(written.key))!.arrayBuffer()));
    expect(block.predictions.map((p) => [p.id, p.row, p.f])).toEqual(rows.map((f, i) => ["cap-2", i, normalized(f)]));
    await archive.flush(bounded, "ar-cap-a");
    expect(archive.bufferedRows()).toBe(0);
    const [a] = (await env.ARTIFACTS.list({ prefix: archivePrefix("ar-cap-a") })).objects;
    const blockA = decodeBlock(new Uint8Array(await (await env.ARTIFACTS.get(a.key))!.arrayBuffer()));
    expect(blockA.predictions.map((p) => [p.id, p.row, p.f, p.s])).toEqual(rows.map((f, i) => ["cap-1", i, normalized(f), Math.fround(i / 100)]));
  });

  it("through the worker: archived features and scores are the request's and the answer's", async () => {
    const model = "ar-live";
    await setupModel(model);
    const rows: HoldoutRow[] = (await holdout()).slice(0, 200).map((r, i) => {
      const features: Record<string, unknown> = { ...r.features };
      if (i % 7 === 0) delete features.Income;
      if (i % 11 === 0) features.Job = null;
      return { features, label: r.label };
    });
    // The scores the worker answers for these rows (same version, deterministic).
    const served: number[] = [];
    for (let i = 0; i < rows.length; i += 100) {
      const res = await call("POST", `/v1/models/${model}/predict`, { instances: rows.slice(i, i + 100).map((r) => r.features), version: "1.0.0" });
      served.push(...res.json.predictions.map((p: { score: number }) => p.score));
    }
    await trafficWithLabels(model, rows, (r) => r.label, "ar", { version: "1.0.0" });
    await archived(model, 2);
    // The serving isolates write columnar blocks.
    const objects = (await env.ARTIFACTS.list({ prefix: archivePrefix(model) })).objects;
    for (const o of objects) {
      expect(o.key).toMatch(/\.block$/);
      expect(isBlock(new Uint8Array(await (await env.ARTIFACTS.get(o.key))!.arrayBuffer()))).toBe(true);
    }
    const got = await exported(model, "00000000-0000-7000-8000-00000000a002");
    // Only the labelled traffic joins (the first predictions above have no labels).
    expect(got).toHaveLength(rows.length);
    const seen = new Set<number>();
    for (const e of got) {
      expect(e.version).toBe("1.0.0");
      // Row e.row of the first or the second 100-row request: the one whose features it holds.
      const k = [e.row, 100 + e.row].find((j) => canonical(normalized(rows[j].features)) === canonical(e.features));
      expect(k, JSON.stringify(e)).toBeDefined();
      seen.add(k!);
      expect(e.features).toEqual(normalized(rows[k!].features));
      expect(e.score).toBeCloseTo(served[k!], 6);
      expect(e.label).toBe(rows[k!].label);
    }
    expect(seen.size).toBe(rows.length);
  });
});
