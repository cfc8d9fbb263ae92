/**
 * Shadow scoring out of the caller's request. The prediction listener (listeners.ts) only sends a
 * copy of the request's rows and the primary's predictions to the `edge-ml-shadow` Queue (an I/O
 * call from ctx.waitUntil); the shadow version scores them in the queue's consumer, a separate
 * invocation. That invocation may still run in an isolate that serves callers (always under
 * `wrangler dev`), so its CPU is bounded below (slices and a per-invocation budget). Scoring in the
 * caller's waitUntil, as before, took CPU from the isolate's next requests (a 30 ms-slower shadow
 * raised the caller's p90 from 8 to 46 ms).
 *
 * Trade-offs: comparisons arrive a batch later (max_batch_timeout, 1 s); a message holds at most
 * MAX_MESSAGE_BYTES, so a large batch request is compared on its first rows that fit (the count
 * compared is what `compared_rows` reports); delivery is at-least-once, so a retried batch (only
 * after an infrastructure fault: scoring errors and timeouts are recorded, not retried) may count
 * a comparison twice. With no queue bound (tests that remove it) nothing is compared.
 *
 * CPU bound (the consumer may share an isolate with callers: always under `wrangler dev`, and on
 * Cloudflare whenever the runtime places the consumer invocation in a serving isolate):
 * - Slices: the consumer scores a message in chunks and yields to the event loop (a 0 ms timer)
 *   before each chunk, so requests that arrive meanwhile run between chunks and wait at most one
 *   chunk. The chunk size adapts so a chunk takes about SHADOW_SLICE_MS (default 5 ms): the first
 *   chunk is one row, later ones rows = slice / measured ms per row (1..256).
 * - Budget: one consumer invocation spends at most SHADOW_BUDGET_MS (default 2,000 ms) on scoring.
 *   The rows it does not reach (the rest of a message and the messages after it) are acknowledged
 *   and counted as `skipped_rows` beside `compared_rows`, never dropped silently.
 * - Share (SHADOW_CPU_SHARE percent, default 5; 100 turns it off): an isolate-wide token bucket of
 *   scoring ms, refilled at share x wall time (capacity one second's share). A chunk starts only
 *   while the bucket has credit; otherwise its rows are skipped (counted as above), never waited
 *   for, so no backlog builds up. This bounds the fraction of the isolate's time the shadow takes
 *   (to about the share, plus one chunk), so about that fraction of callers at most wait behind a
 *   chunk: a slice cannot split one row's session.run, so a caller that does arrive during a
 *   30 ms row still waits for it. The bucket is isolate state (module scope) on purpose: it
 *   meters what every consumer invocation in this isolate takes, across invocations.
 * Timing: Workers clocks advance only across I/O, so time is read right after each yield (a timer
 *   is I/O), and a chunk's cost is the time from one yield's return to the next: CPU of the chunk
 *   plus any time other work held the isolate, an over-estimate under load, which sheds shadow
 *   work first when the isolate is busy. A per-deployment sample rate is the deployment's
 *   `fraction` (share of routed requests shadowed).
 */
import { resolveVersion } from "../registry/resolver";
import { score } from "../inference/predictor";
import type { Prediction } from "../inference/outputs";
import { intVar } from "../http/limits";
import { statsFor, type ShadowInput } from "./live-stats";

export const SHADOW_QUEUE = "edge-ml-shadow";
export const SHADOW_TIMEOUT_MS = 5_000;
export const DEFAULT_SHADOW_SLICE_MS = 5;
export const DEFAULT_SHADOW_BUDGET_MS = 2_000;
/**
 * On by default: a shadow is an experiment, and the callers of the primary pay for whatever it
 * takes of their isolate. bench:shadow on the quiet VM, a shadow 49 ms slower per row: with no
 * share callers' p50 rose 5-6x and p90 6-7x; at 10% p50 held and p90 rose ~2.5x; at 5% both stayed
 * at a fast shadow's level, with a tenth of the slow shadow's rows compared. A fast shadow is not
 * limited at 5%. Skipped rows are reported, so a comparison that is only a sample says so.
 */
export const DEFAULT_SHADOW_CPU_SHARE = 5;
const MAX_CHUNK_ROWS = 256;
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

/** A 0 ms timer: lets other requests' events run, and moves the Workers clock (it is I/O). */
const yieldToEventLoop = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** The CPU allowance of one consumer invocation, spent chunk by chunk across its messages. */
export class ShadowBudget {
  spentMs = 0;
  private perRowMs: number | undefined;
  constructor(
    readonly budgetMs: number,
    readonly sliceMs: number,
  ) {}

  /** From the optional vars SHADOW_BUDGET_MS and SHADOW_SLICE_MS (unset: the defaults above). */
  static of(env: Env): ShadowBudget {
    const vars = env as Env & { SHADOW_BUDGET_MS?: string; SHADOW_SLICE_MS?: string };
    return new ShadowBudget(intVar(vars.SHADOW_BUDGET_MS, DEFAULT_SHADOW_BUDGET_MS), intVar(vars.SHADOW_SLICE_MS, DEFAULT_SHADOW_SLICE_MS));
  }

  get exhausted(): boolean {
    return this.spentMs >= this.budgetMs;
  }

  /** Rows for the next chunk: one until a cost per row is measured, then about one slice's worth. */
  chunkRows(): number {
    if (this.perRowMs === undefined) return 1;
    if (this.perRowMs <= 0) return MAX_CHUNK_ROWS;
    return Math.max(1, Math.min(MAX_CHUNK_ROWS, Math.floor(this.sliceMs / this.perRowMs)));
  }

  charge(ms: number, rows: number) {
    this.spentMs += ms;
    const perRow = ms / rows;
    this.perRowMs = this.perRowMs === undefined ? perRow : Math.max(perRow, (this.perRowMs + perRow) / 2);
  }
}

