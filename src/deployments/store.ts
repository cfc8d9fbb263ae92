/**
 * Deployment data access and state changes. Functions take the drizzle db (and env where KV or
 * caches are touched) first, like the registry's store.
 *
 * Every change is one D1 batch (one transaction): the deployment row, one history event whose
 * revision must be unique per deployment (the optimistic lock, see tables.ts), the registry audit
 * entry, and any alias move. A stale writer (admin API racing the cron) fails as a whole and gets a
 * 409; nothing half-applies. After a successful change the model's routing token in KV is bumped so
 * other isolates notice (routing.ts), and this isolate's caches are dropped at once.
 */
import { hex } from "../http/encoding";
import { and, desc, eq, inArray } from "drizzle-orm";
import { ApiError, notFound, type FieldIssue } from "../http/errors";
import { invalidateResolved } from "../registry/resolver";
import { aliasMoveStatements, asD1Statement, findAlias, findVersion, getModel, isArchivedDuringMove, registryDb, type Db } from "../registry/store";
import { auditLog } from "../registry/tables";
import { OPEN_STATES, ROUTING_STATES, type CreateDeployment, type DeploymentConfig, type State, type Strategy, type Variant } from "./model";
import { forgetRouting, routingTokenKey } from "./routing";
import { deploymentEvents, deployments } from "./tables";

export { registryDb as deploymentsDb };

export interface Deployment {
  id: string;
  modelName: string;
  strategy: Strategy;
  state: State;
  baselineVersion: string | null;
  variants: Variant[];
  config: DeploymentConfig;
  salt: string;
  validationStatus: "passed" | "failed" | null;
  validation: unknown;
  revision: number;
  stepStartedAt: number;
  description: string;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
  updatedBy: string;
}

type Row = typeof deployments.$inferSelect;

function fromRow(row: Row): Deployment {
  return {
    ...row,
    strategy: row.strategy as Strategy,
    state: row.state as State,
    variants: row.variants as Variant[],
    config: row.config as DeploymentConfig,
    validationStatus: row.validationStatus as Deployment["validationStatus"],
  };
}

/** Public view, as the admin API returns it. */
export function describeDeployment(d: Deployment) {
  return {
    id: d.id,
    model: d.modelName,
    strategy: d.strategy,
    state: d.state,
    baseline_version: d.baselineVersion,
    candidate_version: d.config.candidate ?? null,
    variants: d.variants,
    routing: ROUTING_STATES.includes(d.state),
    config: {
      alias: d.config.alias,
      validation: d.config.validation,
      ...(d.config.steps ? { steps: d.config.steps, step: d.config.step, analysis: d.config.analysis, last_analysis: d.config.lastAnalysis ?? null } : {}),
      ...(d.config.metric ? { metric: d.config.metric } : {}),
      ...(d.config.fraction !== undefined ? { fraction: d.config.fraction } : {}),
      ...(d.config.floor !== undefined ? { floor: d.config.floor, reward: d.config.reward, arms: d.config.arms ?? {} } : {}),
      ...(d.config.promoted ? { promoted: d.config.promoted } : {}),
    },
    validation_status: d.validationStatus,
    validation: d.validation ?? null,
    revision: d.revision,
    step_started_at: new Date(d.stepStartedAt).toISOString(),
    description: d.description,
    created_at: d.createdAt,
    created_by: d.createdBy,
    updated_at: d.updatedAt,
    updated_by: d.updatedBy,
  };
}

export async function getDeployment(db: Db, id: string): Promise<Deployment> {
  const row = await db.select().from(deployments).where(eq(deployments.id, id)).get();
  if (!row) throw notFound(`deployment '${id}'`);
  return fromRow(row);
}

export async function listDeployments(db: Db, filter: { model?: string; states?: State[] } = {}, limit = 100): Promise<Deployment[]> {
  const where = and(filter.model ? eq(deployments.modelName, filter.model) : undefined, filter.states ? inArray(deployments.state, [...filter.states]) : undefined);
  const rows = await db.select().from(deployments).where(where).orderBy(desc(deployments.createdAt)).limit(limit).all();
  return rows.map(fromRow);
}

