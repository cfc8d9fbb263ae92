/**
 * Monitoring HTTP surface.
 *
 *   POST /v1/feedback                                   delayed labels -> live performance, bandit rewards
 *   GET  /v1/monitoring/models/:model/summary|drift|performance|sla|alerts|dashboard   (API key, like predictions)
 *   GET  /dashboard/:model                              the dashboard page (data comes from the route above)
 *   GET|PUT /admin/monitoring/:model/sla | targets      admin configuration
 *   POST /admin/monitoring/:model/evaluate | reports    run an evaluation / the daily report now
 *   GET  /admin/monitoring/:model/reports/:version/:file   stored daily reports (R2)
 *   GET  /admin/monitoring/:model/dead-letters, POST .../dead-letters/replay
 */
import { Hono, type Context } from "hono";
import { z } from "zod";
import { ApiError, notFound } from "../http/errors";
import { queryInt, readJson } from "../http/limits";
import { modelNameSchema, semverSchema, zodIssues } from "../registry/manifest";
import { labelIssues } from "../registry/labels";
import { findVersion, getModel, listVersions, registryDb, toModelVersion, type VersionRow } from "../registry/store";
import { emitFeedback } from "../serving/events";
import { summarize } from "./aggregate";
import { logShardName, monitoringConfig } from "./config";
import { dashboardData, dashboardPage } from "./dashboard";
import { driftReport } from "./drift";
import { evaluateModel } from "./evaluate";
import { activeVersions, fleetLabels, fleetWindow, labelShard, loadVersion, WINDOW_NAMES, WINDOWS, type WindowName } from "./fleet";
import { targetsBodySchema } from "./notify";
import { livePerformance } from "./performance";
import type { FeedbackItem, JoinResult } from "./prediction-log";
import { publishDailyReports } from "./reports";
import { slaConfigSchema } from "./sla";

type Env_ = { Bindings: Env; Variables: { requestId: string; actor: string } };

export const feedbackBodySchema = z
  .object({
    model: modelNameSchema,
    feedback: z
      .array(
        z
          .object({
            request_id: z.string().min(1).max(128),
            row: z.number().int().min(0).max(100_000).default(0),
            actual: z.union([z.number().finite(), z.string().min(1).max(200), z.boolean()]),
          })
          .strict(),
      )
      .min(1)
      .max(1000),
  })
  .strict();

async function modelParam(c: Context<Env_>): Promise<string> {
  const name = modelNameSchema.safeParse(c.req.param("model"));
  if (!name.success) throw new ApiError("bad_request", `invalid model name '${c.req.param("model")}'`);
  await getModel(registryDb(c.env.DB), name.data); // 404 for unknown models
  return name.data;
}

function windowParam(c: Context<Env_>, fallback: WindowName): WindowName {
  const w = c.req.query("window") ?? fallback;
  if (!(WINDOW_NAMES as string[]).includes(w)) throw new ApiError("bad_request", `window must be one of ${WINDOW_NAMES.join(", ")}`, [{ path: "window", message: `unknown window '${w}'` }]);
  return w as WindowName;
}

async function versionsParam(c: Context<Env_>, model: string, span: number) {
  const wanted = c.req.query("version");
  if (wanted !== undefined && !semverSchema.safeParse(wanted).success) throw new ApiError("bad_request", "version must be MAJOR.MINOR.PATCH", [{ path: "version", message: "invalid version" }]);
  // A version never registered is a 404; a registered one without traffic in the window answers empty.
  if (wanted !== undefined && !(await findVersion(registryDb(c.env.DB), model, wanted))) throw notFound(`version ${wanted} of model '${model}'`);
  const active = await activeVersions(c.env, model, Date.now() - Math.max(span, WINDOWS["24h"]));
  return wanted ? active.filter((a) => a.version === wanted) : active;
}

async function parse<T extends z.ZodType>(c: Context<Env_>, schema: T): Promise<z.infer<T>> {
  const parsed = schema.safeParse(await readJson(c));
  if (!parsed.success) throw new ApiError("invalid_input", "invalid request body", zodIssues(parsed.error));
  return parsed.data;
}

/**
 * Every `actual` must be a label the model could predict (src/registry/labels.ts), checked against
 * every registered version before anything is written, so a label the model could never predict is
 * a 422, not a silent 0.
 */
function checkActuals(feedback: z.infer<typeof feedbackBodySchema>["feedback"], versions: VersionRow[]) {
  const issues = labelIssues(
    feedback.map((f, i) => ({ path: `feedback[${i}].actual`, value: f.actual })),
    versions.map((v) => toModelVersion(v).featureSchema.output),
  );
  if (issues.length) throw new ApiError("invalid_input", `${issues.length} invalid actual value(s); first: ${issues[0].path}: ${issues[0].message}`, issues.slice(0, 50));
}

