/**
 * The HTTP surface: wires each capability's routes into one Hono app with the cross-cutting
 * middleware (request id, per-isolate metrics, body limits, credentials) and the single error
 * mapping. Capabilities live in their folders; nothing here knows how a prediction is made.
 */
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { v7 as uuidv7 } from "uuid";
import { adminAuth, apiKeyAuth, metricsAuth } from "./http/auth";
import { toResponse } from "./http/errors";
import { intVar, limitBody } from "./http/limits";
import { rateLimit } from "./http/rate-limit";
import { sessionCache } from "./inference/predictor";
import { isolateMetrics } from "./observability/isolate-metrics";
import { wireDeploymentListeners } from "./deployments/listeners";
import { deploymentRoutes } from "./deployments/routes";
import { collectFleet, collector, dashboardRoutes, feedbackRoutes, monitoringAdminRoutes, monitoringReadRoutes, renderCounters, renderFleet, wireMonitoring } from "./monitoring";
import { registryRoutes } from "./registry/routes";
import { retrainingAdminRoutes, trainerRoutes, wireRetraining } from "./retraining";
import { readiness } from "./serving/health";
import { v1Routes } from "./serving/v1";
import { v2Routes } from "./serving/v2";

type AppEnv = { Bindings: Env; Variables: { requestId: string; actor: string } };

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function createApp() {
  const app = new Hono<AppEnv>();

  // Generated ids are UUIDv7 (time-ordered): the prediction log indexes requests by id, and
  // ordered keys append to the index instead of rewriting random pages of it on every flush.
  app.use(requestId({ limitLength: 128, headerName: "x-request-id", generator: () => uuidv7() }));
  app.use(async function recordMetrics(c, next) {
    const started = performance.now();
    await next();
    isolateMetrics.recordRequest(c.req.routePath || "unmatched", c.res.status, (performance.now() - started) / 1000);
  });

  const predictionLimit = limitBody((env) => intVar(env.MAX_BODY_BYTES, 1024 * 1024));

  app.get("/health", (c) => c.json({ status: "ok" }));
  app.get("/ready", async (c) => {
    const report = await readiness(c.env);
    return c.json(report, report.ready ? 200 : 503);
  });
  app.get("/metrics", metricsAuth(), async (c) => {
    const cache = sessionCache(c.env).stats();
    // Fleet-wide aggregates from the monitoring Durable Objects, then this isolate's own series.
    const fleet = renderFleet(await collectFleet(c.env));
    const body = isolateMetrics.render({
      edge_ml_sessions_cached: { help: "ONNX sessions held by this isolate.", value: cache.entries },
      edge_ml_sessions_cached_bytes: { help: "Artifact bytes of the sessions held by this isolate.", value: cache.bytes },
    });
    // Counters of this isolate (typed as counters so `promtool check metrics` accepts the names).
    const counters = renderCounters({
      edge_ml_sessions_created_total: { help: "ONNX sessions created by this isolate.", value: cache.created },
      edge_ml_monitoring_dropped_total: { help: "Monitoring observations this isolate dropped after a failed flush retry.", value: collector.dropped },
      edge_ml_monitoring_flushes_total: { help: "Monitoring batches this isolate flushed to Durable Objects.", value: collector.flushes },
    });
    return c.text(fleet + body + counters, 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  });

  const predictRate = rateLimit((env) => env.PREDICT_RATE_LIMITER, "predict");
  app.use("/v1/*", apiKeyAuth(), predictRate, predictionLimit);
  app.route("/v1", v1Routes);

  app.use("/v2/models/*", apiKeyAuth(), predictRate, predictionLimit);
  app.route("/v2", v2Routes);

  app.route("/v1/feedback", feedbackRoutes);
  app.route("/v1/monitoring", monitoringReadRoutes);
  app.route("/dashboard", dashboardRoutes);
  wireMonitoring();

  app.use("/admin/*", rateLimit((env) => env.ADMIN_RATE_LIMITER, "admin"), adminAuth());
  app.route("/admin/monitoring", monitoringAdminRoutes);
  app.route("/admin/models", registryRoutes);
  app.route("/admin/deployments", deploymentRoutes);
  wireDeploymentListeners();
  app.route("/admin/retraining", retrainingAdminRoutes);
  // The trainer's downloads and callbacks: HMAC-signed per model (src/retraining/signing.ts), not admin tokens.
  app.use("/retraining/*", rateLimit((env) => env.ADMIN_RATE_LIMITER, "trainer"));
  app.route("/retraining", trainerRoutes);
  wireRetraining();

  app.notFound((c) => c.json({ error: { code: "not_found", message: `no route for ${c.req.method} ${new URL(c.req.url).pathname}` }, request_id: c.get("requestId") }, 404));
  app.onError(toResponse);
  return app;
}
