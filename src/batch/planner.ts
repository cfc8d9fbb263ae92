/**
 * The splitter: reads the input object once as a stream and plans chunks as byte ranges that start
 * and end on record boundaries, each with its first row number and row count. Nothing but the
 * boundaries is kept (a 1 GB, 1,000,000-row file costs one pass and a few hundred KB of plan), and
 * chunk messages carry the ranges, never rows, so they stay far below the Queues 128 KB limit.
 *
 * A chunk closes at `chunkRows` rows or `chunkBytes` bytes, whichever comes first, so a file of
 * very wide rows still gives chunks a consumer can hold. Row numbers count data records from 1 in
 * file order (a CSV header is not a row; empty lines are not rows), the same numbering the chunk
 * parser, the output's `row_number` and the errors file use.
 */
import { FormatError, parseCsvRecords, RecordScanner, type BatchFormat, type RecordSpan } from "./formats";

export interface ChunkPlan {
  part: number;
  start: number;
  end: number;
  firstRow: number;
  rows: number;
}

export interface Plan {
  /** CSV: the header's column names. */
  columns?: string[];
  rows: number;
  bytes: number;
  chunks: ChunkPlan[];
}

export interface PlanLimits {
  chunkRows: number;
  chunkBytes: number;
  maxRows: number;
  /** Largest header accepted (CSV). */
  maxHeaderBytes?: number;
}

export async function planChunks(stream: ReadableStream<Uint8Array>, format: BatchFormat, limits: PlanLimits): Promise<Plan> {
  const maxHeader = limits.maxHeaderBytes ?? 64 * 1024;
  const chunks: ChunkPlan[] = [];
  let header: RecordSpan | undefined;
  let headBytes: Uint8Array[] = [];
  let headLength = 0;
  let rows = 0;
  let chunkStart = 0;
  let chunkRows = 0;

  const close = (end: number) => {
    chunks.push({ part: chunks.length, start: chunkStart, end, firstRow: rows - chunkRows + 1, rows: chunkRows });
    chunkStart = end;
    chunkRows = 0;
  };
  const scanner = new RecordScanner(format, (span) => {
    if (format === "csv" && !header) {
      header = span;
      chunkStart = span.end;
      return;
    }
    rows++;
    chunkRows++;
    if (rows > limits.maxRows) throw new FormatError(`input has more than ${limits.maxRows} rows`);
    if (chunkRows >= limits.chunkRows || span.end - chunkStart >= limits.chunkBytes) close(span.end);
  });

  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (format === "csv" && !header && headLength < maxHeader) {
        headBytes.push(value.slice(0, maxHeader - headLength));
        headLength += Math.min(value.length, maxHeader - headLength);
      }
      scanner.push(value);
      if (format === "csv" && !header && scanner.bytesSeen >= maxHeader) throw new FormatError(`CSV header is longer than ${maxHeader} bytes (or the file has no line breaks)`);
    }
    scanner.finish();
  } finally {
    reader.releaseLock();
  }
  if (chunkRows > 0) close(scanner.bytesSeen);

  let columns: string[] | undefined;
  if (format === "csv") {
    if (!header) throw new FormatError("CSV input is empty: it needs a header line naming the columns");
    const all = new Uint8Array(headLength);
    let at = 0;
    for (const b of headBytes) {
      all.set(b, at);
      at += b.length;
    }
    headBytes = [];
    columns = parseCsvRecords(new TextDecoder().decode(all.subarray(header.start, header.end)))[0];
    const seen = new Set<string>();
    for (const c of columns) {
      if (seen.has(c)) throw new FormatError(`CSV header names column ${JSON.stringify(c)} twice`);
      seen.add(c);
    }
  }
  return { columns, rows, bytes: scanner.bytesSeen, chunks };
}