/** The deployment that routes a model's traffic now, if any (at most one is open per model). */
export async function routingDeployment(db: Db, model: string): Promise<Deployment | null> {
  const row = await db
    .select()
    .from(deployments)
    .where(and(eq(deployments.modelName, model), inArray(deployments.state, [...ROUTING_STATES])))
    .get();
  return row ? fromRow(row) : null;
}

export async function history(db: Db, id: string) {
  const rows = await db.select().from(deploymentEvents).where(eq(deploymentEvents.deploymentId, id)).orderBy(deploymentEvents.revision).all();
  return rows.map((e) => ({ revision: e.revision, at: e.at, actor: e.actor, action: e.action, from_state: e.fromState, to_state: e.toState, reason: e.reason, details: e.details ?? {} }));
}

/** Versions of a deployment that must pass validation before traffic (everything but the stable one). */
export function versionsToValidate(d: Pick<Deployment, "variants" | "config" | "baselineVersion">): string[] {
  const all = new Set([...d.variants.map((v) => v.version), ...(d.config.candidate ? [d.config.candidate] : [])]);
  if (d.baselineVersion) all.delete(d.baselineVersion);
  return [...all];
}

function newId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return `dep-${Date.now().toString(36)}-${hex(bytes)}`;
}

function isUniqueViolation(error: unknown, index: string): boolean {
  const text = `${String(error)} ${String((error as { cause?: unknown })?.cause ?? "")}`;
  return /UNIQUE constraint failed/i.test(text) && (text.includes(index) || /deployments\.model_name|deployment_events\.deployment_id/.test(text));
}

/** Checks the versions a create request names exist and are not archived; returns issues. */
async function checkVersions(db: Db, model: string, refs: { path: string; version: string }[]): Promise<void> {
  await getModel(db, model); // 404 for a model that does not exist, rather than one issue per version
  const issues: FieldIssue[] = [];
  let archived: string | undefined;
  for (const ref of refs) {
    const row = await findVersion(db, model, ref.version);
    if (!row) issues.push({ path: ref.path, message: `version ${ref.version} of model '${model}' does not exist` });
    else if (row.status === "archived") archived ??= `${ref.path}: version ${ref.version} of model '${model}' is archived and cannot take traffic`;
  }
  if (issues.length) throw new ApiError("invalid_input", `unknown version(s): ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`, issues);
  if (archived) throw new ApiError("conflict", archived);
}