export const feedbackRoutes = new Hono<Env_>().post("/", async (c) => {
  const body = await parse(c, feedbackBodySchema);
  const versions = await listVersions(registryDb(c.env.DB), body.model);
  if (!versions.length) throw notFound(`model '${body.model}'`);
  checkActuals(body.feedback, versions);
  const cfg = monitoringConfig(c.env);
  const byShard = new Map<string, FeedbackItem[]>();
  for (const f of body.feedback) {
    const shard = logShardName(body.model, f.request_id, cfg.logShards);
    byShard.set(shard, [...(byShard.get(shard) ?? []), { requestId: f.request_id, row: f.row, actual: String(f.actual) }]);
  }
  const now = Date.now();
  const results: JoinResult[] = (await Promise.all([...byShard].map(([shard, items]) => c.env.PREDICTION_LOG.getByName(shard).join(items, now)))).flat();
  const joined = results.filter((r): r is Extract<JoinResult, { status: "joined" }> => r.status === "joined");
  const byVersion = new Map<string, typeof joined>();
  for (const r of joined) byVersion.set(r.entry.version, [...(byVersion.get(r.entry.version) ?? []), r]);
  await Promise.all(
    [...byVersion].map(([version, rows]) =>
      c.env.MONITOR_SHARD.getByName(labelShard(body.model, version)).addLabels(
        rows.map((r) => ({ requestId: r.entry.requestId, row: r.entry.row, predictedAt: r.entry.at, labelledAt: now, score: r.entry.score, predicted: r.entry.label, actual: r.item.actual })),
      ),
    ),
  );
  const original = new Map(body.feedback.map((f) => [`${f.request_id}#${f.row}`, f.actual]));
  for (const r of joined) {
    const actual = original.get(`${r.item.requestId}#${r.item.row}`)!;
    emitFeedback(c, {
      requestId: r.entry.requestId,
      row: r.entry.row,
      model: body.model,
      version: r.entry.version,
      deployment: r.entry.deployment,
      variant: r.entry.variant,
      score: r.entry.score,
      actual: typeof actual === "boolean" ? (actual ? 1 : 0) : actual,
      predictedAt: r.entry.at,
      at: now,
    });
  }
  return c.json({
    request_id: c.get("requestId"),
    joined: joined.length,
    duplicates: results.filter((r) => r.status === "duplicate").map((r) => ({ request_id: r.item.requestId, row: r.item.row })),
    not_found: results.filter((r) => r.status === "not_found").map((r) => ({ request_id: r.item.requestId, row: r.item.row })),
    // Labels whose prediction is not logged yet: kept, and joined when it is (within PENDING_LABEL_MS).
    pending: results.filter((r) => r.status === "pending").map((r) => ({ request_id: r.item.requestId, row: r.item.row })),
  });
});

export const monitoringReadRoutes = new Hono<Env_>()
  .get("/models/:model/summary", async (c) => {
    const model = await modelParam(c);
    const window = windowParam(c, "5m");
    const versions = await versionsParam(c, model, WINDOWS[window]);
    const out = await Promise.all(
      versions.map(async ({ version, shards }) => {
        const w = await fleetWindow(c.env, shards, WINDOWS[window]);
        return { version, from: new Date(w.from).toISOString(), to: new Date(w.to).toISOString(), ...summarize(w.aggregate, w.seconds) };
      }),
    );
    return c.json({ model, window, versions: out });
  })
  .get("/models/:model/drift", async (c) => {
    const model = await modelParam(c);
    const window = windowParam(c, "24h");
    const { config } = await c.env.MODEL_CONTROL.getByName(model).sla();
    const versions = await versionsParam(c, model, WINDOWS[window]);
    const out = await Promise.all(
      versions.map(async ({ version, shards }) => {
        const [v, w] = await Promise.all([loadVersion(c.env, model, version), fleetWindow(c.env, shards, WINDOWS[window])]);
        if (!v.reference) return { version, error: "this version was registered without a reference distribution" };
        return { version, from: new Date(w.from).toISOString(), to: new Date(w.to).toISOString(), ...driftReport(v, w.aggregate, config.max_psi !== undefined ? { psi: config.max_psi } : {}) };
      }),
    );
    return c.json({ model, window, versions: out });
  })
  .get("/models/:model/performance", async (c) => {
    const model = await modelParam(c);
    const window = windowParam(c, "7d");
    const versions = await versionsParam(c, model, WINDOWS["7d"]);
    const out = await Promise.all(
      versions.map(async ({ version }) => {
        const [v, labels] = await Promise.all([loadVersion(c.env, model, version), fleetLabels(c.env, model, version, Date.now() - WINDOWS[window])]);
        return { version, ...livePerformance(v, labels) };
      }),
    );
    return c.json({ model, window, versions: out });
  })
  .get("/models/:model/sla", async (c) => {
    const model = await modelParam(c);
    const control = c.env.MODEL_CONTROL.getByName(model);
    const [sla, compliance] = await Promise.all([control.sla(), control.compliance()]);
    return c.json({ model, sla: sla.config, updated_at: sla.updated_at, updated_by: sla.updated_by, compliance });
  })
  .get("/models/:model/alerts", async (c) => {
    const model = await modelParam(c);
    const limit = queryInt(c.req.query("limit"), "limit", 1, 1000, 100);
    return c.json({ model, ...(await c.env.MODEL_CONTROL.getByName(model).alerts(limit)) });
  })
  .get("/models/:model/dashboard", async (c) => {
    const model = await modelParam(c);
    return c.json(await dashboardData(c.env, model, windowParam(c, "1h")));
  });

