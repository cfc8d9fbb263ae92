/**
 * Checks other capabilities add to model registration (for example: the feature store verifies
 * that features a manifest takes from it exist with compatible types). The registry cannot import
 * those capabilities (they sit above it), so they register a check here at wiring time; any issue
 * a check reports refuses the registration with a 422 before anything is written.
 */
import { ApiError, type FieldIssue } from "../http/errors";
import type { Manifest } from "./manifest";

export type RegistrationCheck = (env: Env, manifest: Manifest) => Promise<FieldIssue[]>;

const checks = new Set<RegistrationCheck>();

export function addRegistrationCheck(check: RegistrationCheck) {
  checks.add(check);
}

export async function runRegistrationChecks(env: Env, manifest: Manifest): Promise<void> {
  const issues = (await Promise.all([...checks].map((check) => check(env, manifest)))).flat();
  if (issues.length) throw new ApiError("invalid_input", `manifest: ${issues[0].path}: ${issues[0].message}`, issues.slice(0, 50));
}
