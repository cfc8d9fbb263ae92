/**
 * The feature store's public face: its routes, its Durable Object class, its queue consumer, and
 * the two places it meets the rest of the worker: model registration (a manifest feature may come
 * from the store; registration checks it exists with a compatible type, and the store refuses to
 * retire or retype it under a version that reads it: dependents.ts) and prediction by entity
 * id (the features a model version's schema takes from the store, fetched for one entity).
 */
import { ApiError, type FieldIssue } from "../http/errors";
import { addRegistrationCheck, type CheckedVersion } from "../registry/checks";
import type { FeatureSchema, Manifest } from "../registry/manifest";
import { groupDefinitions } from "./definitions";
import { storeFeatureIssue } from "./dependents";
import type { Value } from "./expression";
import type { Tier } from "./metrics";
import { processLoadMessage, sweepFeatureLoads, warmEntities, type LoadMessage, type WarmMessage } from "./offline";
import { getFeatures } from "./resolve";

export { entityIdSchema } from "./definitions";
export { FeatureAggregates } from "./realtime";
export { eventRoutes, featureAdminRoutes, featureServeRoutes } from "./routes";
export { featureMetrics } from "./metrics";
export { sweepFeatureLoads } from "./offline";
export type { LoadMessage, WarmMessage } from "./offline";

export const FEATURE_LOADS_QUEUE = "edge-ml-feature-loads";

/** Queue consumer of offline loads (dispatched by queue name in src/index.ts). */
export async function consumeFeatureLoads(batch: MessageBatch<LoadMessage | WarmMessage>, env: Env): Promise<void> {
  for (const msg of batch.messages) {
    try {
      if (msg.body.kind === "feature_warm") {
        await warmEntities(env, msg.body);
        msg.ack();
        continue;
      }
      const outcome = await processLoadMessage(env, msg.body as LoadMessage, msg.attempts);
      if (outcome === "ack") msg.ack();
      else msg.retry({ delaySeconds: 1 });
    } catch (error) {
      console.error(JSON.stringify({ level: "warn", msg: "feature load chunk failed", body: msg.body, attempts: msg.attempts, error: String(error) }));
      msg.retry({ delaySeconds: Math.min(60, 2 ** msg.attempts) });
    }
  }
}

async function checkStoreFeatures(env: Env, manifest: CheckedVersion): Promise<FieldIssue[]> {
  const issues: FieldIssue[] = [];
  for (const [i, f] of manifest.featureSchema.features.entries()) {
    if (!f.store) continue;
    const issue = storeFeatureIssue({ ...f, store: f.store }, await groupDefinitions(env, f.store.group));
    if (issue) issues.push({ path: `manifest.featureSchema.features[${i}].store`, message: issue });
  }
  return issues;
}

export function wireFeatures() {
  addRegistrationCheck(checkStoreFeatures);
}

export interface EntityRow {
  row: Record<string, unknown>;
  sources: Record<string, Tier>;
  fellBack: string[];
}

/** The row a model version scores for an entity: store features fetched, caller overrides on top. */
export async function entityRow(env: Env, schema: FeatureSchema, entityId: string, overrides: Record<string, unknown>, timeoutMs?: number): Promise<EntityRow> {
  const byGroup = new Map<string, { feature: string; key: string }[]>();
  for (const f of schema.features) {
    if (!f.store || Object.hasOwn(overrides, f.name)) continue;
    const key = (f.store.name ?? f.name) + (f.store.version !== undefined ? `@${f.store.version}` : "");
    byGroup.set(f.store.group, [...(byGroup.get(f.store.group) ?? []), { feature: f.name, key }]);
  }
  if (!schema.features.some((f) => f.store)) throw new ApiError("bad_request", "this model version takes no features from the feature store; send \"features\" instead of \"entity_id\"");
  const row: Record<string, unknown> = {};
  const sources: Record<string, Tier> = {};
  const fellBack: string[] = [];
  const issues: FieldIssue[] = [];
  await Promise.all(
    [...byGroup].map(async ([group, wanted]) => {
      const [result] = await getFeatures(env, group, [entityId], [...new Set(wanted.map((w) => w.key))], { timeoutMs });
      for (const { feature, key } of wanted) {
        const err = result.errors.find((e) => e.feature === key);
        if (err) {
          issues.push({ path: `features.${feature}`, message: err.message });
          continue;
        }
        row[feature] = result.values[key] as Value;
        sources[feature] = result.sources[key];
        if (result.fell_back.includes(key)) fellBack.push(feature);
      }
    }),
  );
  if (issues.length) throw new ApiError("not_found", `no value for ${issues.map((i) => i.path.slice(9)).join(", ")} of entity '${entityId}': ${issues[0].message}`, issues);
  for (const [k, v] of Object.entries(overrides)) {
    row[k] = v;
    sources[k] = "override";
  }
  return { row, sources, fellBack };
}