export const dashboardRoutes = new Hono<Env_>().get("/:model", async (c) => {
  const model = await modelParam(c);
  return c.html(dashboardPage(model), 200, { "content-security-policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:" });
});

export const monitoringAdminRoutes = new Hono<Env_>()
  .get("/:model/sla", async (c) => {
    const model = await modelParam(c);
    return c.json({ model, ...(await c.env.MODEL_CONTROL.getByName(model).sla()) });
  })
  .put("/:model/sla", async (c) => {
    const model = await modelParam(c);
    const config = await parse(c, slaConfigSchema);
    // Checked here rather than in the schema, which also reads configs stored before this rule.
    if (config.p95_latency_ms !== undefined && config.p99_latency_ms !== undefined && config.p99_latency_ms < config.p95_latency_ms) {
      const message = `p99_latency_ms (${config.p99_latency_ms}) is below p95_latency_ms (${config.p95_latency_ms}): a p99 is never below the p95`;
      throw new ApiError("invalid_input", `invalid request body: ${message}`, [{ path: "p99_latency_ms", message }]);
    }
    await c.env.MODEL_CONTROL.getByName(model).setSla(config, c.get("actor"));
    return c.json({ model, config });
  })
  .get("/:model/targets", async (c) => {
    const model = await modelParam(c);
    return c.json({ model, targets: await c.env.MODEL_CONTROL.getByName(model).targets() });
  })
  .put("/:model/targets", async (c) => {
    const model = await modelParam(c);
    const { targets } = await parse(c, targetsBodySchema);
    const ids = targets.map((t) => t.id);
    if (new Set(ids).size !== ids.length) throw new ApiError("invalid_input", "duplicate target ids", [{ path: "targets", message: "ids must be unique" }]);
    const control = c.env.MODEL_CONTROL.getByName(model);
    await control.setTargets(targets);
    return c.json({ model, targets: await control.targets() });
  })
  .post("/:model/evaluate", async (c) => {
    const model = await modelParam(c);
    return c.json({ model, evaluations: await evaluateModel(c.env, model) });
  })
  .post("/:model/reports", async (c) => {
    const model = await modelParam(c);
    return c.json({ model, keys: await publishDailyReports(c.env, model) }, 201);
  })
  .get("/:model/reports/:version/:file", async (c) => {
    const model = await modelParam(c);
    const version = c.req.param("version");
    const file = c.req.param("file");
    if (!semverSchema.safeParse(version).success || !/^\d{4}-\d{2}-\d{2}\.(json|html)$/.test(file)) throw notFound("report");
    const obj = await c.env.ARTIFACTS.get(`reports/drift/${model}/${version}/${file}`);
    if (!obj) throw notFound("report");
    return new Response(obj.body, { headers: { "content-type": file.endsWith(".json") ? "application/json" : "text/html; charset=utf-8" } });
  })
  .get("/:model/dead-letters", async (c) => {
    const model = await modelParam(c);
    return c.json({ model, dead_letters: await c.env.MODEL_CONTROL.getByName(model).deadLetters() });
  })
  .post("/:model/dead-letters/replay", async (c) => {
    const model = await modelParam(c);
    return c.json({ model, replayed: await c.env.MODEL_CONTROL.getByName(model).replayDeadLetters() });
  });
