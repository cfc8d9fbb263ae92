/**
 * Request-size limits and JSON body parsing with errors in the API's shape.
 *
 * Body size is bounded twice: by Content-Length up front and by counting bytes while reading
 * (hono's bodyLimit), so chunked uploads cannot slip past. Limits come from wrangler vars.
 */
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { ApiError } from "./errors";

export function intVar(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : fallback;
}

/**
 * An integer query parameter within [min, max]; `fallback` when absent. Anything else (a fraction,
 * text, out of range) is a 400 naming the parameter: a silently replaced value would answer a
 * different question than the one asked.
 */
export function queryInt(value: string | undefined, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  const n = /^-?\d{1,16}$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw new ApiError("bad_request", `${name}: an integer ${min}..${max}, not '${value.slice(0, 40)}'`);
  return n;
}

export function limitBody(maxOf: (env: Env) => number): MiddlewareHandler<{ Bindings: Env }> {
  return async function limitBodyMiddleware(c, next) {
    const maxSize = maxOf(c.env);
    return bodyLimit({
      maxSize,
      onError: () => {
        throw new ApiError("body_too_large", `request body exceeds ${maxSize} bytes`);
      },
    })(c, next);
  };
}

/**
 * Deepest nesting of arrays and objects a JSON body may have. The deepest legitimate body (a v2
 * tensor of rank 4 inside its request object) nests 6 deep; recursive consumers (array flattening,
 * zod) run out of stack somewhere past a few thousand levels, which would surface as a 500.
 */
export const MAX_JSON_DEPTH = 32;

/** Whether the media type (parameters ignored) is JSON: application/json or a `+json` suffix type. */
export function isJsonMediaType(contentType: string): boolean {
  const media = contentType.split(";", 1)[0].trim().toLowerCase();
  return media === "application/json" || /^application\/[a-z0-9.!#$&^_-]+\+json$/.test(media);
}

/** Nesting depth of JSON text, counted without parsing (brackets inside strings do not count); stops past `limit`. */
export function jsonDepth(text: string, limit = Infinity): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 92 /* \\ */) i++;
      else if (ch === 34 /* " */) inString = false;
    } else if (ch === 34) inString = true;
    else if (ch === 91 /* [ */ || ch === 123 /* { */) {
      if (++depth > max && (max = depth) > limit) return max;
    } else if (ch === 93 /* ] */ || ch === 125 /* } */) depth--;
  }
  return max;
}

/** Parses JSON text with the nesting bound; `what` names it in errors ("request body", "manifest"). */
export function parseJsonText(text: string, what: string): unknown {
  if (jsonDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    throw new ApiError("invalid_json", `${what} nests arrays/objects deeper than ${MAX_JSON_DEPTH} levels`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ApiError("invalid_json", `${what} is not valid JSON: ${(error as Error).message}`);
  }
}

/** Parses the JSON body; a malformed or too deeply nested body is a 400 naming the problem, not a 500. */
/** A body that may be left out: none (no length, or length 0, and no content type) reads as `{}`. */
export async function optionalJson(c: Context): Promise<unknown> {
  const length = c.req.header("content-length");
  if (length === "0" || (!length && !c.req.header("content-type"))) return {};
  return readJson(c);
}

export async function readJson(c: Context): Promise<unknown> {
  const type = c.req.header("content-type") ?? "";
  if (type && !isJsonMediaType(type)) {
    throw new ApiError("bad_request", `expected content-type application/json, got ${type.slice(0, 100)}`);
  }
  const text = await c.req.text();
  if (!text) throw new ApiError("invalid_json", "request body is empty");
  return parseJsonText(text, "request body");
}
