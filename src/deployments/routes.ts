/**
 * Admin API for deployments, mounted at /admin/deployments (bearer ADMIN_TOKEN; `x-actor` names
 * the person for the history and the registry audit log).
 *
 *   POST /                      create (validating; no traffic yet)
 *   GET  /?model=&state=        list, newest first
 *   GET  /:id                   state, variants, config, validation report
 *   GET  /:id/history           every change: who, what, when, why
 *   POST /:id/validate          run the validation report (test_set in the body or the stored one)
 *   POST /:id/start             begin routing traffic (needs a passed validation)
 *   POST /:id/pause|resume      freeze / unfreeze automation (traffic keeps its current split)
 *   POST /:id/promote           make the candidate (or { variant }) stable: moves the alias
 *   POST /:id/abort             end without promoting; traffic returns to the stable version
 *   POST /:id/rollback          return traffic to the stable version at once (also after completion)
 *   POST /:id/weights           A/B weights in place ({ variants: [{ name, weight }], reason? }): same salt, minimal moves
 *   GET  /:id/results           per-variant live results, significance, winner (and per weight period); shadow comparison
 *   PUT  /test-sets/:model      store the model's validation test set ({ rows: [{ features, label? }] })
 *
 * Bad input is a 4xx naming the problem and changes nothing; see model.ts and store.ts. Test-set
 * labels must be labels the model can predict (see validation.ts): 422 naming `rows[i].label`.
 */
import { Hono, type Context } from "hono";
import type { z } from "zod";
import { ApiError } from "../http/errors";
import { optionalJson, readJson } from "../http/limits";
import { modelNameSchema, zodIssues } from "../registry/manifest";
import { getModel, listVersions, registryDb, toModelVersion } from "../registry/store";
import { shadowResults, variantResults } from "./analysis";
import { abort, pause, promote, resume, reweight, rollback, start } from "./lifecycle";
import { statsFor } from "./live-stats";
import { createDeploymentSchema, promoteBodySchema, reasonBodySchema, STATES, testSetSchema, validateBodySchema, weightsBodySchema, type State, type TestSet } from "./model";
import { applyChange, createDeployment, deploymentsDb, describeDeployment, getDeployment, history, listDeployments, versionsToValidate } from "./store";
import { checkTestSetLabels, storedTestSet, testSetKey, testSetLabelIssues, validateVersions } from "./validation";

type AdminEnv = { Bindings: Env; Variables: { actor: string } };

function parse<T>(schema: z.ZodType<T>, raw: unknown): T {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new ApiError("invalid_input", `invalid request body: ${parsed.error.issues[0].path.join(".") || "(root)"}: ${parsed.error.issues[0].message}`, zodIssues(parsed.error));
  return parsed.data;
}

const ID = /^dep-[a-z0-9]{1,16}-[0-9a-f]{12}$/;
async function load(c: Context<AdminEnv>) {
  const id = c.req.param("id")!;
  if (!ID.test(id)) throw new ApiError("not_found", `deployment '${id.slice(0, 80)}' not found`);
  return getDeployment(deploymentsDb(c.env.DB), id);
}

type Transition = typeof start;
function transition(fn: Transition) {
  return async (c: Context<AdminEnv>) => {
    const body = parse(reasonBodySchema, await optionalJson(c));
    const d = await load(c);
    const next = await fn(deploymentsDb(c.env.DB), c.env, d, c.get("actor"), body.reason);
    return c.json({ deployment: describeDeployment(next) });
  };
}

