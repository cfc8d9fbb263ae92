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

/** The password of HTTP Basic credentials (the user name is ignored): how a browser can present an API key. */
function basicPassword(header: string | undefined): string | undefined {
  const match = header && /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match) return undefined;
  try {
    const decoded = atob(match[1]);
    const colon = decoded.indexOf(":");
    return colon >= 0 && colon < decoded.length - 1 ? decoded.slice(colon + 1) : undefined;
  } catch {
    return undefined;
  }
}

/** The API key a request presents: `x-api-key`, a bearer token, or a Basic password. */
export function presentedApiKey(headers: { header(name: string): string | undefined }): string | undefined {
  const authorization = headers.header("authorization");
  return headers.header("x-api-key") ?? bearerToken(authorization) ?? basicPassword(authorization);
}

/** Whether `presented` is one of the API_KEYS (compared against every key, without short-circuiting). */
export async function isValidApiKey(env: Env, presented: string | undefined): Promise<boolean> {
  if (!presented) return false;
  const keys = (env.API_KEYS ?? "").split(",").map((k) => k.trim()).filter(Boolean);
  const matches = await Promise.all(keys.map((key) => constantTimeEqual(presented, key)));
  return matches.includes(true);
}

/** Whether the request carries the admin bearer token (false when ADMIN_TOKEN is not set). */
export async function hasAdminToken(env: Env, authorization: string | undefined): Promise<boolean> {
  const token = bearerToken(authorization);
  return Boolean(env.ADMIN_TOKEN && token && (await constantTimeEqual(token, env.ADMIN_TOKEN)));
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

/**
 * /metrics: a bearer METRICS_TOKEN when that secret is set. Without it, open to scrapers, unless
 * REQUIRE_API_KEY is "true": then the series (which name every model) need an API key or the
 * admin token, like everything else that reveals models.
 */
export function metricsAuth(): MiddlewareHandler<{ Bindings: Env }> {
  return async function metricsAuthMiddleware(c, next) {
    const expected = c.env.METRICS_TOKEN;
    if (!expected) {
      if (c.env.REQUIRE_API_KEY === "true" && !(await hasAdminToken(c.env, c.req.header("authorization")))) await checkApiKey(c);
      return next();
    }
    const token = bearerToken(c.req.header("authorization"));
    if (!token) throw new ApiError("unauthorized", "missing bearer token for /metrics");
    if (!(await constantTimeEqual(token, expected))) throw new ApiError("forbidden", "invalid metrics token");
    await next();
  };
}

async function checkApiKey(c: { env: Env; req: { header(name: string): string | undefined } }) {
  const presented = presentedApiKey(c.req);
  if (!presented) throw new ApiError("unauthorized", "missing API key (x-api-key header or bearer token)");
  if (!(await isValidApiKey(c.env, presented))) throw new ApiError("forbidden", "invalid API key");
}

/**
 * API-key check for prediction routes (and /ready and the dashboard page), active only when
 * REQUIRE_API_KEY is "true". Keys come in `x-api-key`, as a bearer token, or as the password of
 * HTTP Basic credentials (what a browser can send for a page).
 */
export function apiKeyAuth(): MiddlewareHandler<{ Bindings: Env }> {
  return async function apiKeyAuthMiddleware(c, next) {
    if (c.env.REQUIRE_API_KEY !== "true") return next();
    await checkApiKey(c);
    await next();
  };
}
