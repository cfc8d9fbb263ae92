/**
 * The variants `npm run bench:stages` builds (scripts/bench-stages.ts): each removes or bypasses one
 * stage of a prediction request by a text patch of a scratch copy of the source. Kept apart from
 * the benchmark so that stage-variants.node-test.ts (run by `npm test`) checks that every patch
 * still finds its text: a patch that no longer applies fails there, not halfway through a run.
 */
export type Patch = { file: string; from: string; to: string };
export interface Variant {
  name: string;
  /** What the variant takes away (the stage whose cost full - variant measures). */
  stage: string;
  patches?: Patch[];
  vars?: Record<string, string>;
}

const once = (key: string, expr: string) => `((globalThis as any).${key} ??= ${expr})`;
export const VARIANTS: Variant[] = [
  { name: "full", stage: "(the build as it is)" },
  { name: "no-request-id", stage: "request id (UUIDv7) and its header", patches: [{ file: "src/app.ts", from: "const id = uuidv7();", to: 'const id = "01900000-0000-7000-8000-000000000000";' }] },
  { name: "no-secure-headers", stage: "security headers middleware", patches: [{ file: "src/app.ts", from: "app.use(requestLog(), securityHeaders(), configurableCors());", to: "app.use(requestLog(), configurableCors());" }] },
  { name: "no-request-metrics", stage: "per-isolate request metrics middleware", patches: [{ file: "src/app.ts", from: "isolateMetrics.recordRequest(c.req.routePath", to: "void (c.req.routePath" }] },
  { name: "no-body-limit", stage: "body limit middleware", patches: [{ file: "src/app.ts", from: 'app.use("/v1/*", predictRate, apiKeyAuth(), predictionLimit);', to: 'app.use("/v1/*", predictRate, apiKeyAuth());' }] },
  { name: "no-json-parse", stage: "body read + JSON depth check + JSON.parse", patches: [{ file: "src/serving/v1.ts", from: "const raw = await readJson(c);", to: `const raw = ${once("__raw", "await readJson(c)")};` }] },
  { name: "no-zod", stage: "zod body validation", patches: [{ file: "src/serving/v1.ts", from: "const parsed = predictBody.safeParse(raw);", to: `const parsed = ${once("__parsed", "predictBody.safeParse(raw)")};` }] },
  { name: "no-dispatch", stage: "version resolution (dispatch, registry cache)", patches: [{ file: "src/serving/v1.ts", from: "const routed = await dispatch(c, name.data, { version: body.version, alias: body.alias }, body.unit);", to: `const routed = ${once("__routed", "await dispatch(c, name.data, { version: body.version, alias: body.alias }, body.unit)")};` }] },
  { name: "no-row-validation", stage: "row validation against the feature schema", patches: [{ file: "src/inference/predictor.ts", from: "return runResolved(env, version, rowValidator(version.featureSchema).resolve(rows, pathOf));", to: `return runResolved(env, version, ${once("__resolved", "rowValidator(version.featureSchema).resolve(rows, pathOf)")});` }] },
  { name: "no-tensor-build", stage: "tensor build", patches: [{ file: "src/inference/predictor.ts", from: "const results = await model.run(buildFeeds(ort, schema, resolved), requestedOutputs(schema.output));", to: `const results = await model.run(${once("__feeds", "buildFeeds(ort, schema, resolved)")}, requestedOutputs(schema.output));` }] },
  { name: "no-session-run", stage: "tensor build + session run", patches: [{ file: "src/inference/predictor.ts", from: "const results = await model.run(buildFeeds(ort, schema, resolved), requestedOutputs(schema.output));", to: `const results = ${once("__results", "await model.run(buildFeeds(ort, schema, resolved), requestedOutputs(schema.output))")};` }] },
  { name: "no-decode", stage: "output decode", patches: [{ file: "src/inference/predictor.ts", from: "const decoded = decodeOutputs(version.featureSchema.output, run.results, run.rows, run.model.info.zipMapClasses);", to: `const decoded = ${once("__decoded", "decodeOutputs(version.featureSchema.output, run.results, run.rows, run.model.info.zipMapClasses)")};` }] },
  { name: "no-events", stage: "prediction events (monitoring fold, deployment stats, retraining archive)", patches: [{ file: "src/serving/v1.ts", from: "emitPrediction(c, {", to: "if (false) emitPrediction(c, {" }] },
  { name: "monitoring-off", stage: "monitoring (MONITORING_ENABLED=false)", vars: { MONITORING_ENABLED: "false" } },
  { name: "no-monitor-fold", stage: "monitoring: folding the request into the isolate's aggregates", patches: [{ file: "src/monitoring/collector.ts", from: "for (const h of held) foldPrediction(h.bucket, h.event);", to: "for (const h of held) void h.bucket;" }] },
  { name: "no-monitor-log", stage: "monitoring: packing the request for the prediction log (and the log's append)", patches: [{ file: "src/monitoring/collector.ts", from: 'for (const h of held) if (h.event.route !== "batch") this.logRequest(cfg, h);', to: "for (const h of held) void h;" }] },
  { name: "no-log-append", stage: "monitoring: the prediction log object's append (SQLite insert)", patches: [{ file: "src/monitoring/prediction-log.ts", from: "async append(model: string, batch: PackedRequests): Promise<number> {", to: "async append(model: string, batch: PackedRequests): Promise<number> { if (model) return 0;" }] },
  { name: "no-shard-ingest", stage: "monitoring: the stats shard object's ingest", patches: [{ file: "src/monitoring/shard.ts", from: "async ingest(batch: ShardBatch): Promise<void> {", to: "async ingest(batch: ShardBatch): Promise<void> { if (batch) return;" }] },
  // The retraining payload archive at sample rate 1 for every model (no config needed): "archive-on"
  // minus "full" is its whole cost; archive-on minus each archive-no-* variant is that part's cost
  // (a put's cost by size: npm run bench:r2-put).
  { name: "archive-on", stage: "(adds) payload archive at sample rate 1", patches: [{ file: "src/retraining/archive.ts", from: "const rate = cfg?.sample_rate ?? 0;", to: "const rate = 1; void cfg;" }] },
  { name: "archive-no-finish", stage: "archive's block encoding at each flush (first flush's bytes reused; rows are still copied as they arrive), archive on", patches: [{ file: "src/retraining/archive.ts", from: "const rate = cfg?.sample_rate ?? 0;", to: "const rate = 1; void cfg;" }, { file: "src/retraining/archive.ts", from: "const body = builder.finish(buffer.labels);", to: `builder.clear();\n    const body = ${once("__archiveBody", "new BlockBuilder().finish([])")};` }] },
  { name: "archive-no-put", stage: "archive's R2 put (local R2 runs in the same process), archive on", patches: [{ file: "src/retraining/archive.ts", from: "const rate = cfg?.sample_rate ?? 0;", to: "const rate = 1; void cfg;" }, { file: "src/retraining/archive.ts", from: "await env.ARTIFACTS.put(`${archivePrefix(model)}${day}/${uuidv7()}.block`, body,", to: "if (false) await env.ARTIFACTS.put(`${archivePrefix(model)}${day}/${uuidv7()}.block`, body," }] },
  { name: "archive-buffer-only", stage: "archive's whole flush (rows copied, then dropped at the bound), archive on", patches: [{ file: "src/retraining/archive.ts", from: "const rate = cfg?.sample_rate ?? 0;", to: "const rate = 1; void cfg;" }, { file: "src/retraining/archive.ts", from: "    const body = builder.finish(buffer.labels);", to: "    builder.clear();\n    if (this.flushes >= 0) return;\n    const body = builder.finish(buffer.labels);" }] },
  { name: "archive-gzip-block", stage: "(adds) gzip of the block before its put, archive on", patches: [{ file: "src/retraining/archive.ts", from: "const rate = cfg?.sample_rate ?? 0;", to: "const rate = 1; void cfg;" }, { file: "src/retraining/archive.ts", from: "const body = builder.finish(buffer.labels);", to: 'const body = new Uint8Array(await new Response(new Blob([builder.finish(buffer.labels)]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer());' }] },
  { name: "archive-flush-2000", stage: "archive on, flushing every 2,000 rows instead of 10,000", patches: [{ file: "src/retraining/archive.ts", from: "const rate = cfg?.sample_rate ?? 0;", to: "const rate = 1; void cfg;" }], vars: { RETRAINING_ARCHIVE_FLUSH_ROWS: "2000" } },
  { name: "no-response-json", stage: "response body JSON", patches: [{ file: "src/serving/v1.ts", from: "return c.json(single ? { ...base, prediction: predictions[0], ...served } : { ...base, predictions });", to: `return c.body(${once("__body", "JSON.stringify(single ? { ...base, prediction: predictions[0], ...served } : { ...base, predictions })")}, 200, { "content-type": "application/json" });` }] },
];
