/**
 * Per-isolate buffer of routed observations on their way to each deployment's DeploymentStats.
 *
 * Predictions and failures are appended here from the prediction listeners (inside waitUntil) and
 * shipped as one `recordMany` call per deployment when a deployment's buffer holds
 * FLUSH_OBSERVATIONS entries, or DEPLOYMENT_STATS_FLUSH_MS (default 1 s) after the first entry into
 * an empty buffer, whose waitUntil stays open until then. Canary decisions run once a minute, so a
 * second's delay costs nothing, while a busy deployment's object sees one write per isolate per
 * second instead of one per prediction.
 *
 * Loss bound: observations an isolate holds when it dies without running its waitUntil (at most
 * one flush interval of its traffic). A failed flush is logged and dropped: these are statistics
 * for rollout decisions, which tolerate a lost second; the monitoring capability keeps the
 * authoritative counts.
 */
import { intVar } from "../http/limits";
import { statsFor, type ObservationInput } from "./live-stats";

const FLUSH_OBSERVATIONS = 500;

class Recorder {
  private buffers = new Map<string, ObservationInput[]>();
  private armed = new Set<string>();

  async add(env: Env, deployment: string, observation: ObservationInput): Promise<void> {
    let buffer = this.buffers.get(deployment);
    if (!buffer) this.buffers.set(deployment, (buffer = []));
    buffer.push(observation);
    if (buffer.length >= FLUSH_OBSERVATIONS) return this.flush(env, deployment);
    if (this.armed.has(deployment)) return;
    this.armed.add(deployment);
    await new Promise((resolve) => setTimeout(resolve, intVar(env.DEPLOYMENT_STATS_FLUSH_MS, 1000)));
    this.armed.delete(deployment);
    await this.flush(env, deployment);
  }

  async flush(env: Env, deployment: string): Promise<void> {
    const batch = this.buffers.get(deployment);
    if (!batch?.length) return;
    this.buffers.delete(deployment);
    try {
      await statsFor(env, deployment).recordMany(batch);
    } catch (error) {
      console.error(JSON.stringify({ level: "warn", msg: "deployment stats flush failed", deployment, dropped: batch.length, error: String(error) }));
    }
  }
}

/** The isolate's recorder (isolate-scoped: it holds observations of past requests only). */
export const recorder = new Recorder();
