/**
 * The batch formats and the planner: the streaming record scanner and the chunk parser agree on
 * what a record is (quotes, escaped quotes, line breaks inside quotes, CRLF, empty lines), however
 * the bytes are split across stream pieces; chunks start and end on record boundaries with the
 * right row numbers; malformed files are rejected as a whole.
 */
import { describe, expect, it } from "vitest";
import { csvLine, FormatError, ndjsonLines, parseCsvRecords, RecordScanner } from "../../src/batch/formats";
import { planChunks } from "../../src/batch/planner";

const enc = new TextEncoder();

function streamOf(text: string, piece: number): ReadableStream<Uint8Array> {
  const bytes = enc.encode(text);
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + piece));
      at += piece;
    },
  });
}

function spans(text: string, format: "csv" | "ndjson", piece: number) {
  const found: string[] = [];
  const bytes = enc.encode(text);
  const s = new RecordScanner(format, (span) => found.push(new TextDecoder().decode(bytes.slice(span.start, span.end))));
  for (let i = 0; i < bytes.length; i += piece) s.push(bytes.slice(i, i + piece));
  s.finish();
  return found;
}

const TRICKY = 'a,b,c\r\n1,"x, y",3\r\n\r\n2,"line\nbreak ""quoted""",4\n\n"",,\n3,plain,"end"';

describe("CSV records", () => {
  it("parses quotes, escaped quotes, embedded line breaks, CRLF and skips empty lines", () => {
    expect(parseCsvRecords(TRICKY)).toEqual([
      ["a", "b", "c"],
      ["1", "x, y", "3"],
      ["2", 'line\nbreak "quoted"', "4"],
      ["", "", ""],
      ["3", "plain", "end"],
    ]);
  });

  it("the streaming scanner finds the same records for every way of splitting the bytes", () => {
    const expected = parseCsvRecords(TRICKY);
    for (const piece of [1, 2, 3, 5, 7, 16, 1000]) {
      const found = spans(TRICKY, "csv", piece);
      expect(found.map((r) => parseCsvRecords(r)[0])).toEqual(expected);
    }
  });

  it("rejects an unterminated quote", () => {
    const s = new RecordScanner("csv", () => undefined);
    s.push(enc.encode('a,b\n1,"open\n2,3\n'));
    expect(() => s.finish()).toThrow(FormatError);
    expect(() => parseCsvRecords('1,"open')).toThrow(FormatError);
  });

  it("writes fields that need it quoted, and reads them back", () => {
    const fields = ["plain", "with,comma", 'with "quote"', "line\nbreak", ""];
    expect(parseCsvRecords(csvLine(fields))).toEqual([fields]);
  });
});

describe("NDJSON records", () => {
  it("one record per non-empty line, in any split", () => {
    const text = '{"a":1}\r\n\n{"a":"x\\ny"}\n{"a":3}';
    expect(ndjsonLines(text)).toEqual(['{"a":1}', '{"a":"x\\ny"}', '{"a":3}']);
    for (const piece of [1, 4, 100]) expect(spans(text, "ndjson", piece).map((l) => ndjsonLines(l)[0])).toEqual(ndjsonLines(text));
  });
});

describe("planChunks", () => {
  const rows = Array.from({ length: 23 }, (_, i) => `${i + 1},"r${i + 1}\n(two lines)",${i % 3 === 0 ? "" : "x"}`);
  const csv = "id,text,flag\n" + rows.join("\n") + "\n\n";

  it("splits on record boundaries with row numbers, header excluded, whatever the piece size", async () => {
    for (const piece of [3, 64, 4096]) {
      const plan = await planChunks(streamOf(csv, piece), "csv", { chunkRows: 5, chunkBytes: 1 << 20, maxRows: 100 });
      expect(plan.columns).toEqual(["id", "text", "flag"]);
      expect(plan.rows).toBe(23);
      expect(plan.chunks.map((c) => [c.firstRow, c.rows])).toEqual([[1, 5], [6, 5], [11, 5], [16, 5], [21, 3]]);
      const bytes = enc.encode(csv);
      // Every chunk parses to exactly its rows, numbered from its first row.
      for (const c of plan.chunks) {
        const records = parseCsvRecords(new TextDecoder().decode(bytes.slice(c.start, c.end)));
        expect(records.length).toBe(c.rows);
        expect(records.map((r) => Number(r[0]))).toEqual(Array.from({ length: c.rows }, (_, i) => c.firstRow + i));
      }
      expect(plan.chunks[0].start).toBe("id,text,flag\n".length);
      expect(plan.chunks.at(-1)!.end).toBe(bytes.length);
    }
  });

  it("closes chunks early at the byte bound", async () => {
    const plan = await planChunks(streamOf(csv, 64), "csv", { chunkRows: 1000, chunkBytes: 60, maxRows: 100 });
    expect(plan.chunks.reduce((n, c) => n + c.rows, 0)).toBe(23);
    expect(plan.chunks.length).toBeGreaterThan(5);
    for (const c of plan.chunks) expect(c.end - c.start).toBeLessThan(60 + 40);
  });

  it("rejects files over the row limit, empty CSV files and duplicate columns", async () => {
    await expect(planChunks(streamOf(csv, 64), "csv", { chunkRows: 5, chunkBytes: 1 << 20, maxRows: 10 })).rejects.toThrow(/more than 10 rows/);
    await expect(planChunks(streamOf("", 64), "csv", { chunkRows: 5, chunkBytes: 1 << 20, maxRows: 10 })).rejects.toThrow(/needs a header/);
    await expect(planChunks(streamOf("a,a\n1,2\n", 64), "csv", { chunkRows: 5, chunkBytes: 1 << 20, maxRows: 10 })).rejects.toThrow(/twice/);
  });

  it("plans NDJSON without a header", async () => {
    const nd = Array.from({ length: 7 }, (_, i) => JSON.stringify({ i })).join("\n");
    const plan = await planChunks(streamOf(nd, 5), "ndjson", { chunkRows: 3, chunkBytes: 1 << 20, maxRows: 100 });
    expect(plan.columns).toBeUndefined();
    expect(plan.chunks.map((c) => [c.firstRow, c.rows, c.start])).toEqual([[1, 3, 0], [4, 3, 24], [7, 1, 48]]);
  });
});