export async function createDeployment(db: Db, env: Env, input: CreateDeployment, actor: string): Promise<Deployment> {
  const model = input.model;
  const champion = await findAlias(db, model, input.alias);
  const baseline = input.baseline ?? champion?.version ?? null;
  const open = await db
    .select({ id: deployments.id, state: deployments.state })
    .from(deployments)
    .where(and(eq(deployments.modelName, model), inArray(deployments.state, [...OPEN_STATES])))
    .get();
  if (open) throw new ApiError("conflict", `model '${model}' already has an open deployment ${open.id} (${open.state}); complete, abort or roll it back first`);

  const refs: { path: string; version: string }[] = [];
  if (baseline) refs.push({ path: input.baseline ? "baseline" : `${input.alias} alias`, version: baseline });
  let variants: Variant[];
  const config: DeploymentConfig = { alias: input.alias, validation: input.validation };
  const needsBaseline = (what: string) => {
    if (!baseline) throw new ApiError("invalid_input", `${what} needs a stable version: model '${model}' has no '${input.alias}' alias; give "baseline"`, [{ path: "baseline", message: "required" }]);
    return baseline;
  };
  const distinct = (version: string) => {
    if (version === baseline) throw new ApiError("invalid_input", `version ${version} is already the stable version of '${model}'`, [{ path: "version", message: "must differ from the stable version" }]);
  };

  switch (input.strategy) {
    case "direct":
      distinct(input.version); // a deployment to the version already serving would change nothing
      refs.push({ path: "version", version: input.version });
      config.candidate = input.version;
      variants = [{ name: "primary", version: input.version, weight: 100 }];
      break;
    case "blue_green": {
      const blue = needsBaseline("blue_green");
      distinct(input.version);
      refs.push({ path: "version", version: input.version });
      config.candidate = input.version;
      variants = [
        { name: "blue", version: blue, weight: 0 },
        { name: "green", version: input.version, weight: 100 },
      ];
      break;
    }
    case "canary": {
      const stable = needsBaseline("canary");
      distinct(input.version);
      refs.push({ path: "version", version: input.version });
      Object.assign(config, { candidate: input.version, steps: input.steps, step: 0, analysis: input.analysis });
      variants = [
        { name: "stable", version: stable, weight: 100 - input.steps[0] },
        { name: "canary", version: input.version, weight: input.steps[0] },
      ];
      break;
    }
    case "shadow": {
      const primary = needsBaseline("shadow");
      distinct(input.version);
      refs.push({ path: "version", version: input.version });
      Object.assign(config, { candidate: input.version, fraction: input.fraction });
      variants = [{ name: "primary", version: primary, weight: 100 }];
      break;
    }
    case "ab_test":
    case "bandit": {
      const names = input.variants.map((v) => v.name);
      const dup = names.find((n, i) => names.indexOf(n) !== i);
      if (dup) throw new ApiError("invalid_input", `variant name '${dup}' appears twice`, [{ path: "variants", message: `duplicate variant '${dup}'` }]);
      input.variants.forEach((v, i) => refs.push({ path: `variants[${i}].version`, version: v.version }));
      if (input.strategy === "ab_test") {
        const total = input.variants.reduce((s, v) => s + v.weight, 0);
        if (Math.abs(total - 100) > 1e-9) {
          throw new ApiError("invalid_input", `variant weights must sum to 100; they sum to ${total}`, [{ path: "variants", message: `weights sum to ${total}, not 100` }]);
        }
        variants = input.variants.map((v) => ({ ...v }));
        config.metric = input.metric;
      } else {
        if (input.floor * input.variants.length > 1) {
          throw new ApiError("invalid_input", `floor ${input.floor} x ${input.variants.length} variants exceeds all traffic`, [{ path: "floor", message: `must be at most ${1 / input.variants.length}` }]);
        }
        variants = input.variants.map((v) => ({ ...v, weight: 100 / input.variants.length }));
        Object.assign(config, { floor: input.floor, reward: input.reward, arms: Object.fromEntries(input.variants.map((v) => [v.name, { successes: 0, failures: 0 }])) });
      }
      break;
    }
  }
  await checkVersions(db, model, refs);

  const at = new Date().toISOString();
  const row = {
    id: newId(),
    modelName: model,
    strategy: input.strategy,
    state: "validating" as State,
    baselineVersion: baseline,
    variants,
    config,
    salt: input.salt ?? hex(crypto.getRandomValues(new Uint8Array(8))),
    validationStatus: null,
    validation: null,
    revision: 1,
    stepStartedAt: Date.now(),
    description: input.description,
    createdAt: at,
    createdBy: actor,
    updatedAt: at,
    updatedBy: actor,
  };
  const details = { deployment: row.id, strategy: row.strategy, baseline, variants };
  try {
    await db.batch([
      db.insert(deployments).values(row),
      db.insert(deploymentEvents).values({ deploymentId: row.id, revision: 1, at, actor, action: "create", fromState: null, toState: "validating", reason: input.reason, details }),
      db.insert(auditLog).values({ at, actor, action: "deployment.create", modelName: model, version: config.candidate ?? null, reason: input.reason, details }),
    ]);
  } catch (error) {
    if (isUniqueViolation(error, "deployments_one_open_per_model")) throw new ApiError("conflict", `model '${model}' already has an open deployment`);
    throw error;
  }
  return fromRow(row as Row);
}

