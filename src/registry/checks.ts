/**
 * Checks other capabilities add to model registration (for example: the feature store verifies
 * that features a manifest takes from it exist with compatible types). The registry cannot import
 * those capabilities (they sit above it), so they register a check here at wiring time; any issue
 * a check reports refuses the registration with a 422 before anything is written. Restoring an
 * archived version runs the same checks (409 when they fail): what it reads may have changed
 * while it was archived.
 */
import { ApiError, type FieldIssue } from "../http/errors";
import type { Manifest } from "./manifest";

/** What a check reads of a version: its name, version and feature schema. */
export type CheckedVersion = Pick<Manifest, "name" | "version" | "featureSchema">;
export type RegistrationCheck = (env: Env, manifest: CheckedVersion) => Promise<FieldIssue[]>;

const checks = new Set<RegistrationCheck>();

export function addRegistrationCheck(check: RegistrationCheck) {
  checks.add(check);
}

/** Every issue the registered checks report for `version`. */
async function issuesOf(env: Env, version: CheckedVersion): Promise<FieldIssue[]> {
  return (await Promise.all([...checks].map((check) => check(env, version)))).flat();
}

export async function runRegistrationChecks(env: Env, manifest: CheckedVersion): Promise<void> {
  const issues = await issuesOf(env, manifest);
  if (issues.length) throw new ApiError("invalid_input", `manifest: ${issues[0].path}: ${issues[0].message}`, issues.slice(0, 50));
}

/** The registration checks for an archived version about to be restored: 409 naming what no longer fits. */
export async function runRestoreChecks(env: Env, version: CheckedVersion): Promise<void> {
  const issues = await issuesOf(env, version);
  if (issues.length) throw new ApiError("conflict", `version ${version.version} of '${version.name}' cannot be restored: ${issues[0].path}: ${issues[0].message}`, issues.slice(0, 50));
}
