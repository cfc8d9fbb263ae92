/**
 * The HTTP surface: wires each capability's routes into one Hono app with the cross-cutting
 * middleware (request id, per-isolate metrics, body limits, credentials) and the single error
 * mapping. Capabilities live in their folders; nothing here knows how a prediction is made.
 */
import { Hono } from "hono";
import { v7 as uuidv7 } from "uuid";
import { adminAuth, apiKeyAuth, metricsAuth } from "./http/auth";
import { errorResponse, toResponse } from "./http/errors";
import { intVar, limitBody } from "./http/limits";
import { adminCredential, apiKeyCredential, rateLimit } from "./http/rate-limit";
import { ortMemoryBytes } from "./inference/ort";
import { sessionCache } from "./inference/predictor";
import { isolateMetrics } from "./observability/isolate-metrics";
import { wireDeploymentListeners } from "./deployments/listeners";
import { deploymentRoutes } from "./deployments/routes";
import { eventRoutes, featureAdminRoutes, featureMetrics, featureServeRoutes, wireFeatures } from "./features";
import { collectFleet, collector, dashboardRoutes, feedbackRoutes, monitoringAdminRoutes, monitoringReadRoutes, renderCounters, renderFleet, wireMonitoring } from "./monitoring";
import { resolverCacheStats } from "./registry/resolver";
import { registryRoutes } from "./registry/routes";
import { batchRoutes, renderBatchMetrics } from "./batch";
import { retrainingAdminRoutes, trainerRoutes, wireRetraining } from "./retraining";
import { configurableCors, securityHeaders } from "./http/browser";
import { requestLog } from "./observability/request-log";
import { openapiRoutes } from "./openapi";
import { readiness } from "./serving/health";
import { v1Routes } from "./serving/v1";
import { v2Routes } from "./serving/v2";

type AppEnv = { Bindings: Env; Variables: { requestId: string; correlationId?: string; actor: string } };

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function createApp() {
  const app = new Hono<AppEnv>();

  // Every request gets an id the server makes (UUIDv7, unique and time-ordered): the prediction log
  // is keyed by it (ordered keys append to the index instead of rewriting random pages of it), and
  // /v1/feedback takes it. A caller's own `x-request-id` is kept as its correlation id, echoed in
  // `x-correlation-id`, never used as a key: two callers choosing the same id must not collide.
  app.use(async function requestIds(c, next) {
    const id = uuidv7();
    c.set("requestId", id);
    c.header("x-request-id", id);
    const client = c.req.header("x-request-id");
    if (client !== undefined && REQUEST_ID.test(client)) {
      c.set("correlationId", client);
      c.header("x-correlation-id", client);
    }
    await next();
  });
  app.use(requestLog(), securityHeaders(), configurableCors());
  app.use(async function recordMetrics(c, next) {
    const started = performance.now();
    await next();
    isolateMetrics.recordRequest(c.req.routePath || "unmatched", c.res.status, (performance.now() - started) / 1000);
  });

  const predictionLimit = limitBody((env) => intVar(env.MAX_BODY_BYTES, 1024 * 1024));

  app.get("/health", (c) => c.json({ status: "ok" }));
  app.route("/", openapiRoutes);
  app.get("/ready", apiKeyAuth(), async (c) => {
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
      edge_ml_wasm_memory_bytes: { help: "onnxruntime WASM linear memory of this isolate (grows, never shrinks).", value: ortMemoryBytes() },
      edge_ml_registry_cache_bytes: { help: "Estimated bytes of resolved versions (schemas, references) this isolate caches.", value: resolverCacheStats().bytes },
    });
    // Counters of this isolate (typed as counters so `promtool check metrics` accepts the names).
    const counters = renderCounters({
      edge_ml_sessions_created_total: { help: "ONNX sessions created by this isolate.", value: cache.created },
      edge_ml_monitoring_dropped_total: { help: "Monitoring observations this isolate dropped after a failed flush retry.", value: collector.dropped },
      edge_ml_monitoring_flushes_total: { help: "Monitoring batches this isolate flushed to Durable Objects.", value: collector.flushes },
    });
    const batch = await renderBatchMetrics(c.env);
    return c.text(fleet + body + counters + featureMetrics.render() + batch, 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
  });

  // Batch scoring is an admin API under /v1: mounted before /v1/* so the prediction routes' API key,
  // rate and body limits do not apply to it (it bounds its own uploads).
  app.use("/v1/batch/*", rateLimit((env) => env.ADMIN_RATE_LIMITER, "admin", adminCredential), adminAuth());
  app.route("/v1/batch", batchRoutes);

  const predictRate = rateLimit((env) => env.PREDICT_RATE_LIMITER, "predict", apiKeyCredential);
  app.use("/v1/*", predictRate, apiKeyAuth(), predictionLimit);
  app.route("/v1", v1Routes);
  app.route("/v1/features", featureServeRoutes);
  app.route("/v1/events", eventRoutes);

  app.use("/v2/models/*", predictRate, apiKeyAuth(), predictionLimit);
  app.route("/v2", v2Routes);

  app.route("/v1/feedback", feedbackRoutes);
  app.route("/v1/monitoring", monitoringReadRoutes);
  app.use("/dashboard/*", apiKeyAuth());
  app.route("/dashboard", dashboardRoutes);
  wireMonitoring();

  app.use("/admin/*", rateLimit((env) => env.ADMIN_RATE_LIMITER, "admin", adminCredential), adminAuth());
  app.route("/admin/monitoring", monitoringAdminRoutes);
  app.route("/admin/models", registryRoutes);
  app.route("/admin/deployments", deploymentRoutes);
  wireDeploymentListeners();
  app.route("/admin/features", featureAdminRoutes);
  wireFeatures();
  app.route("/admin/retraining", retrainingAdminRoutes);
  // The trainer's downloads and callbacks: HMAC-signed per model (src/retraining/signing.ts), not admin tokens.
  // Trainer callbacks are HMAC-signed per request (checked in the route), so the limit is keyed by client IP.
  app.use("/retraining/*", rateLimit((env) => env.ADMIN_RATE_LIMITER, "trainer", async () => undefined));
  app.route("/retraining", trainerRoutes);
  wireRetraining();

  app.notFound((c) => errorResponse(c, 404, "not_found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`));
  app.onError(toResponse);
  return app;
}
