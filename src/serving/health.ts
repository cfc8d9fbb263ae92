/**
 * Liveness and readiness.
 *
 * `/health` answers while the isolate runs. `/ready` checks that the registry (D1) answers and that
 * every model's champion loads into a session (from this isolate's cache after the first check), so
 * a load balancer or deploy gate sees a model that cannot serve.
 */
import { eq } from "drizzle-orm";
import { loadModel } from "../inference/predictor";
import { resolveVersion } from "../registry/resolver";
import { registryDb } from "../registry/store";
import { aliases } from "../registry/tables";

export interface ReadinessReport {
  ready: boolean;
  registry: "ok" | "error";
  models: Record<string, { version?: string; status: "ok" | "error"; error?: string }>;
}

const MAX_CHECKED = 50;

export async function readiness(env: Env): Promise<ReadinessReport> {
  const report: ReadinessReport = { ready: false, registry: "error", models: {} };
  let champions: { modelName: string }[];
  try {
    champions = await registryDb(env.DB).select({ modelName: aliases.modelName }).from(aliases).where(eq(aliases.alias, "champion")).limit(MAX_CHECKED).all();
    report.registry = "ok";
  } catch {
    return report;
  }
  await Promise.all(
    champions.map(async ({ modelName }) => {
      try {
        const { version } = await resolveVersion(env, modelName, {});
        await loadModel(env, version);
        report.models[modelName] = { version: version.version, status: "ok" };
      } catch (error) {
        report.models[modelName] = { status: "error", error: (error as Error).message };
      }
    }),
  );
  report.ready = Object.values(report.models).every((m) => m.status === "ok");
  return report;
}
