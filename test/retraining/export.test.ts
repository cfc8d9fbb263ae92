/**
 * The training-data export (src/retraining/export.ts) against a reference join of everything
 * archived. Simulated traffic: four isolates archive predictions in blocks flushed 0-20 s after
 * their last row, a fifth archives the delayed labels (0 s to 6 h after the prediction, some
 * corrected later, some twice in one block), so a label's block is sometimes flushed before its
 * prediction's. The export must keep exactly the newest `max_rows` labelled rows of the window,
 * in prediction-time order, the newest `oot_fraction` as the out-of-time set, whatever the slice
 * size it writes with; and with a small `max_rows` it must read only the newest objects (before,
 * it read every object of the window and held every prediction in memory).
 */
import { env } from "cloudflare:test";
import { v7 as uuidv7 } from "uuid";
import { describe, expect, it } from "vitest";
import { rowValidator } from "../../src/inference/features";
import type { FeatureSchema } from "../../src/registry/manifest";
import { archivePrefix } from "../../src/retraining/archive";
import { encodeBlock, type BufferedRequest, type LabelRecord } from "../../src/retraining/archive-block";
import { exportTrainingData, readExport, type ExportRow } from "../../src/retraining/export";
import type { StoredConfig } from "../../src/retraining/model";
import { mulberry32 } from "../../scripts/lib/prng";

const HOUR = 3_600_000;
const schema = {
  features: [
    { name: "x", type: "numeric", missing: { policy: "nan" } },
    { name: "c", type: "categorical", categories: ["a", "b"], missing: { policy: "nan" } },
  ],
  input: { kind: "per_feature", tensors: [] },
  output: { kind: "regressor", value: "v" },
} as unknown as FeatureSchema;

interface Prediction {
  id: string;
  row: number;
  at: number;
  f: { x: number; c: string };
  s: number;
}
interface Archived {
  key: string;
  flushed: number;
  requests: BufferedRequest[];
  labels: LabelRecord[];
}

/** Two days and a half of simulated traffic ending at `now`, as archive objects, and what was predicted. */
function simulate(model: string, now: number, seed: number) {
  const rand = mulberry32(seed);
  const objects: Archived[] = [];
  const predictions: Prediction[] = [];
  const labels: LabelRecord[] = [];
  const start = now - 60 * HOUR;
  const isolates = Array.from({ length: 4 }, () => ({ requests: [] as BufferedRequest[], rows: 0 }));
  const key = (flushed: number) => `${archivePrefix(model)}${new Date(flushed).toISOString().slice(0, 10)}/${uuidv7({ msecs: flushed })}.block`;
  const flush = (i: number, last: number) => {
    const isolate = isolates[i];
    if (!isolate.requests.length) return;
    const flushed = Math.min(now, last + Math.floor(rand() * 20_000));
    objects.push({ key: key(flushed), flushed, requests: isolate.requests, labels: [] });
    isolates[i] = { requests: [], rows: 0 };
  };
  let at = start;
  for (let r = 0; at < now - 1000; r++) {
    at += Math.floor(rand() * 120_000);
    const n = 1 + Math.floor(rand() * 3);
    const rows = Array.from({ length: n }, () => ({ x: Math.round(rand() * 1e6) / 1e3, c: rand() < 0.5 ? "a" : "b" }));
    const scores = Float32Array.from(rows, () => rand());
    const id = `req-${String(r).padStart(5, "0")}`;
    const i = Math.floor(rand() * isolates.length);
    isolates[i].requests.push({ id, at, v: "1.0.0", features: schema.features, resolved: rowValidator(schema).resolve(rows, (k) => `rows[${k}]`), scores, keep: null });
    isolates[i].rows += n;
    rows.forEach((f, row) => predictions.push({ id, row, at, f, s: scores[row] }));
    if (isolates[i].rows >= 40) flush(i, at);
    // Labels for ~60% of rows: most within seconds, the rest up to 6 h later; some corrected later.
    rows.forEach((_, row) => {
      if (rand() < 0.4) return;
      const delay = rand() < 0.5 ? Math.floor(rand() * 3000) : Math.floor(rand() * 6 * HOUR);
      labels.push({ t: "l", id, row, at: at + delay, y: rand() < 0.5 ? 1 : 0 });
      if (rand() < 0.05) labels.push({ t: "l", id, row, at: at + delay + Math.floor(rand() * HOUR), y: rand() < 0.5 ? 1 : 0 });
    });
  }
  isolates.forEach((isolate, i) => flush(i, isolate.requests.at(-1)?.at ?? now));
  // The label isolate: labels in arrival order, a block every 30 labels, flushed 0-5 s after its last.
  const arrived = labels.filter((l) => l.at <= now).sort((a, b) => a.at - b.at);
  for (let i = 0; i < arrived.length; i += 30) {
    const block = arrived.slice(i, i + 30);
    const flushed = Math.min(now, block.at(-1)!.at + Math.floor(rand() * 5000));
    if (rand() < 0.2) block.push({ ...block[0], y: block[0].y === 1 ? 0 : 1 }); // corrected within one block: the last wins
    objects.push({ key: key(flushed), flushed, requests: [], labels: block });
  }
  return { objects, predictions };
}

