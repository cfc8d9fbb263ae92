/**
 * The Open Inference Protocol's binary tensor data extension (Triton / KServe), as its clients use
 * it: an infer request or response whose body is a JSON header of `Inference-Header-Content-Length`
 * bytes followed by raw tensor bytes, one block per tensor that carries a `binary_data_size`
 * parameter, in the order those tensors appear in the JSON.
 *
 * Encoding (per the extension): little-endian, row-major, no padding; BOOL one byte (0/1); BYTES
 * elements each a 4-byte little-endian length followed by the bytes. Decoded values become the
 * same JS values a JSON `data` array would hold, so the rest of /v2 validates them the same way.
 * Every size is checked against the tensor's shape before anything is read.
 */
import { ApiError } from "../http/errors";
import { parseJsonText } from "../http/limits";

export const HEADER_LENGTH = "inference-header-content-length";

const WIDTH: Record<string, number> = { BOOL: 1, UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, FP16: 2, UINT32: 4, INT32: 4, FP32: 4, UINT64: 8, INT64: 8, FP64: 8 };

/** Splits a binary-extension body into its JSON header and the bytes after it. */
export function splitBody(body: Uint8Array, headerLength: string): { header: unknown; rest: Uint8Array } {
  const n = Number(headerLength);
  if (!/^\d+$/.test(headerLength.trim()) || n > body.length) {
    throw new ApiError("bad_request", `${HEADER_LENGTH} must be a byte count of at most the body length (${body.length}), got '${headerLength.slice(0, 40)}'`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body.subarray(0, n));
  } catch (error) {
    throw new ApiError("invalid_json", `the first ${n} bytes (${HEADER_LENGTH}) are not a JSON inference request: ${(error as Error).message}`);
  }
  // The same parser as plain JSON bodies, so the nesting bound (MAX_JSON_DEPTH) holds on this path too.
  const header = parseJsonText(text, `the JSON header (first ${n} bytes, ${HEADER_LENGTH})`);
  return { header, rest: body.subarray(n) };
}

function fp16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/** Decodes one tensor's bytes into `count` values (numbers, booleans or strings). */
export function decodeTensor(bytes: Uint8Array, datatype: string, count: number, path: string): unknown[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (datatype === "BYTES") {
    const out: string[] = [];
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
    let pos = 0;
    while (pos < bytes.length) {
      if (pos + 4 > bytes.length) throw new ApiError("invalid_input", `${path}: BYTES element ${out.length} has a truncated length prefix`, [{ path, message: "truncated BYTES element" }]);
      const len = view.getUint32(pos, true);
      if (pos + 4 + len > bytes.length) throw new ApiError("invalid_input", `${path}: BYTES element ${out.length} claims ${len} bytes; only ${bytes.length - pos - 4} remain`, [{ path, message: "truncated BYTES element" }]);
      try {
        out.push(text.decode(bytes.subarray(pos + 4, pos + 4 + len)));
      } catch {
        throw new ApiError("invalid_input", `${path}: BYTES element ${out.length} is not UTF-8 text`, [{ path, message: "not UTF-8" }]);
      }
      pos += 4 + len;
    }
    if (out.length !== count) throw new ApiError("invalid_input", `${path}: binary data holds ${out.length} BYTES elements; the shape needs ${count}`, [{ path, message: "element count does not match shape" }]);
    return out;
  }
  const width = WIDTH[datatype];
  if (bytes.length !== width * count) {
    throw new ApiError("invalid_input", `${path}: binary_data_size is ${bytes.length} bytes; ${count} ${datatype} values take ${width * count}`, [{ path, message: "binary_data_size does not match shape" }]);
  }
  const out: unknown[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const at = i * width;
    switch (datatype) {
      case "BOOL": {
        const b = view.getUint8(at);
        out[i] = b === 1 ? true : b === 0 ? false : b; // anything else fails validation as "not a boolean"
        break;
      }
      case "UINT8": out[i] = view.getUint8(at); break;
      case "INT8": out[i] = view.getInt8(at); break;
      case "UINT16": out[i] = view.getUint16(at, true); break;
      case "INT16": out[i] = view.getInt16(at, true); break;
      case "FP16": out[i] = fp16(view.getUint16(at, true)); break;
      case "UINT32": out[i] = view.getUint32(at, true); break;
      case "INT32": out[i] = view.getInt32(at, true); break;
      case "FP32": out[i] = view.getFloat32(at, true); break;
      case "UINT64": out[i] = Number(view.getBigUint64(at, true)); break;
      case "INT64": out[i] = Number(view.getBigInt64(at, true)); break;
      case "FP64": out[i] = view.getFloat64(at, true); break;
    }
  }
  return out;
}

/** One output tensor's data as extension bytes (typed arrays as they are; strings length-prefixed). */
export function encodeTensor(data: ArrayLike<unknown> & { buffer?: ArrayBufferLike; byteOffset?: number; byteLength?: number }, datatype: string): Uint8Array {
  if (datatype === "BYTES") {
    const parts = Array.from(data, (v) => new TextEncoder().encode(String(v)));
    const out = new Uint8Array(parts.reduce((s, p) => s + 4 + p.length, 0));
    const view = new DataView(out.buffer);
    let pos = 0;
    for (const p of parts) {
      view.setUint32(pos, p.length, true);
      out.set(p, pos + 4);
      pos += 4 + p.length;
    }
    return out;
  }
  if (data.buffer && data.byteLength !== undefined) return new Uint8Array(data.buffer, data.byteOffset ?? 0, data.byteLength).slice();
  // A plain array (no typed array behind it): FP64 is the only lossless choice.
  return new Uint8Array(Float64Array.from(data as ArrayLike<number>).buffer);
}

/** Response body: the JSON header, then each binary output's bytes in output order. */
export function joinBody(header: unknown, blocks: Uint8Array[]): { body: Uint8Array<ArrayBuffer>; headerLength: number } {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const body = new Uint8Array(json.length + blocks.reduce((s, b) => s + b.length, 0));
  body.set(json, 0);
  let pos = json.length;
  for (const b of blocks) {
    body.set(b, pos);
    pos += b.length;
  }
  return { body, headerLength: json.length };
}
