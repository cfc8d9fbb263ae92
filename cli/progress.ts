/**
 * Upload progress for the CLI: bytes sent over total, percentage, rate and ETA. On a terminal it
 * is one bar redrawn in place (carriage return, at most every `redrawMs`); when stderr is not a
 * terminal (CI logs, pipes) it prints a plain line each time another tenth of the bytes has gone,
 * so logs stay short; with --quiet it prints nothing. The clock and the output are injectable so
 * tests can check what is drawn without timing anything.
 *
 * `countingStream` is what feeds it: a ReadableStream over a Blob that reports the bytes handed to
 * its reader as they are pulled. Node's fetch pulls a request body only as fast as the socket
 * drains (backpressure), so the count follows the bytes actually leaving, not a file read.
 */
import { bytes, duration } from "./verbs/output.ts";

export interface ProgressOptions {
  label?: string;
  quiet?: boolean;
  /** Defaults to process.stderr.isTTY. */
  tty?: boolean;
  write?: (text: string) => void;
  now?: () => number;
  redrawMs?: number;
  width?: number;
}

export class ProgressBar {
  readonly total: number;
  private readonly o: Required<ProgressOptions>;
  private readonly started: number;
  private sent = 0;
  private lastDraw = -Infinity;
  private lastTenth = 0;
  private drawn = false;
  private finished = false;

  constructor(total: number, options: ProgressOptions = {}) {
    this.total = total;
    this.o = {
      label: "uploading",
      quiet: false,
      tty: Boolean(process.stderr.isTTY),
      write: (t) => void process.stderr.write(t),
      now: () => performance.now(),
      redrawMs: 100,
      width: 24,
      ...options,
    };
    this.started = this.o.now();
  }

  /** The status text for `sent` bytes at time `at` (ms): "1.0 MiB / 4.0 MiB  25%  512.0 KiB/s  ETA 6s". */
  status(sent: number, at: number): string {
    const seconds = (at - this.started) / 1000;
    const rate = seconds > 0 ? sent / seconds : 0;
    const pct = this.total ? Math.min(100, Math.floor((sent / this.total) * 100)) : 100;
    const eta = sent >= this.total ? "done" : rate > 0 ? `ETA ${duration((this.total - sent) / rate)}` : "ETA ?";
    return `${bytes(sent)} / ${bytes(this.total)}  ${String(pct).padStart(3)}%  ${rate > 0 ? `${bytes(Math.round(rate))}/s` : "-"}  ${eta}`;
  }

  private bar(sent: number): string {
    const filled = this.total ? Math.min(this.o.width, Math.floor((sent / this.total) * this.o.width)) : this.o.width;
    return `[${"#".repeat(filled)}${".".repeat(this.o.width - filled)}]`;
  }

  /** Records the bytes sent so far (monotone: a smaller count is ignored) and draws when due. */
  update(sent: number): void {
    if (sent < this.sent || this.finished) return;
    this.sent = sent;
    if (this.o.quiet) return;
    const at = this.o.now();
    if (this.o.tty) {
      if (at - this.lastDraw < this.o.redrawMs && sent < this.total) return;
      this.lastDraw = at;
      this.drawn = true;
      this.o.write(`\r${this.o.label} ${this.bar(sent)} ${this.status(sent, at)}\x1b[K`);
      return;
    }
    const tenth = this.total ? Math.floor((sent / this.total) * 10) : 10;
    if (tenth > this.lastTenth || (sent === this.total && !this.drawn)) {
      this.lastTenth = tenth;
      this.drawn = true;
      this.o.write(`${this.o.label} ${this.status(sent, at)}\n`);
    }
  }

  /** Ends the bar (a newline after a redrawn bar), whether the upload succeeded or failed. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (!this.o.quiet && this.o.tty && this.drawn) this.o.write("\n");
  }
}

/** A stream over `blob` in `chunkBytes` pieces that calls `onPulled(total so far)` as each piece is pulled. */
export function countingStream(blob: Blob, onPulled: (sent: number) => void, chunkBytes = 64 * 1024): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (offset >= blob.size) {
          controller.close();
          return;
        }
        const end = Math.min(blob.size, offset + chunkBytes);
        const chunk = new Uint8Array(await blob.slice(offset, end).arrayBuffer());
        offset = end;
        controller.enqueue(chunk);
        onPulled(offset);
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * Runs an upload that reports (sent, total) with a ProgressBar on stderr, ended whether the upload
 * succeeds or fails (batch submit and features load; register draws its own).
 */
export async function withProgressLine<T>(run: (progress: (sent: number, total: number) => void) => Promise<T>, quiet = false): Promise<T> {
  let bar: ProgressBar | undefined;
  try {
    return await run((sent, total) => {
      bar ??= new ProgressBar(total, { quiet });
      bar.update(sent);
    });
  } finally {
    bar?.finish();
  }
}
