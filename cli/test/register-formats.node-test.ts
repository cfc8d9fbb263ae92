/**
 * `eml register --data` reads CSV, NDJSON and Parquet, and the same training data in any of them
 * gives the same manifest (issue 17).
 *
 * The Parquet files are written in the test by hyparquet-writer (an independent writer: this
 * machine's Debian has python3-pandas 1.5 but neither pyarrow nor fastparquet, so pandas cannot
 * write Parquet here). Each CSV column is typed as pandas' read_csv would type it before
 * `df.to_parquet()`: whole numbers with no missing cell INT64, other numbers DOUBLE (missing as
 * null, as pyarrow writes pandas' NaN), true/false BOOLEAN, the rest STRING. Files are written
 * SNAPPY-compressed (pandas' and pyarrow's default) and GZIP-compressed (node:zlib's gzip), and
 * the NDJSON is what `df.to_json(orient="records", lines=True)` writes (numbers as numbers, missing
 * as null).
 * (*.node-test.ts: run by `node --test`, not by vitest.)
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { parquetWriteBuffer } from "hyparquet-writer";
import { parseCsv } from "../../scripts/lib/csv.ts";
import { readTable } from "../register/data.ts";
import { inferManifest } from "../register/infer.ts";
import { registerOptions, type RegisterFlags } from "../verbs/register.ts";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const rel = (p: string) => path.join(ROOT, p);
const DIR = mkdtempSync(path.join(tmpdir(), "eml-formats-"));

type Kind = "INT64" | "DOUBLE" | "BOOLEAN" | "STRING";
interface Typed {
  name: string;
  kind: Kind;
  values: (bigint | number | boolean | string | null)[];
}

/** The CSV's columns typed as pandas.read_csv would type them. */
function pandasColumns(csvFile: string): Typed[] {
  const { header, rows } = parseCsv(readFileSync(csvFile, "utf8"));
  return header.map((name, i) => {
    const cells = rows.map((r) => (r[i] === "" ? null : r[i]));
    const present = cells.filter((c): c is string => c !== null);
    const missing = present.length < cells.length;
    if (present.every((c) => /^-?\d+$/.test(c)) && !missing) return { name, kind: "INT64", values: cells.map((c) => BigInt(c!)) };
    if (present.every((c) => c.trim() !== "" && Number.isFinite(Number(c)))) return { name, kind: "DOUBLE", values: cells.map((c) => (c === null ? null : Number(c))) };
    if (present.every((c) => c === "true" || c === "false" || c === "True" || c === "False")) return { name, kind: "BOOLEAN", values: cells.map((c) => (c === null ? null : c.toLowerCase() === "true")) };
    return { name, kind: "STRING", values: cells };
  });
}

function writeParquet(columns: Typed[], file: string, codec: "SNAPPY" | "GZIP"): string {
  const buffer = parquetWriteBuffer({
    columnData: columns.map((c) => ({ name: c.name, data: c.values, type: c.kind, nullable: true })),
    codec,
    compressors: { GZIP: (input: Uint8Array) => new Uint8Array(gzipSync(input)) },
  });
  writeFileSync(file, new Uint8Array(buffer));
  return file;
}

