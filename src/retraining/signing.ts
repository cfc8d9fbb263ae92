/**
 * The HMAC both sides of the trainer contract sign with (the worker's requests to the trainer, the
 * trainer's downloads, uploads and callbacks to the worker). Plain WebCrypto, so the reference
 * trainer (Node) imports this same file, and a Python trainer needs only `hmac` + `hashlib`:
 *
 *   x-edge-ml-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<METHOD>.<path>." + body)>
 *
 * `path` is the URL's pathname (no query), `body` the exact request bytes (empty for GET).
 * Receivers reject signatures older or newer than MAX_SKEW_SECONDS (replay window) and compare in
 * constant time.
 */
export const SIGNATURE_HEADER = "x-edge-ml-signature";
export const MAX_SKEW_SECONDS = 300;

const encoder = new TextEncoder();

function toHex(bytes: ArrayBuffer): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function key(secret: string, usage: "sign" | "verify"): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [usage]);
}

function message(t: number, method: string, path: string, body: Uint8Array): Uint8Array {
  const prefix = encoder.encode(`${t}.${method.toUpperCase()}.${path}.`);
  const out = new Uint8Array(prefix.length + body.length);
  out.set(prefix, 0);
  out.set(body, prefix.length);
  return out;
}

function bytesOf(body: string | Uint8Array | undefined): Uint8Array {
  return body === undefined ? new Uint8Array(0) : typeof body === "string" ? encoder.encode(body) : body;
}

export async function sign(secret: string, method: string, path: string, body?: string | Uint8Array, now = Date.now()): Promise<string> {
  const t = Math.floor(now / 1000);
  return `t=${t},v1=${toHex(await crypto.subtle.sign("HMAC", await key(secret, "sign"), message(t, method, path, bytesOf(body)) as BufferSource))}`;
}

/** Why a signature is refused, or null when it is valid. */
export async function verify(secret: string, header: string | null | undefined, method: string, path: string, body?: string | Uint8Array, now = Date.now()): Promise<string | null> {
  if (!header) return `missing ${SIGNATURE_HEADER} header`;
  const parts = Object.fromEntries(header.split(",").map((p) => p.trim().split("=", 2) as [string, string]));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || !/^[0-9a-f]{64}$/.test(parts.v1 ?? "")) return `malformed ${SIGNATURE_HEADER} header (expected t=<unix seconds>,v1=<64 hex>)`;
  if (Math.abs(now / 1000 - t) > MAX_SKEW_SECONDS) return `signature timestamp outside the ${MAX_SKEW_SECONDS} s window`;
  const sig = new Uint8Array(parts.v1.match(/../g)!.map((h) => parseInt(h, 16)));
  // crypto.subtle.verify compares in constant time.
  const ok = await crypto.subtle.verify("HMAC", await key(secret, "verify"), sig as BufferSource, message(t, method, path, bytesOf(body)) as BufferSource);
  return ok ? null : "signature does not match";
}
