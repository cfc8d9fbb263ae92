/**
 * One structured JSON log line per request, for Workers Logs ([observability] in wrangler.toml):
 * the server's request id (the prediction log's key), the caller's correlation id (its own
 * x-request-id, when it sent a valid one), method, matched route, model and version (from the path and the x-model-version
 * header the serving routes set), deployment variant, status and latency. Query strings and
 * bodies are never logged (they may carry features or tokens). Level follows the status:
 * info < 400, warn for 4xx, error for 5xx. REQUEST_LOGS = "false" turns the lines off (tests).
 */
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";

const MODEL_IN_PATH = /\/(?:models|monitoring\/models|monitoring|dashboard|test-sets)\/([a-z0-9][a-z0-9-]{0,62})(?:\/|$)/;

export function requestLog(): MiddlewareHandler {
  return async function logRequest(c, next) {
    const started = performance.now();
    await next();
    if ((c.env as { REQUEST_LOGS?: string } | undefined)?.REQUEST_LOGS === "false") return;
    const status = c.res.status;
    const path = new URL(c.req.url).pathname;
    const line = {
      level: status >= 500 ? "error" : status >= 400 ? "warn" : "info",
      msg: "request",
      request_id: c.get("requestId" as never) as string | undefined,
      correlation_id: (c.get("correlationId" as never) as string | undefined) ?? null,
      method: c.req.method,
      route: routePath(c, -1) || "unmatched",
      status,
      latency_ms: Math.round((performance.now() - started) * 1000) / 1000,
      model: MODEL_IN_PATH.exec(path)?.[1] ?? null,
      version: c.res.headers.get("x-model-version"),
      deployment: c.res.headers.get("x-deployment"),
      variant: c.res.headers.get("x-variant"),
    };
    console.log(JSON.stringify(line));
  };
}