function writeNdjson(columns: Typed[], file: string): string {
  const n = columns[0].values.length;
  const lines = Array.from({ length: n }, (_, r) => JSON.stringify(Object.fromEntries(columns.map((c) => [c.name, typeof c.values[r] === "bigint" ? Number(c.values[r]) : c.values[r]]))));
  writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

/** The data (and holdout) file as every other format; returns the flag sets to compare. */
function variants(stem: string, data: string, holdout?: string): [string, RegisterFlags][] {
  const out: [string, RegisterFlags][] = [];
  const convert = (csv: string, suffix: string, ext: string, write: (cols: Typed[], f: string) => string) => write(pandasColumns(csv), path.join(DIR, `${stem}.${suffix}.${ext}`));
  for (const [label, ext, write] of [
    ["parquet-snappy", "parquet", (c: Typed[], f: string) => writeParquet(c, f, "SNAPPY")],
    ["parquet-gzip", "parquet", (c: Typed[], f: string) => writeParquet(c, f, "GZIP")],
    ["ndjson", "ndjson", writeNdjson],
  ] as const) {
    out.push([label, { data: convert(data, `train-${label}`, ext, write), ...(holdout ? { holdout: convert(holdout, `holdout-${label}`, ext, write) } : {}) }]);
  }
  return out;
}

const CASES: { what: string; onnx: string; flags: RegisterFlags }[] = [
  {
    what: "demo credit-risk-lr (missing values in numeric columns, holdout)",
    onnx: "models/credit-risk-lr.onnx",
    flags: {
      data: rel("models/credit-risk-train.csv"),
      holdout: rel("models/credit-risk-holdout.csv"),
      label: "bad",
      name: "credit-risk",
      version: "1.0.0",
      environment: "production",
      categories: ["Home=rent,owner,priv,ignore,parents,other", "Marital=single,married,widow,separated,divorced", "Records=no,yes", "Job=fixed,partime,freelance,others"],
    },
  },
  {
    what: "fixture lr-gemm-sigmoid (boolean column, missing values)",
    onnx: "test/fixtures/onnx/lr-gemm-sigmoid.onnx",
    flags: { data: rel("test/fixtures/onnx/lr-gemm-sigmoid.train.csv"), label: "label", name: "fixture", version: "1.0.0", categories: ["Home=owner,rent,other"] },
  },
  {
    what: "fixture tree-classifier-zipmap-str (string class labels)",
    onnx: "test/fixtures/onnx/tree-classifier-zipmap-str.onnx",
    flags: { data: rel("test/fixtures/onnx/tree-classifier-zipmap-str.train.csv"), label: "label", name: "fixture", version: "1.0.0", categories: ["Home=owner,rent,other"], "positive-class": "bad" },
  },
  {
    what: "fixture columnwise-pipeline (per-column tensors, categories from the graph)",
    onnx: "test/fixtures/onnx/columnwise-pipeline.onnx",
    flags: { data: rel("test/fixtures/onnx/columnwise-pipeline.train.csv"), label: "label", name: "fixture", version: "1.0.0" },
  },
];

for (const c of CASES) {
  test(`register: the same data as CSV, Parquet (snappy, gzip) and NDJSON gives the same manifest: ${c.what}`, async () => {
    const fromCsv = await inferManifest(await registerOptions(rel(c.onnx), c.flags));
    for (const [label, files] of variants(path.basename(c.onnx, ".onnx"), c.flags.data!, c.flags.holdout)) {
      const other = await inferManifest(await registerOptions(rel(c.onnx), { ...c.flags, ...files }));
      assert.deepEqual(other.manifest, fromCsv.manifest, `${label}: same manifest as the CSV`);
      const unnamed = (notes: string[]) => notes.map((n) => n.replace(/holdout \S+/, "holdout FILE"));
      assert.deepEqual(unnamed(other.notes), unnamed(fromCsv.notes), `${label}: same explanations as the CSV (but the holdout's file name)`);
    }
  });
}

test("Parquet cells map to what the CSV path yields: int64, float NaN/null, boolean, text, timestamps", async () => {
  const file = path.join(DIR, "types.parquet");
  writeFileSync(
    file,
    new Uint8Array(
      parquetWriteBuffer({
        columnData: [
          { name: "i", data: [1n, -2n, 3n], type: "INT64", nullable: false },
          { name: "f", data: [0.5, Number.NaN, null], type: "DOUBLE", nullable: true },
          { name: "b", data: [true, null, false], type: "BOOLEAN", nullable: true },
          { name: "s", data: ["007", null, "x"], type: "STRING", nullable: true },
          { name: "t", data: [new Date("2026-01-02T03:04:05Z"), null, new Date(0)], type: "TIMESTAMP", nullable: true },
        ],
      }),
    ),
  );
  const table = await readTable(file);
  assert.deepEqual(table.header, ["i", "f", "b", "s", "t"]);
  assert.deepEqual(table.rows, [
    [1, 0.5, true, "007", "2026-01-02T03:04:05.000Z"],
    [-2, null, null, null, null],
    [3, null, false, "x", "1970-01-01T00:00:00.000Z"],
  ]);
});

test("Parquet: values a double cannot hold exactly and files that are not Parquet are refused naming the file and column", async () => {
  const big = path.join(DIR, "big.parquet");
  writeFileSync(big, new Uint8Array(parquetWriteBuffer({ columnData: [{ name: "id", data: [2n ** 60n], type: "INT64", nullable: false }] })));
  await assert.rejects(readTable(big), /big\.parquet: column 'id' holds 1152921504606846976/);
  const bad = path.join(DIR, "bad.parquet");
  writeFileSync(bad, "a,b\n1,2\n");
  await assert.rejects(readTable(bad), /bad\.parquet: not a Parquet file register can read/);
});
