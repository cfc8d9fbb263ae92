/**
 * The one error type the API throws, and the one place errors become HTTP responses.
 *
 * Handlers throw `ApiError` with a code from a closed union; `toResponse` renders
 * `{ error: { code, message, details? }, request_id }`, except under /v2, where the Open Inference
 * Protocol fixes the error body as `{ "error": "<message>" }` (the first field issues are folded
 * into the message, and the request id stays in the x-request-id header). Anything that is not an ApiError is an
 * internal fault: it is logged with its stack and answered as a bare 500 `internal_error`, never
 * with its message, so internals do not leak and server bugs are not disguised as client errors.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

export type ErrorCode =
  | "bad_request"
  | "invalid_json"
  | "invalid_input"
  | "invalid_artifact"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "body_too_large"
  | "too_many_rows"
  | "rate_limited"
  | "unavailable"
  | "model_error"
  | "internal_error";

const STATUS: Record<ErrorCode, ContentfulStatusCode> = {
  bad_request: 400,
  invalid_json: 400,
  invalid_input: 422,
  invalid_artifact: 422,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  body_too_large: 413,
  too_many_rows: 413,
  rate_limited: 429,
  unavailable: 503,
  /** The model answered with something that is not a prediction (NaN or infinite outputs). */
  model_error: 500,
  internal_error: 500,
};

/** One problem with one field of the input; `path` is a dotted/indexed path such as `instances[2].Age`. */
export interface FieldIssue {
  path: string;
  message: string;
}

export class ApiError extends Error {
  readonly status: ContentfulStatusCode;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: FieldIssue[],
  ) {
    super(message);
    this.name = "ApiError";
    this.status = STATUS[code];
  }

  toJSON() {
    return { code: this.code, message: this.message, ...(this.details?.length ? { details: this.details } : {}) };
  }
}

/** Open Inference Protocol paths (/v2 and below), whose error body the protocol fixes. */
export function isOpenInference(c: Context): boolean {
  const path = c.req.path;
  return path === "/v2" || path.startsWith("/v2/");
}

/** `{ "error": "<message>" }` (Open Inference Protocol), with up to five field issues in the message. */
function openInferenceMessage(message: string, details?: FieldIssue[]): string {
  const extra = (details ?? []).filter((d) => !message.includes(`${d.path}: ${d.message}`)).slice(0, 5);
  return extra.length ? `${message}: ${extra.map((d) => `${d.path}: ${d.message}`).join("; ")}` : message;
}

/** Renders one error in the shape the path's API uses. */
export function errorResponse(c: Context, status: ContentfulStatusCode, code: ErrorCode, message: string, details?: FieldIssue[], headers: Record<string, string> = {}): Response {
  if (isOpenInference(c)) return c.json({ error: openInferenceMessage(message, details) }, status, headers);
  const requestId = c.get("requestId" as never) as string | undefined;
  return c.json({ error: { code, message, ...(details?.length ? { details } : {}) }, request_id: requestId }, status, headers);
}

/** Hono `onError` handler: the single mapping from thrown errors to JSON responses. */
export function toResponse(error: Error, c: Context): Response {
  const requestId = c.get("requestId" as never) as string | undefined;
  if (error instanceof ApiError) {
    const headers: Record<string, string> = {};
    if (error.code === "unauthorized") headers["WWW-Authenticate"] = 'Bearer realm="edge-ml"';
    return errorResponse(c, error.status, error.code, error.message, error.details, headers);
  }
  if (error instanceof HTTPException && error.status < 500) {
    // Errors raised by hono's own middleware (e.g. malformed requests); re-expressed in our shape.
    const code: ErrorCode = error.status === 413 ? "body_too_large" : "bad_request";
    return errorResponse(c, error.status, code, error.message || "bad request");
  }
  console.error(JSON.stringify({ level: "error", request_id: requestId, error: String(error), stack: error.stack }));
  return errorResponse(c, 500, "internal_error", "internal error");
}

export function notFound(what: string): ApiError {
  return new ApiError("not_found", `${what} not found`);
}
