/**
 * Which model version answers a prediction request.
 *
 * An explicit `version` or `alias` in the request wins; otherwise the model's traffic policy
 * decides. Until deployments exist for a model, the policy is "the champion alias".
 * Deployment routing (A/B, canary, blue-green, shadow, bandit) plugs in here and nowhere else, so
 * /v1 and /v2 route identically.
 */
import type { Context } from "hono";
import { resolveVersion, type Selector } from "../registry/resolver";
import type { ModelVersion } from "../registry/store";

export interface Dispatch {
  version: ModelVersion;
  /** Alias used to find the version, when it was found through one. */
  alias?: string;
  /** Deployment and variant that took the request, when a deployment routed it. */
  deployment?: string;
  variant?: string;
}

export async function dispatch<E extends { Bindings: Env }>(c: Context<E>, name: string, selector: Selector): Promise<Dispatch> {
  const { version, alias } = await resolveVersion(c.env, name, selector);
  return { version, alias };
}

/** Response headers naming what answered. */
export function dispatchHeaders(d: Dispatch): Record<string, string> {
  const headers: Record<string, string> = { "x-model-version": d.version.version };
  if (d.variant) headers["x-variant"] = d.variant;
  if (d.deployment) headers["x-deployment"] = d.deployment;
  return headers;
}
