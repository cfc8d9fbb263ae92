/**
 * Request-rate limits through Cloudflare's Rate Limiting binding (`[[ratelimits]]` in
 * wrangler.toml): per API key when one is presented, else per client IP (CF-Connecting-IP).
 * Counters are per Cloudflare location and eventually consistent, which is the binding's design:
 * a guard against abuse and runaway clients, not exact quota accounting.
 *
 * `RATE_LIMITS_ENABLED = "false"` turns the check off (load benchmarks set it).
 */
import { sha256Hex } from "./encoding";
import type { MiddlewareHandler } from "hono";
import { ApiError } from "./errors";

export function rateLimit(pick: (env: Env) => RateLimit | undefined, scope: string): MiddlewareHandler<{ Bindings: Env }> {
  return async function rateLimitMiddleware(c, next) {
    const limiter = pick(c.env);
    if (!limiter || c.env.RATE_LIMITS_ENABLED === "false") return next();
    const credential = c.req.header("x-api-key") ?? c.req.header("authorization");
    const who = credential ? `key:${await fingerprint(credential)}` : `ip:${c.req.header("cf-connecting-ip") ?? "unknown"}`;
    const { success } = await limiter.limit({ key: `${scope}:${who}` });
    if (!success) {
      c.header("retry-after", "60");
      throw new ApiError("rate_limited", `rate limit exceeded for ${scope} requests; retry later`);
    }
    await next();
  };
}

/** Keys are hashed so credentials never become rate-limit keys in clear. */
async function fingerprint(value: string): Promise<string> {
  return (await sha256Hex(value)).slice(0, 24);
}
