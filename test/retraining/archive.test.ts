/**
 * The payload archive (src/retraining/archive.ts): what a job's export reads back is what was
 * predicted: every archived row's features (absent and null both exported as absent), its served
 * score, row number, version and label. Written as blocks (one feature-name list per object), with
 * per-row lines for rows that are not feature objects, sampled requests keeping their row numbers,
 * and objects written before blocks existed still read.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { registryDb } from "../../src/registry/store";
import { archiveLines, archivePrefix, exportTrainingData, gzip, readExport, type BufferedRequest, type ExportRow, type LabelRecord } from "../../src/retraining/archive";
import { getConfig } from "../../src/retraining/store";
import { call } from "../support/api";
import { archived, holdout, setupModel, trafficWithLabels, type HoldoutRow } from "./helpers";

/** The features as the model sees them: null and absent are both missing (omitted). */
const normalized = (f: Record<string, unknown>) => Object.fromEntries(Object.entries(f).filter(([, v]) => v !== null && v !== undefined));

async function exported(model: string, jobId: string): Promise<ExportRow[]> {
  const cfg = await getConfig(registryDb(env.DB), model);
  await exportTrainingData(env, model, jobId, cfg.config);
  return [...(await readExport(env, jobId, "train")), ...(await readExport(env, jobId, "oot"))];
}

describe("payload archive", () => {
  it("blocks, per-row fallbacks, sampled rows and old per-row objects all export as the rows that were predicted", async () => {
    const model = "ar-blocks";
    await setupModel(model);
    const rows = (await holdout()).slice(0, 30).map((r) => ({ ...r.features }) as Record<string, unknown>);
    delete rows[1].Income; // absent
    rows[2].Home = null; // null
    delete rows[3].Assets;
    rows[3].Debt = null;
    const now = Date.now();
    const requests: BufferedRequest[] = [
      { id: "req-batch", at: now - 4000, v: "1.0.0", rows: rows.slice(0, 10), scores: Float32Array.from({ length: 10 }, (_, i) => i / 10 + 0.01), keep: null },
      { id: "req-one", at: now - 3000, v: "1.1.0", rows: [rows[10]], scores: [0.5], keep: null },
      // Sampled: rows 3 and 7 of a request, kept as copies with their row numbers.
      { id: "req-sampled", at: now - 2000, v: "1.0.0", rows: [rows[13], rows[17]], scores: [0.25, 0.75], keep: [3, 7] },
      // Not feature objects: written one line per row as before.
      { id: "req-odd", at: now - 1000, v: "1.0.0", rows: [[1, 2, 3], "x"], scores: [0.1, 0.2], keep: null },
    ];
    const expected: ExportRow[] = [
      ...rows.slice(0, 10).map((f, i) => ({ request_id: "req-batch", row: i, at: now - 4000, version: "1.0.0", features: normalized(f), score: Math.fround(i / 10 + 0.01), label: i % 2 })),
      { request_id: "req-one", row: 0, at: now - 3000, version: "1.1.0", features: normalized(rows[10]), score: 0.5, label: 1 },
      { request_id: "req-sampled", row: 3, at: now - 2000, version: "1.0.0", features: normalized(rows[13]), score: 0.25, label: 0 },
      { request_id: "req-sampled", row: 7, at: now - 2000, version: "1.0.0", features: normalized(rows[17]), score: 0.75, label: 1 },
      { request_id: "req-odd", row: 0, at: now - 1000, version: "1.0.0", features: [1, 2, 3], score: 0.1, label: 0 },
      { request_id: "req-odd", row: 1, at: now - 1000, version: "1.0.0", features: "x", score: 0.2, label: 1 },
    ];
    const labels: LabelRecord[] = expected.map((e) => ({ t: "l", id: e.request_id, row: e.row, at: now, y: e.label }));
    const text = archiveLines(requests, labels);
    const lines = text.trim().split("\n").map((l) => JSON.parse(l));
    // One block naming each feature once, two per-row lines for the odd request, then the labels.
    expect(lines.map((l) => l.t)).toEqual(["b", "p", "p", ...labels.map(() => "l")]);
    expect(lines[0].k).toEqual(Object.keys(rows[0]));
    expect(lines[0].q).toHaveLength(3);
    expect(text).not.toContain('"Seniority":'); // names are not repeated per row
    const day = new Date(now).toISOString().slice(0, 10);
    await env.ARTIFACTS.put(`${archivePrefix(model)}${day}/block.ndjson.gz`, await gzip(text));
    // An object written before blocks existed: one JSON object per prediction.
    const old = [
      { t: "p", id: "req-old", row: 0, at: now - 5000, v: "0.9.0", f: rows[20], s: 0.3 },
      { t: "p", id: "req-old", row: 1, at: now - 5000, v: "0.9.0", f: rows[21], s: 0.6 },
      { t: "l", id: "req-old", row: 0, at: now, y: 1 },
      { t: "l", id: "req-old", row: 1, at: now, y: 0 },
    ];
    await env.ARTIFACTS.put(`${archivePrefix(model)}${day}/old.ndjson.gz`, await gzip(old.map((r) => JSON.stringify(r)).join("\n") + "\n"));
    expected.unshift(
      { request_id: "req-old", row: 0, at: now - 5000, version: "0.9.0", features: rows[20], score: 0.3, label: 1 },
      { request_id: "req-old", row: 1, at: now - 5000, version: "0.9.0", features: rows[21], score: 0.6, label: 0 },
    );
    const got = await exported(model, "00000000-0000-7000-8000-00000000a001");
    expect(got).toEqual(expected);
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
    const got = await exported(model, "00000000-0000-7000-8000-00000000a002");
    // Only the labelled traffic joins (the first predictions above have no labels).
    expect(got).toHaveLength(rows.length);
    const canonical = (f: unknown) => JSON.stringify(Object.entries(f as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : 1)));
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
