/**
 * What browsers need: secure response headers on every answer (hono/secure-headers: nosniff,
 * frame denial, HSTS, referrer policy, cross-origin isolation headers) and CORS for the origins
 * listed in CORS_ORIGINS (comma-separated; "*" for any; empty: no CORS headers, so browsers on
 * other origins cannot read answers). Preflights are answered before credentials are checked, as
 * browsers send them without credentials.
 */
import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { secureHeaders } from "hono/secure-headers";

export const securityHeaders = (): MiddlewareHandler =>
  secureHeaders({
    // The dashboard and /docs pages run their own inline script and fetch this origin only.
    contentSecurityPolicy: { defaultSrc: ["'self'"], scriptSrc: ["'self'", "'unsafe-inline'"], styleSrc: ["'self'", "'unsafe-inline'"], imgSrc: ["'self'", "data:"], frameAncestors: ["'none'"] },
    crossOriginEmbedderPolicy: false,
  });

function allowedOrigins(env: Env): string[] {
  return String((env as { CORS_ORIGINS?: string }).CORS_ORIGINS ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

const handlers = new Map<string, MiddlewareHandler>();

export function configurableCors(): MiddlewareHandler {
  return async function corsByConfig(c, next) {
    const origins = allowedOrigins(c.env as Env);
    if (!origins.length) return next();
    const key = origins.join(",");
    let handler = handlers.get(key);
    if (!handler) {
      handler = cors({
        origin: origins.includes("*") ? "*" : origins,
        allowMethods: ["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        allowHeaders: ["content-type", "authorization", "x-api-key", "x-request-id", "x-unit-id", "x-user-id", "x-actor"],
        exposeHeaders: ["x-request-id", "x-model-version", "x-deployment", "x-variant", "server-timing"],
        maxAge: 600,
      });
      handlers.set(key, handler);
    }
    return handler(c, next);
  };
}
