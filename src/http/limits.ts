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

/** Parses the JSON body; a malformed body is a 400 naming the problem, not a 500. */
export async function readJson(c: Context): Promise<unknown> {
  const type = c.req.header("content-type") ?? "";
  if (type && !/application\/json/i.test(type)) {
    throw new ApiError("bad_request", `expected content-type application/json, got ${type}`);
  }
  const text = await c.req.text();
  if (!text) throw new ApiError("invalid_json", "request body is empty");
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ApiError("invalid_json", `request body is not valid JSON: ${(error as Error).message}`);
  }
}