export interface Change {
  action: string;
  actor: string;
  reason?: string;
  state?: State;
  variants?: Variant[];
  config?: DeploymentConfig;
  validationStatus?: Deployment["validationStatus"];
  validation?: unknown;
  /** Restart the analysis window (new canary step, new state). */
  restartWindow?: boolean;
  /** Point the deployment's alias at this version in the same transaction. */
  moveAlias?: string;
  details?: Record<string, unknown>;
}

/**
 * Applies one change as one transaction, guarded by the deployment's revision (see tables.ts).
 * Returns the updated deployment.
 */
export async function applyChange(db: Db, env: Env, d: Deployment, change: Change): Promise<Deployment> {
  const at = new Date().toISOString();
  const revision = d.revision + 1;
  const next: Deployment = {
    ...d,
    state: change.state ?? d.state,
    variants: change.variants ?? d.variants,
    config: change.config ?? d.config,
    validationStatus: change.validationStatus !== undefined ? change.validationStatus : d.validationStatus,
    validation: change.validation !== undefined ? change.validation : d.validation,
    revision,
    stepStartedAt: change.restartWindow ? Date.now() : d.stepStartedAt,
    updatedAt: at,
    updatedBy: change.actor,
  };
  const details = { deployment: d.id, revision, ...(change.details ?? {}) };
  const statements = [
    db
      .update(deployments)
      .set({
        state: next.state,
        variants: next.variants,
        config: next.config,
        validationStatus: next.validationStatus,
        validation: next.validation,
        revision,
        stepStartedAt: next.stepStartedAt,
        updatedAt: at,
        updatedBy: change.actor,
      })
      .where(and(eq(deployments.id, d.id), eq(deployments.revision, d.revision))),
    db.insert(deploymentEvents).values({ deploymentId: d.id, revision, at, actor: change.actor, action: change.action, fromState: d.state, toState: next.state, reason: change.reason, details }),
    db.insert(auditLog).values({
      at,
      actor: change.actor,
      action: `deployment.${change.action}`,
      modelName: d.modelName,
      version: change.moveAlias ?? d.config.candidate ?? null,
      reason: change.reason,
      details: { ...details, strategy: d.strategy, from_state: d.state, to_state: next.state },
    }),
  ];
  if (change.moveAlias) {
    const target = await findVersion(db, d.modelName, change.moveAlias);
    if (!target) throw new ApiError("conflict", `version ${change.moveAlias} of '${d.modelName}' no longer exists`);
    if (target.status === "archived") throw new ApiError("conflict", `version ${change.moveAlias} of '${d.modelName}' is archived`);
    // The audit's `previous` is read inside the batch, so it names the version this move replaced.
  }
  try {
    if (change.moveAlias) {
      const moves = aliasMoveStatements(db.$client, { name: d.modelName, alias: d.config.alias, version: change.moveAlias, actor: change.actor, at, reason: change.reason, details: { deployment: d.id } });
      await db.$client.batch([...statements.map((q) => asD1Statement(db.$client, q)), ...moves]);
    } else {
      await db.batch(statements as unknown as Parameters<typeof db.batch>[0]);
    }
  } catch (error) {
    if (change.moveAlias && isArchivedDuringMove(error)) {
      throw new ApiError("conflict", `version ${change.moveAlias} of '${d.modelName}' was archived while alias '${d.config.alias}' moved; nothing changed`);
    }
    if (isUniqueViolation(error, "deployment_events_revision")) {
      throw new ApiError("conflict", `deployment ${d.id} changed while this request ran (revision ${d.revision} is stale); re-read and retry`);
    }
    throw error;
  }
  await announceChange(env, d.modelName, `${d.id}:${revision}`);
  return next;
}

/** Tells every isolate that the model's routing changed: KV token for others, caches here. */
export async function announceChange(env: Env, model: string, token: string) {
  invalidateResolved(model);
  forgetRouting(model);
  await env.CONFIG.put(routingTokenKey(model), `${token}:${Date.now()}`);
}
