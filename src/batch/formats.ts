/**
 * CSV (RFC 4180) and NDJSON, the two batch formats: a record scanner that works on a byte stream
 * (the planner uses it to find chunk boundaries without holding the file), a parser for one chunk's
 * text, and writers for output lines.
 *
 * Hand-written rather than a CSV library because the planner needs the byte offset of every record
 * end while bytes stream past, with quote state carried across stream chunks, and the chunk parser
 * must agree with it exactly about what a record is. The rules both follow:
 * - a record ends at a line feed outside double quotes; a `\r` before it is not part of the record;
 * - inside quotes, `""` is a literal quote and line breaks belong to the field;
 * - an empty line (nothing, or only `\r`) is not a record: it is skipped and not numbered;
 * - NDJSON is the same with no quoting (a JSON string cannot hold a raw line feed).
 * Both scanners jump with `indexOf` between quotes and line feeds, so unquoted data costs one
 * native search per record.
 */

export type BatchFormat = "csv" | "ndjson";

const LF = 10;
const CR = 13;
const QUOTE = 34;

/** A record found by the scanner: byte range [start, end) including its line break, if any. */
export interface RecordSpan {
  start: number;
  end: number;
}

/**
 * Finds record boundaries in a byte stream fed piece by piece. `onRecord` receives each non-empty
 * record's absolute byte span (its end includes the line feed). Holds no bytes between pieces: only
 * the quote state, the current record's start and whether it has content so far.
 */
export class RecordScanner {
  private offset = 0;
  private inQuote = false;
  private recordStart = 0;
  /** Bytes of the current record other than a final \r seen so far (0 = still empty). */
  private content = 0;
  private lastWasCR = false;
  /** Position (absolute) where the current quoted field opened, for error messages. */
  quoteOpenedAt = -1;

  private readonly format: BatchFormat;
  private readonly onRecord: (span: RecordSpan) => void;

  constructor(format: BatchFormat, onRecord: (span: RecordSpan) => void) {
    this.format = format;
    this.onRecord = onRecord;
  }

  get bytesSeen() {
    return this.offset;
  }

  push(buf: Uint8Array) {
    const base = this.offset;
    const n = buf.length;
    const quoting = this.format === "csv";
    let i = 0;
    let nextQuote = quoting ? buf.indexOf(QUOTE, 0) : -1;
    while (i < n) {
      if (this.inQuote) {
        if (nextQuote < i) nextQuote = buf.indexOf(QUOTE, i);
        if (nextQuote < 0) {
          this.content += n - i;
          i = n;
          break;
        }
        this.content += nextQuote + 1 - i;
        this.inQuote = false;
        i = nextQuote + 1;
        this.lastWasCR = false;
        continue;
      }
      const nl = buf.indexOf(LF, i);
      if (quoting && nextQuote >= 0 && nextQuote < i) nextQuote = buf.indexOf(QUOTE, i);
      if (quoting && nextQuote >= 0 && (nl < 0 || nextQuote < nl)) {
        this.content += nextQuote + 1 - i;
        this.inQuote = true;
        this.quoteOpenedAt = base + nextQuote;
        i = nextQuote + 1;
        nextQuote = buf.indexOf(QUOTE, i);
        this.lastWasCR = false;
        continue;
      }
      if (nl < 0) {
        this.content += n - i;
        this.lastWasCR = buf[n - 1] === CR;
        i = n;
        break;
      }
      const segment = nl - i;
      const endsWithCR = segment > 0 ? buf[nl - 1] === CR : this.lastWasCR;
      const total = this.content + segment;
      const end = base + nl + 1;
      if (total > (endsWithCR ? 1 : 0)) this.onRecord({ start: this.recordStart, end });
      this.recordStart = end;
      this.content = 0;
      this.lastWasCR = false;
      i = nl + 1;
    }
    this.offset = base + n;
  }

  /** Ends the stream: a last record without a line feed is reported; an open quote is an error. */
  finish() {
    if (this.inQuote) throw new FormatError(`unterminated quoted field opened at byte ${this.quoteOpenedAt}`);
    if (this.content > (this.lastWasCR ? 1 : 0)) this.onRecord({ start: this.recordStart, end: this.offset });
    this.recordStart = this.offset;
    this.content = 0;
  }
}

/** A problem with the input file as a whole (not one row). */
export class FormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FormatError";
  }
}

/** Splits one chunk's text into CSV records (arrays of fields), skipping empty lines as the scanner does. */
export function parseCsvRecords(text: string): string[][] {
  const records: string[][] = [];
  const n = text.length;
  let i = 0;
  while (i < n) {
    const fields: string[] = [];
    let field = "";
    let quoted = false;
    let quotedEver = false;
    for (;;) {
      if (i >= n) {
        if (quoted) throw new FormatError("unterminated quoted field");
        fields.push(field.endsWith("\r") ? field.slice(0, -1) : field);
        break;
      }
      if (quoted) {
        const q = text.indexOf('"', i);
        if (q < 0) throw new FormatError("unterminated quoted field");
        field += text.slice(i, q);
        if (text.charCodeAt(q + 1) === QUOTE) {
          field += '"';
          i = q + 2;
        } else {
          quoted = false;
          i = q + 1;
        }
        continue;
      }
      const ch = text.charCodeAt(i);
      if (ch === QUOTE) {
        quoted = quotedEver = true;
        i++;
      } else if (ch === 44 /* , */) {
        fields.push(field);
        field = "";
        i++;
      } else if (ch === LF) {
        i++;
        fields.push(field.endsWith("\r") ? field.slice(0, -1) : field);
        break;
      } else {
        // A plain run up to the next comma, quote or line feed.
        let j = i + 1;
        while (j < n) {
          const c = text.charCodeAt(j);
          if (c === 44 || c === LF || c === QUOTE) break;
          j++;
        }
        field += text.slice(i, j);
        i = j;
      }
    }
    if (fields.length > 1 || fields[0] !== "" || quotedEver) records.push(fields);
  }
  return records;
}

/** Splits one chunk's text into NDJSON lines, skipping empty ones as the scanner does. */
export function ndjsonLines(text: string): string[] {
  const lines: string[] = [];
  let start = 0;
  const n = text.length;
  while (start < n) {
    let nl = text.indexOf("\n", start);
    if (nl < 0) nl = n;
    let line = text.slice(start, nl);
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (line.length) lines.push(line);
    start = nl + 1;
  }
  return lines;
}

const NEEDS_QUOTES = /[",\r\n]/;

/** One CSV field, quoted only when it must be. */
export function csvField(value: string): string {
  return NEEDS_QUOTES.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

export function csvLine(fields: readonly string[]): string {
  let line = "";
  for (let i = 0; i < fields.length; i++) line += (i ? "," : "") + csvField(fields[i]);
  return line + "\n";
}
