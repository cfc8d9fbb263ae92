/**
 * Request-rate limits through Cloudflare's Rate Limiting binding (`[[ratelimits]]` in
 * wrangler.toml): per credential when the request presents a valid one, else per client IP
 * (CF-Connecting-IP). The credential is checked before it becomes a key: keying on whatever was
 * presented would give every guessed token its own fresh budget, so credential guessing would
 * never be limited. Unauthenticated and failed attempts therefore all share their IP's budget.
 * Counters are per Cloudflare location and eventually consistent, which is the binding's design:
 * a guard against abuse and runaway clients, not exact quota accounting.
 *
 * `RATE_LIMITS_ENABLED = "false"` turns the check off (load benchmarks set it).
 */
import type { Context, MiddlewareHandler } from "hono";
import { hasAdminToken, isValidApiKey, presentedApiKey } from "./auth";
import { sha256Hex } from "./encoding";
import { ApiError } from "./errors";

/** Whether the request's credential is valid for the limited routes; only then is it the rate-limit key. */
export type CredentialCheck = (c: Context<{ Bindings: Env }>) => Promise<string | undefined>;

/** Prediction routes: a valid API key when keys are required (otherwise a presented key authenticates nothing). */
export const apiKeyCredential: CredentialCheck = async (c) => {
  if (c.env.REQUIRE_API_KEY !== "true") return undefined;
  const key = presentedApiKey(c.req);
  return key && (await isValidApiKey(c.env, key)) ? key : undefined;
};

/** Admin routes: the admin token. */
export const adminCredential: CredentialCheck = async (c) => {
  const authorization = c.req.header("authorization");
  return (await hasAdminToken(c.env, authorization)) ? authorization : undefined;
};

export function rateLimit(pick: (env: Env) => RateLimit | undefined, scope: string, credential: CredentialCheck): MiddlewareHandler<{ Bindings: Env }> {
  return async function rateLimitMiddleware(c, next) {
    const limiter = pick(c.env);
    if (!limiter || c.env.RATE_LIMITS_ENABLED === "false") return next();
    const valid = await credential(c);
    const who = valid ? `key:${await fingerprint(valid)}` : `ip:${c.req.header("cf-connecting-ip") ?? "unknown"}`;
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
