/**
 * Which model version answers a prediction request.
 *
 * An explicit `version` or `alias` in the request wins. Otherwise the model's routing deployment
 * (src/deployments) picks a variant; with no deployment routing, the champion alias answers.
 * /v1 and /v2 both call `dispatch`, so they route identically.
 *
 * Assignment is sticky per unit: the unit key is the request's `unit` field (v1 body), else the
 * `x-unit-id` or `x-user-id` header, else the `eml_unit` cookie. A request with none of them gets a
 * fresh random unit (so its assignment is per request) and a `set-cookie` carrying it, so a browser
 * keeps its variant from then on. Bandits without a unit key draw per request by Thompson sampling.
 * `x-force-variant: <name>` with `x-admin-token: <ADMIN_TOKEN>` forces a variant (debugging).
 */
import { detach } from "./events";
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import { constantTimeEqual } from "../http/auth";
import { ApiError } from "../http/errors";
import { loadModel } from "../inference/predictor";
import { resolveVersion, type Selector } from "../registry/resolver";
import type { ModelVersion } from "../registry/store";
import { pickSegment, unitPosition } from "../deployments/assignment";
import { routingFor } from "../deployments/routing";
import { sampleBeta } from "../deployments/stats";

export interface Dispatch {
  version: ModelVersion;
  /** Alias used to find the version, when it was found through one. */
  alias?: string;
  /** Deployment and variant that took the request, when a deployment routed it. */
  deployment?: string;
  variant?: string;
  /** How the variant was chosen. */
  assignment?: "sticky" | "random" | "forced" | "thompson";
  /** A version that also scores this request in the background (shadow deployments). */
  shadow?: { version: ModelVersion };
}

export const UNIT_COOKIE = "eml_unit";
const UNIT_MAX = 256;
/** Isolate-level record of when a blue-green standby was last touched (not request state). */
const warmedAt = new Map<string, number>();

function unitKey<E extends { Bindings: Env }>(c: Context<E>, bodyUnit?: string): string | undefined {
  const key = bodyUnit ?? c.req.header("x-unit-id") ?? c.req.header("x-user-id") ?? getCookie(c, UNIT_COOKIE);
  return key ? key.slice(0, UNIT_MAX) : undefined;
}

export async function dispatch<E extends { Bindings: Env }>(c: Context<E>, name: string, selector: Selector, unit?: string): Promise<Dispatch> {
  if (selector.version || selector.alias) {
    const { version, alias } = await resolveVersion(c.env, name, selector);
    return { version, alias };
  }
  const table = await routingFor(c.env, name);
  if (!table) {
    const { version, alias } = await resolveVersion(c.env, name, selector);
    return { version, alias };
  }
  const d = table.deployment;
  let index: number;
  let assignment: Dispatch["assignment"];
  const forced = c.req.header("x-force-variant");
  if (forced !== undefined) {
    const token = c.req.header("x-admin-token");
    if (!c.env.ADMIN_TOKEN || !token || !(await constantTimeEqual(token, c.env.ADMIN_TOKEN))) {
      throw new ApiError("forbidden", "x-force-variant needs a valid x-admin-token header");
    }
    index = d.variants.findIndex((v) => v.name === forced);
    if (index < 0) throw new ApiError("bad_request", `x-force-variant: deployment ${d.id} has no variant '${forced}'; variants: ${d.variants.map((v) => v.name).join(", ")}`);
    assignment = "forced";
  } else {
    let key = unitKey(c, unit);
    if (!key && d.strategy === "bandit") {
      index = thompsonDraw(d.variants.map((v) => d.config.arms?.[v.name] ?? { successes: 0, failures: 0 }), d.config.floor ?? 0);
      assignment = "thompson";
    } else {
      assignment = key ? "sticky" : "random";
      if (!key && d.variants.length > 1) {
        key = crypto.randomUUID();
        c.header("set-cookie", `${UNIT_COOKIE}=${key}; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly; Secure`, { append: true });
      }
      index = d.variants.length === 1 ? 0 : pickSegment(table.segments, unitPosition(d.salt, key!));
    }
  }
  const variant = d.variants[index];
  // Named before anything can fail: error responses of routed traffic carry them too.
  c.header("x-deployment", d.id);
  c.header("x-variant", variant.name);
  const { version } = await resolveVersion(c.env, name, { version: variant.version });
  c.header("x-model-version", version.version);
  const routed: Dispatch = { version, deployment: d.id, variant: variant.name, assignment };

  if (d.strategy === "shadow" && d.config.candidate && Math.random() * 100 < (d.config.fraction ?? 100)) {
    routed.shadow = { version: (await resolveVersion(c.env, name, { version: d.config.candidate })).version };
  }
  if (d.strategy === "blue_green") {
    // Keep the standby colour's session warm for an instant rollback (cache hit: just an LRU touch).
    const standby = d.variants.find((v) => v.weight === 0);
    const now = Date.now();
    if (standby && now - (warmedAt.get(d.id) ?? 0) > 10_000) {
      warmedAt.set(d.id, now);
      detach(c, resolveVersion(c.env, name, { version: standby.version }).then((r) => loadModel(c.env, r.version)).catch(() => undefined));
    }
  }
  return routed;
}

/** Thompson sampling with a floor: with probability k*floor a uniform pick, else the best Beta draw. */
function thompsonDraw(arms: { successes: number; failures: number }[], floor: number): number {
  if (Math.random() < floor * arms.length) return Math.floor(Math.random() * arms.length);
  let best = 0;
  let bestValue = -1;
  arms.forEach((arm, k) => {
    const v = sampleBeta(1 + arm.successes, 1 + arm.failures, Math.random);
    if (v > bestValue) {
      bestValue = v;
      best = k;
    }
  });
  return best;
}

/** Response headers naming what answered. */
export function dispatchHeaders(d: Dispatch): Record<string, string> {
  const headers: Record<string, string> = { "x-model-version": d.version.version };
  if (d.variant) headers["x-variant"] = d.variant;
  if (d.deployment) headers["x-deployment"] = d.deployment;
  return headers;
}