/**
 * The share of an isolate's wall time shadow scoring may take, as a token bucket of ms: credit
 * refills at `share` ms per ms of wall time up to `capacityMs`; a chunk's measured cost is charged
 * after it ran, so the credit may go negative and the next chunk waits (is skipped) until it is
 * paid back. `now` is injectable for tests; in Workers it is read right after a timer.
 */
export class CpuShare {
  private credit: number;
  private at: number;
  constructor(
    readonly share: number,
    readonly capacityMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.credit = capacityMs;
    this.at = now();
  }

  /** Whether a chunk may start now. */
  allows(): boolean {
    if (this.share >= 1) return true;
    const t = this.now();
    this.credit = Math.min(this.capacityMs, this.credit + (t - this.at) * this.share);
    this.at = t;
    return this.credit > 0;
  }

  charge(ms: number) {
    if (this.share < 1) this.credit -= ms;
  }
}

let isolateShare: CpuShare | undefined;

/** The isolate's bucket for SHADOW_CPU_SHARE (percent, 1..100; a new bucket when the setting changes). */
export function cpuShareOf(env: Env): CpuShare {
  const percent = Math.min(100, intVar((env as Env & { SHADOW_CPU_SHARE?: string }).SHADOW_CPU_SHARE, DEFAULT_SHADOW_CPU_SHARE));
  if (isolateShare?.share !== percent / 100) isolateShare = new CpuShare(percent / 100, 10 * percent);
  return isolateShare;
}

type Scored = Awaited<ReturnType<typeof score>>["predictions"];

/** Scores a message's rows chunk by chunk, yielding before each, until done or the budget is spent. */
async function scoreInSlices(env: Env, version: Parameters<typeof score>[1], rows: unknown[], budget: ShadowBudget): Promise<Scored> {
  const predictions: Scored = [];
  const share = cpuShareOf(env);
  while (predictions.length < rows.length && !budget.exhausted) {
    await yieldToEventLoop();
    if (!share.allows()) break; // over the isolate's share: the rest of this message is skipped
    const start = predictions.length;
    const n = Math.min(budget.chunkRows(), rows.length - start);
    const t0 = performance.now();
    const out = await score(env, version, rows.slice(start, start + n), (i) => `shadow[${start + i}]`);
    await yieldToEventLoop(); // the clock moves only across I/O: read it on the far side of a timer
    const ms = performance.now() - t0;
    budget.charge(ms, n);
    share.charge(ms);
    predictions.push(...out.predictions);
  }
  return predictions;
}

/** Scores one message with the shadow version (within `budget`): the comparison to record. Never throws. */
export async function compareShadow(env: Env, m: ShadowMessage, budget: ShadowBudget = ShadowBudget.of(env)): Promise<ShadowInput> {
  if (budget.exhausted) return { at: m.at, rows: 0, skippedRows: m.rows.length };
  const started = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), SHADOW_TIMEOUT_MS)));
  let outcome: Scored | "timeout" | "error";
  try {
    const { version } = await resolveVersion(env, m.model, { version: m.version });
    outcome = await Promise.race([scoreInSlices(env, version, m.rows, budget), timeout]);
  } catch {
    outcome = "error";
  } finally {
    clearTimeout(timer);
  }
  if (outcome === "timeout") return { at: m.at, timeout: true };
  if (outcome === "error") return { at: m.at, error: true };
  let agreements = 0;
  const absDiffs: number[] = [];
  outcome.forEach((p, i) => {
    const q = m.primary[i];
    if (!q) return;
    if ("score" in p && q.score !== undefined) {
      if (String(p.label) === q.label) agreements++;
      absDiffs.push(Math.abs(p.score - q.score));
    } else if ("value" in p && q.value !== undefined) {
      absDiffs.push(Math.abs(p.value - q.value));
    }
  });
  const skippedRows = m.rows.length - outcome.length;
  return { at: m.at, rows: outcome.length, skippedRows, agreements, absDiffs, latencyMs: skippedRows ? undefined : performance.now() - started };
}

/** Scores one message and records the comparison on its own. */
export async function scoreShadow(env: Env, m: ShadowMessage, budget: ShadowBudget = ShadowBudget.of(env)): Promise<void> {
  await statsFor(env, m.deployment).recordShadow(await compareShadow(env, m, budget));
}

/**
 * Queue consumer of `edge-ml-shadow`: messages scored one at a time under one CPU budget, then
 * recorded with one DeploymentStats call per deployment for the whole batch (a call per message
 * cost about as much CPU as the fast shadow's scoring). Only a failure to record is retried, for
 * the messages of that deployment.
 */
export async function consumeShadow(batch: MessageBatch<ShadowMessage>, env: Env): Promise<void> {
  const budget = ShadowBudget.of(env);
  const byDeployment = new Map<string, { msgs: Message<ShadowMessage>[]; inputs: ShadowInput[] }>();
  for (const msg of batch.messages) {
    const input = await compareShadow(env, msg.body, budget);
    const group = byDeployment.get(msg.body.deployment) ?? { msgs: [], inputs: [] };
    group.msgs.push(msg);
    group.inputs.push(input);
    byDeployment.set(msg.body.deployment, group);
  }
  await Promise.all(
    [...byDeployment].map(async ([deployment, { msgs, inputs }]) => {
      try {
        await statsFor(env, deployment).recordShadowMany(inputs);
        for (const msg of msgs) msg.ack();
      } catch (error) {
        console.error(JSON.stringify({ level: "warn", msg: "shadow comparisons not recorded", deployment, messages: msgs.length, error: String(error) }));
        for (const msg of msgs) msg.retry();
      }
    }),
  );
}
