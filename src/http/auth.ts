/**
 * Credentials for the two kinds of caller.
 *
 * - Admin routes (`/admin/*`): `Authorization: Bearer <ADMIN_TOKEN>`, a Worker secret. Without the
 *   secret configured, admin routes are closed (403), never open.
 * - Prediction routes: when `REQUIRE_API_KEY` is "true", a key from the `API_KEYS` secret
 *   (comma-separated) in `x-api-key` or as a bearer token.
 *
 * Tokens are compared in constant time: both sides are hashed with SHA-256 and the digests
 * compared with `crypto.subtle.timingSafeEqual`, so neither content nor length leaks through timing.
 */
import type { MiddlewareHandler } from "hono";
import { ApiError } from "./errors";

const encoder = new TextEncoder();

async function digest(value: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-256", encoder.encode(value));
}

export async function constantTimeEqual(a: string, b: string): Promise<boolean> {
  const [da, db] = await Promise.all([digest(a), digest(b)]);
  return crypto.subtle.timingSafeEqual(da, db);
}

function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/** Admin credentials; the caller's name for the audit log comes from `x-actor` (default "admin"). */
export function adminAuth(): MiddlewareHandler<{ Bindings: Env; Variables: { actor: string } }> {
  return async function adminAuthMiddleware(c, next) {
    const expected = c.env.ADMIN_TOKEN;
    if (!expected) throw new ApiError("forbidden", "admin API disabled: the ADMIN_TOKEN secret is not set");
    const token = bearerToken(c.req.header("authorization"));
    if (!token) throw new ApiError("unauthorized", "missing bearer token in Authorization header");
    if (!(await constantTimeEqual(token, expected))) throw new ApiError("forbidden", "invalid admin token");
    const actor = c.req.header("x-actor")?.trim().slice(0, 120);
    c.set("actor", actor || "admin");
    await next();
  };
}

/** /metrics: a bearer METRICS_TOKEN when that secret is set, open otherwise (scrapers). */
export function metricsAuth(): MiddlewareHandler<{ Bindings: Env }> {
  return async function metricsAuthMiddleware(c, next) {
    const expected = c.env.METRICS_TOKEN;
    if (!expected) return next();
    const token = bearerToken(c.req.header("authorization"));
    if (!token) throw new ApiError("unauthorized", "missing bearer token for /metrics");
    if (!(await constantTimeEqual(token, expected))) throw new ApiError("forbidden", "invalid metrics token");
    await next();
  };
}

/** API-key check for prediction routes, active only when REQUIRE_API_KEY is "true". */
export function apiKeyAuth(): MiddlewareHandler<{ Bindings: Env }> {
  return async function apiKeyAuthMiddleware(c, next) {
    if (c.env.REQUIRE_API_KEY !== "true") return next();
    const presented = c.req.header("x-api-key") ?? bearerToken(c.req.header("authorization"));
    if (!presented) throw new ApiError("unauthorized", "missing API key (x-api-key header or bearer token)");
    const keys = (c.env.API_KEYS ?? "").split(",").map((k) => k.trim()).filter(Boolean);
    // Compare against every key, without short-circuiting, so timing does not reveal which matched.
    const matches = await Promise.all(keys.map((key) => constantTimeEqual(presented, key)));
    if (!matches.includes(true)) throw new ApiError("forbidden", "invalid API key");
    await next();
  };
}