export const deploymentRoutes = new Hono<AdminEnv>()
  .post("/", async (c) => {
    const input = parse(createDeploymentSchema, await readJson(c));
    const d = await createDeployment(deploymentsDb(c.env.DB), c.env, input, c.get("actor"));
    return c.json({ deployment: describeDeployment(d) }, 201);
  })
  .get("/", async (c) => {
    const model = c.req.query("model");
    const state = c.req.query("state");
    if (model !== undefined && !modelNameSchema.safeParse(model).success) throw new ApiError("bad_request", `invalid model name '${model}'`);
    if (state !== undefined && !STATES.includes(state as State)) throw new ApiError("bad_request", `invalid state '${state}'; one of ${STATES.join(", ")}`);
    const rows = await listDeployments(deploymentsDb(c.env.DB), { model, states: state ? [state as State] : undefined });
    return c.json({ deployments: rows.map(describeDeployment) });
  })
  .put("/test-sets/:model", async (c) => {
    const model = modelNameSchema.safeParse(c.req.param("model"));
    if (!model.success) throw new ApiError("bad_request", `invalid model name '${c.req.param("model")}'`);
    const registry = registryDb(c.env.DB);
    await getModel(registry, model.data); // 404 for an unknown model
    const set = parse(testSetSchema, await readJson(c));
    // Labels against the versions that can still be validated (every version if all are archived).
    const versions = await listVersions(registry, model.data);
    const live = versions.filter((v) => v.status !== "archived");
    const issues = versions.length ? testSetLabelIssues(set, (live.length ? live : versions).map((v) => toModelVersion(v).featureSchema.output)) : [];
    if (issues.length) throw new ApiError("invalid_input", `${issues.length} label(s) that model ${model.data} cannot predict; first: ${issues[0].path}: ${issues[0].message}`, issues.slice(0, 50));
    const rows = set.rows.map((r) => ({ features: r.features, ...(r.label !== undefined ? { label: r.label } : {}) }));
    await c.env.ARTIFACTS.put(testSetKey(model.data), JSON.stringify({ rows }), { httpMetadata: { contentType: "application/json" }, customMetadata: { by: c.get("actor") } });
    return c.json({ model: model.data, rows: rows.length, labelled: rows.filter((r) => r.label !== undefined).length });
  })
  .get("/:id", async (c) => c.json({ deployment: describeDeployment(await load(c)) }))
  .get("/:id/history", async (c) => {
    const d = await load(c);
    return c.json({ deployment: d.id, events: await history(deploymentsDb(c.env.DB), d.id) });
  })
  .post("/:id/validate", async (c) => {
    const body = parse(validateBodySchema, await optionalJson(c));
    const db = deploymentsDb(c.env.DB);
    const d = await load(c);
    if (d.state !== "validating") throw new ApiError("conflict", `deployment ${d.id} is ${d.state}; validation runs before traffic (state validating)`);
    const stored = body.test_set ? null : await storedTestSet(c.env, d.modelName);
    const testSet = body.test_set ? { source: "request" as const, set: body.test_set as TestSet } : stored ? { source: "stored" as const, set: stored } : null;
    if (testSet) await checkTestSetLabels(db, d.modelName, [...versionsToValidate(d), ...(d.baselineVersion ? [d.baselineVersion] : [])], testSet);
    const cfg = { ...d.config.validation, ...(body.validation ?? {}) };
    const report = await validateVersions(c.env, db, d.modelName, versionsToValidate(d), d.baselineVersion, testSet, cfg);
    const next = await applyChange(db, c.env, d, {
      action: "validate",
      actor: c.get("actor"),
      reason: body.reason,
      validationStatus: report.passed ? "passed" : "failed",
      validation: report,
      config: { ...d.config, validation: cfg },
      details: { passed: report.passed, failed_checks: report.versions.flatMap((v) => v.checks.filter((k) => !k.passed).map((k) => `${v.version}:${k.name}`)) },
    });
    return c.json({ deployment: describeDeployment(next), report });
  })
  .post("/:id/start", transition(start))
  .post("/:id/pause", transition(pause))
  .post("/:id/resume", transition(resume))
  .post("/:id/abort", transition(abort))
  .post("/:id/rollback", transition((db, env, d, actor, reason) => rollback(db, env, d, actor, reason)))
  .post("/:id/promote", async (c) => {
    const body = parse(promoteBodySchema, await optionalJson(c));
    const d = await load(c);
    const next = await promote(deploymentsDb(c.env.DB), c.env, d, c.get("actor"), body.reason, body.variant);
    return c.json({ deployment: describeDeployment(next) });
  })
  .post("/:id/weights", async (c) => {
    const body = parse(weightsBodySchema, await readJson(c));
    const d = await load(c);
    const next = await reweight(deploymentsDb(c.env.DB), c.env, d, c.get("actor"), body.variants, body.reason);
    return c.json({ deployment: describeDeployment(next) });
  })
  .get("/:id/results", async (c) => {
    const d = await load(c);
    const stats = statsFor(c.env, d.id);
    const summary = await stats.summary(0);
    // Each weight period on its own (minute-aligned: the minute of a change counts in the new period).
    const periods = d.config.periods ?? [];
    const perPeriod =
      periods.length > 1
        ? await Promise.all(
            periods.map(async (p, i) => {
              const until = periods[i + 1]?.from;
              const s = await stats.summary(p.from, 5000, until);
              const order = d.variants.map((v) => ({ ...v, weight: p.weights[v.name] ?? 0 }));
              return { from: p.from ? new Date(p.from).toISOString() : d.createdAt, until: until ? new Date(until).toISOString() : null, weights: p.weights, ...variantResults(s, order, d.config.metric ?? "auc") };
            }),
          )
        : undefined;
    return c.json({
      deployment: d.id,
      model: d.modelName,
      strategy: d.strategy,
      state: d.state,
      // Every result of the deployment counts (summary(0)): it began when it was created.
      since: summary.since ? new Date(summary.since).toISOString() : d.createdAt,
      ...variantResults(summary, d.variants, d.config.metric ?? "auc"),
      ...(perPeriod ? { periods: perPeriod } : {}),
      ...(d.strategy === "shadow" ? { shadow: { version: d.config.candidate, fraction: d.config.fraction, ...shadowResults(summary.shadow) } } : {}),
    });
  });
