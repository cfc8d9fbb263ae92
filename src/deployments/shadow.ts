/**
 * Shadow scoring out of the caller's isolate. The prediction listener (listeners.ts) only sends a
 * copy of the request's rows and the primary's predictions to the `edge-ml-shadow` Queue (an I/O
 * call from ctx.waitUntil); the shadow version scores them in the queue's consumer, a separate
 * invocation that Cloudflare schedules away from the request, so however slow the shadow model is,
 * the caller's isolate spends no CPU on it. Scoring in the caller's waitUntil, as before, took CPU
 * from the isolate's next requests (a 30 ms-slower shadow raised the caller's p90 from 8 to 46 ms).
 *
 * Trade-offs: comparisons arrive a batch later (max_batch_timeout, 1 s); a message holds at most
 * MAX_MESSAGE_BYTES, so a large batch request is compared on its first rows that fit (the count
 * compared is what `compared_rows` reports); delivery is at-least-once, so a retried batch (only
 * after an infrastructure fault: scoring errors and timeouts are recorded, not retried) may count
 * a comparison twice. With no queue bound (tests that remove it) nothing is compared.
 */
import { resolveVersion } from "../registry/resolver";
import { score } from "../inference/predictor";
import type { Prediction } from "../inference/outputs";
import { statsFor } from "./live-stats";

export const SHADOW_QUEUE = "edge-ml-shadow";
export const SHADOW_TIMEOUT_MS = 5_000;
/** Queue messages are limited to 128 KB; keep headroom for the envelope. */
const MAX_MESSAGE_BYTES = 120_000;

/** What the primary answered for one row, as far as a comparison needs it. */
type Primary = { score?: number; label?: string; value?: number };

export interface ShadowMessage {
  deployment: string;
  model: string;
  version: string;
  at: number;
  rows: unknown[];
  primary: Primary[];
}

function primaryOf(p: Prediction): Primary {
  if ("score" in p) return { score: p.score, label: String(p.label) };
  if ("value" in p) return { value: p.value };
  return {};
}

const encoder = new TextEncoder();

/** The message for a request, cut to the leading rows that fit in a queue message (null if not even one does). */
export function shadowMessage(deployment: string, model: string, version: string, at: number, rows: unknown[], predictions: Prediction[]): ShadowMessage | null {
  let n = Math.min(rows.length, predictions.length);
  while (n > 0) {
    const message: ShadowMessage = { deployment, model, version, at, rows: rows.slice(0, n), primary: predictions.slice(0, n).map(primaryOf) };
    const bytes = encoder.encode(JSON.stringify(message)).length;
    if (bytes <= MAX_MESSAGE_BYTES) return message;
    n = Math.max(0, Math.min(n - 1, Math.floor((n * MAX_MESSAGE_BYTES) / bytes)));
  }
  return null;
}

/** Called from the caller's waitUntil: hands the comparison to the queue. */
export async function enqueueShadow(env: Env, message: ShadowMessage | null, deployment: string, at: number): Promise<void> {
  if (!message) return statsFor(env, deployment).recordShadow({ at, error: true });
  await env.SHADOW_QUEUE.send(message, { contentType: "json" });
}

/** Scores one message with the shadow version and records the comparison. */
export async function scoreShadow(env: Env, m: ShadowMessage): Promise<void> {
  const stats = statsFor(env, m.deployment);
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), SHADOW_TIMEOUT_MS)));
  let outcome: Awaited<ReturnType<typeof score>> | "timeout" | "error";
  try {
    const { version } = await resolveVersion(env, m.model, { version: m.version });
    outcome = await Promise.race([score(env, version, m.rows, (i) => `shadow[${i}]`), timeout]);
  } catch {
    outcome = "error";
  } finally {
    clearTimeout(timer);
  }
  if (outcome === "timeout") return stats.recordShadow({ at: m.at, timeout: true });
  if (outcome === "error") return stats.recordShadow({ at: m.at, error: true });
  let agreements = 0;
  const absDiffs: number[] = [];
  outcome.predictions.forEach((p, i) => {
    const q = m.primary[i];
    if (!q) return;
    if ("score" in p && q.score !== undefined) {
      if (String(p.label) === q.label) agreements++;
      absDiffs.push(Math.abs(p.score - q.score));
    } else if ("value" in p && q.value !== undefined) {
      absDiffs.push(Math.abs(p.value - q.value));
    }
  });
  return stats.recordShadow({ at: m.at, rows: outcome.predictions.length, agreements, absDiffs, latencyMs: performance.now() - started });
}

/** Queue consumer of `edge-ml-shadow`: one message at a time; only a failure to record is retried. */
export async function consumeShadow(batch: MessageBatch<ShadowMessage>, env: Env): Promise<void> {
  for (const msg of batch.messages) {
    try {
      await scoreShadow(env, msg.body);
      msg.ack();
    } catch (error) {
      console.error(JSON.stringify({ level: "warn", msg: "shadow comparison not recorded", deployment: msg.body.deployment, error: String(error) }));
      msg.retry();
    }
  }
}