/** The export by brute force: every prediction of the window joined to its label (the newest object's, the last in it). */
function reference(objects: Archived[], predictions: Prediction[], since: number, maxRows: number, ootFraction: number) {
  const label = new Map<string, number | string>();
  for (const o of [...objects].sort((a, b) => a.flushed - b.flushed || (a.key < b.key ? -1 : 1))) for (const l of o.labels) label.set(`${l.id}#${l.row}`, l.y);
  const joined: ExportRow[] = predictions
    .filter((p) => p.at >= since && label.has(`${p.id}#${p.row}`))
    .map((p) => ({ request_id: p.id, row: p.row, at: p.at, version: "1.0.0", features: p.f, score: p.s, label: label.get(`${p.id}#${p.row}`)! }))
    .sort((a, b) => a.at - b.at || (a.request_id < b.request_id ? -1 : a.request_id > b.request_id ? 1 : a.row - b.row));
  const kept = joined.slice(Math.max(0, joined.length - maxRows));
  const cut = kept.length - Math.round(kept.length * ootFraction);
  return { train: kept.slice(0, cut), oot: kept.slice(cut), labelled: joined.length };
}

const config = (days: number, maxRows: number, ootFraction = 0.2) => ({ export: { days, max_rows: maxRows, oot_fraction: ootFraction } }) as StoredConfig;

async function store(objects: Archived[]) {
  for (const o of objects) await env.ARTIFACTS.put(o.key, encodeBlock(o.requests, o.labels));
}

describe("training-data export", () => {
  const now = Date.UTC(2026, 11, 2, 9, 30);
  const model = "ex-sim";
  const sim = simulate(model, now, 7);

  it("the simulation has what the export must handle: labels flushed before their predictions, late and corrected labels", () => {
    const flushedAt = new Map<string, number>();
    for (const o of sim.objects) for (const q of o.requests) flushedAt.set(q.id, o.flushed);
    const early = sim.objects.flatMap((o) => o.labels.filter((l) => o.flushed < flushedAt.get(l.id)!));
    expect(early.length).toBeGreaterThan(20);
    expect(sim.objects.length).toBeGreaterThan(150);
    expect(new Set(sim.objects.map((o) => o.key.split("/")[3])).size).toBe(4); // four day folders, the first outside a 2-day window
  });

  it("keeps exactly the newest labelled rows of the window, in time order, whatever the slice size", async () => {
    await store(sim.objects);
    const days = 2;
    const since = now - days * 24 * HOUR;
    for (const [job, maxRows, sliceRows] of [
      ["00000000-0000-7000-8000-0000000e0001", 500_000, 20_000],
      ["00000000-0000-7000-8000-0000000e0002", 500_000, 7],
      ["00000000-0000-7000-8000-0000000e0003", 300, 13],
    ] as const) {
      const want = reference(sim.objects, sim.predictions, since, maxRows, 0.2);
      const summary = await exportTrainingData(env, model, job, config(days, maxRows), now, sliceRows);
      expect(await readExport(env, job, "train")).toEqual(want.train);
      expect(await readExport(env, job, "oot")).toEqual(want.oot);
      expect(summary).toMatchObject({ train_rows: want.train.length, oot_rows: want.oot.length, from: new Date(want.train[0].at).toISOString(), oot_from: new Date(want.oot[0].at).toISOString(), to: new Date(want.oot.at(-1)!.at).toISOString() });
      if (maxRows === 500_000) expect(summary.labelled_rows).toBe(want.labelled);
    }
  });

  it("with a small max_rows it reads only the newest objects", async () => {
    const all = (await env.ARTIFACTS.list({ prefix: archivePrefix(model) })).objects.length;
    const few = await exportTrainingData(env, model, "00000000-0000-7000-8000-0000000e0004", config(30, 100), now);
    const many = await exportTrainingData(env, model, "00000000-0000-7000-8000-0000000e0005", config(30, 500_000), now);
    expect(many.objects).toBe(all);
    expect(few.train_rows + few.oot_rows).toBe(100);
    expect(few.objects).toBeLessThan(all / 4);
  });

  it("an empty archive exports two empty sets", async () => {
    const summary = await exportTrainingData(env, "ex-empty", "00000000-0000-7000-8000-0000000e0006", config(30, 1000), now);
    expect(summary).toEqual({ train_rows: 0, oot_rows: 0, labelled_rows: 0, archived_predictions: 0, objects: 0, from: null, oot_from: null, to: null });
    expect(await readExport(env, "00000000-0000-7000-8000-0000000e0006", "train")).toEqual([]);
    expect(await readExport(env, "00000000-0000-7000-8000-0000000e0006", "oot")).toEqual([]);
  });
});
