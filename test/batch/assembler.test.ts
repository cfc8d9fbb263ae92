/**
 * The multipart writer against local R2: sources of any sizes become equal-size parts of the piece
 * size plus a smaller last one (what R2 requires), the object is the exact concatenation, and an
 * upload that is no longer wanted (job cancelled meanwhile) is aborted, leaving no object.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { AssemblyAbandoned, MIN_PIECE_BYTES, writeMultipart } from "../../src/batch/assembler";

function pseudoRandom(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

async function* pieces(sizes: number[]): AsyncIterable<Uint8Array> {
  let seed = 1;
  for (const n of sizes) yield pseudoRandom(n, seed++);
}

describe("writeMultipart", () => {
  it("re-cuts odd-sized sources into equal parts and writes their exact concatenation", async () => {
    const sizes = [3_000_000, 17, 4_500_000, 1, 3_900_000]; // 11.4 MB: two 5 MiB parts and a rest
    const expected = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
    let at = 0;
    for await (const p of pieces(sizes)) {
      expected.set(p, at);
      at += p.length;
    }
    const total = await writeMultipart(env.BATCH, "test/multipart.bin", pieces(sizes), { pieceBytes: MIN_PIECE_BYTES, contentType: "application/octet-stream", stillWanted: async () => true });
    expect(total).toBe(expected.length);
    const object = await env.BATCH.get("test/multipart.bin");
    const bytes = new Uint8Array(await object!.arrayBuffer());
    expect(bytes.length).toBe(expected.length);
    expect(bytes.every((b, i) => b === expected[i])).toBe(true);
    // A multipart object's ETag ends with its part count.
    expect(object!.etag).toMatch(/-3$/);
  });

  it("writes an empty object for no input", async () => {
    expect(await writeMultipart(env.BATCH, "test/empty.bin", pieces([]), { pieceBytes: MIN_PIECE_BYTES, contentType: "text/csv", stillWanted: async () => true })).toBe(0);
    expect((await env.BATCH.head("test/empty.bin"))!.size).toBe(0);
  });

  it("aborts when the job no longer wants the output", async () => {
    await expect(writeMultipart(env.BATCH, "test/abandoned.bin", pieces([1000]), { pieceBytes: MIN_PIECE_BYTES, contentType: "text/csv", stillWanted: async () => false })).rejects.toThrow(AssemblyAbandoned);
    expect(await env.BATCH.head("test/abandoned.bin")).toBeNull();
  });
});
