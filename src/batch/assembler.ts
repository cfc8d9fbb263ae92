/**
 * Assembles a job's parts into its output (and errors) object with an R2 multipart upload, in part
 * order, which is input order.
 *
 * R2 wants every part of a multipart upload but the last to have one size, at least 5 MiB, while
 * chunk parts have whatever size their rows gave. So the assembler streams the chunk parts through
 * one fixed buffer of `pieceBytes` and uploads each full buffer as the next multipart part: memory
 * stays at one buffer (plus the chunk part being copied) for an output of any size, and the
 * object is written once, by `complete()`. Before completing, it checks that the job is still
 * assembling under this lease (a cancel in the meantime aborts the upload instead). Both objects
 * carry the job's id as custom metadata (`batch_job`), which the download routes check.
 */
import { csvLine } from "./formats";
import { errorsKeyOf, errorsPartKey, JOB_METADATA, outputPartKey } from "./keys";

export const MIN_PIECE_BYTES = 5 * 1024 * 1024;

/** Writes `sources` (byte producers, in order) as one object through a multipart upload. */
export async function writeMultipart(
  bucket: R2Bucket,
  key: string,
  sources: AsyncIterable<Uint8Array>,
  opts: { pieceBytes: number; contentType: string; customMetadata?: Record<string, string>; stillWanted: () => Promise<boolean> },
): Promise<number> {
  const upload = await bucket.createMultipartUpload(key, { httpMetadata: { contentType: opts.contentType }, customMetadata: opts.customMetadata });
  try {
    const piece = new Uint8Array(Math.max(opts.pieceBytes, MIN_PIECE_BYTES));
    const uploaded: R2UploadedPart[] = [];
    let fill = 0;
    let total = 0;
    for await (const bytes of sources) {
      let at = 0;
      while (at < bytes.length) {
        const take = Math.min(piece.length - fill, bytes.length - at);
        piece.set(bytes.subarray(at, at + take), fill);
        fill += take;
        at += take;
        if (fill === piece.length) {
          uploaded.push(await upload.uploadPart(uploaded.length + 1, piece));
          total += fill;
          fill = 0;
        }
      }
    }
    if (fill > 0 || uploaded.length === 0) {
      uploaded.push(await upload.uploadPart(uploaded.length + 1, piece.slice(0, fill)));
      total += fill;
    }
    if (!(await opts.stillWanted())) throw new AssemblyAbandoned();
    await upload.complete(uploaded);
    return total;
  } catch (error) {
    await upload.abort().catch(() => undefined);
    throw error;
  }
}

/** The job left the assembling state (cancelled) or lost its lease while the upload ran. */
export class AssemblyAbandoned extends Error {
  constructor() {
    super("assembly abandoned: the job is no longer assembling under this lease");
    this.name = "AssemblyAbandoned";
  }
}

async function* partBytes(bucket: R2Bucket, keys: string[], head?: Uint8Array): AsyncIterable<Uint8Array> {
  if (head) yield head;
  // Fetch one part ahead while the previous one is copied and uploaded.
  let next = keys.length ? bucket.get(keys[0]) : null;
  for (let i = 0; i < keys.length; i++) {
    const object = await next;
    next = i + 1 < keys.length ? bucket.get(keys[i + 1]) : null;
    if (!object) throw new Error(`part object ${keys[i]} is missing`);
    yield new Uint8Array(await object.arrayBuffer());
  }
}

export interface AssemblyInput {
  jobId: string;
  outputKey: string;
  outputFormat: string;
  /** CSV output: the header columns. */
  header?: string[];
  parts: { part: number; errors: number }[];
  pieceBytes: number;
  stillWanted: () => Promise<boolean>;
}

export async function assembleOutput(bucket: R2Bucket, a: AssemblyInput): Promise<{ outputBytes: number; errorsKey: string | null }> {
  const head = a.header ? new TextEncoder().encode(csvLine(a.header)) : undefined;
  const contentType = a.outputFormat === "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson";
  // The job's id on each object, so a download can tell its own object from one written over it.
  const customMetadata = { [JOB_METADATA]: a.jobId };
  const outputBytes = await writeMultipart(bucket, a.outputKey, partBytes(bucket, a.parts.map((p) => outputPartKey(a.jobId, p.part)), head), { pieceBytes: a.pieceBytes, contentType, customMetadata, stillWanted: a.stillWanted });
  const withErrors = a.parts.filter((p) => p.errors > 0);
  let errorsKey: string | null = null;
  if (withErrors.length) {
    errorsKey = errorsKeyOf(a.outputKey);
    await writeMultipart(bucket, errorsKey, partBytes(bucket, withErrors.map((p) => errorsPartKey(a.jobId, p.part))), { pieceBytes: a.pieceBytes, contentType: "application/x-ndjson", customMetadata, stillWanted: a.stillWanted });
  }
  return { outputBytes, errorsKey };
}

/** Deletes a job's part objects (after assembly, failure or cancel), 1000 keys per call. */
export async function deleteParts(bucket: R2Bucket, prefix: string): Promise<void> {
  let cursor: string | undefined;
  do {
    const listed = await bucket.list({ prefix, cursor, limit: 1000 });
    if (listed.objects.length) await bucket.delete(listed.objects.map((o) => o.key));
    cursor = listed.truncated ? listed.cursor : undefined;
  } while (cursor);
}
