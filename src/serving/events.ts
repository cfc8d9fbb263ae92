/**
 * Prediction events: what other capabilities (monitoring, shadow traffic, bandit rewards) learn
 * about each answered or failed prediction, without sitting on the response path.
 *
 * Serving calls `emitPrediction` / `emitFailure` after the response is computed; every listener
 * runs inside `ctx.waitUntil`, so a throwing listener never changes the caller's response or
 * status, and a listener's I/O never delays it. A listener's synchronous work (monitoring's fold)
 * does run on the isolate's thread before the runtime writes the response (a microtask, or even a
 * 0 ms timer, runs first: checked in workerd), so it is kept small. Listeners are wired once in
 * app.ts (isolate configuration, not request state).
 */
import type { Context } from "hono";
import type { Resolved } from "../inference/features";
import type { Prediction, PredictionColumns } from "../inference/outputs";
import { ApiError } from "../http/errors";
import type { Dispatch } from "./dispatch";

export interface PredictionEvent {
  requestId: string;
  at: number;
  /** "batch": rows scored by a batch job chunk (src/batch), not an online request. */
  route: "v1" | "v2" | "batch";
  dispatch: Dispatch;
  /** The validated rows as columns in schema feature order, with which values each row left out (absent for raw-tensor v2 requests). */
  resolved?: Resolved;
  /** Raw request rows as given (feature objects), when the request carried rows. */
  rows?: unknown[];
  predictions: Prediction[];
  /** The predictions as columns (what monitoring and the prediction log read). */
  columns: PredictionColumns;
  /** Wall time of the request handler so far, and the inference part of it (ms). */
  latencyMs: number;
  inferenceMs: number;
  /** Prediction by entity id: the entity, which tier served each feature, and which fell back (logged with the request so a later label can be traced to its inputs). */
  features?: FeatureProvenance;
}

export interface FeatureProvenance {
  entity_id: string;
  sources: Record<string, string>;
  fell_back: string[];
}

export interface FailureEvent {
  requestId: string;
  at: number;
  route: "v1" | "v2";
  model: string;
  version?: string;
  /** Deployment and variant that routed the failed request, if a deployment did. */
  deployment?: string;
  variant?: string;
  status: number;
  code: string;
  latencyMs: number;
}

export type PredictionListener = (env: Env, event: PredictionEvent) => Promise<void>;
export type FailureListener = (env: Env, event: FailureEvent) => Promise<void>;

const predictionListeners: PredictionListener[] = [];
const failureListeners: FailureListener[] = [];

export function onPrediction(listener: PredictionListener) {
  predictionListeners.push(listener);
}
export function onFailure(listener: FailureListener) {
  failureListeners.push(listener);
}

/** Hands a task to ctx.waitUntil; the task must not reject (callers guard it). */
export function detach<E extends { Bindings: Env }>(c: Context<E>, guarded: Promise<unknown>) {
  try {
    c.executionCtx.waitUntil(guarded);
  } catch {
    // No execution context (in-memory app.request in unit tests): the task still runs detached.
  }
}

/** Runs one listener; a throw or rejection is logged, never propagated (the other listeners and the response are unaffected). */
async function guarded<T>(listener: (env: Env, event: T) => Promise<void>, env: Env, event: T, kind: string): Promise<void> {
  try {
    await listener(env, event);
  } catch (error) {
    console.error(JSON.stringify({ level: "error", msg: `${kind} listener failed`, error: String(error) }));
  }
}

/**
 * Every listener of one event, concurrently, under ONE waitUntil: a slow listener (monitoring's
 * flush timer keeps its promise open up to MONITORING_FLUSH_MS) delays none of the others, and
 * the request pays one waitUntil registration instead of one per listener (bench:stages).
 */
function runAll<T>(env: Env, waitUntil: (task: Promise<unknown>) => void, listeners: readonly ((env: Env, event: T) => Promise<void>)[], event: T, kind: string) {
  if (listeners.length === 0) return;
  waitUntil(Promise.resolve().then(() => Promise.all(listeners.map((listener) => guarded(listener, env, event, kind)))));
}

export function emitPrediction<E extends { Bindings: Env }>(c: Context<E>, event: PredictionEvent) {
  runAll(c.env, (task) => detach(c, task), predictionListeners, event, "prediction");
}

/**
 * For callers outside an HTTP request (batch queue consumers): listeners run under the given
 * `waitUntil`, guarded like `emitPrediction`'s.
 */
export function emitPredictionDetached(env: Env, waitUntil: (task: Promise<unknown>) => void, event: PredictionEvent) {
  runAll(env, waitUntil, predictionListeners, event, "prediction");
}

/** A failure event for a request that `dispatch` had already routed to a version. */
export function failureOf(route: FailureEvent["route"], requestId: string, routed: Dispatch, error: unknown, started: number): FailureEvent {
  const known = error instanceof ApiError ? error : undefined;
  return {
    requestId,
    at: Date.now(),
    route,
    model: routed.version.modelName,
    version: routed.version.version,
    deployment: routed.deployment,
    variant: routed.variant,
    status: known?.status ?? 500,
    code: known?.code ?? "internal_error",
    latencyMs: performance.now() - started,
  };
}

export function emitFailure<E extends { Bindings: Env }>(c: Context<E>, event: FailureEvent) {
  runAll(c.env, (task) => detach(c, task), failureListeners, event, "failure");
}

/** A delayed label joined to the prediction it belongs to (emitted by the feedback endpoint). */
export interface FeedbackEvent {
  requestId: string;
  /** Row index within the original request (0 for single-row requests). */
  row: number;
  model: string;
  version: string;
  deployment?: string;
  variant?: string;
  /** The score the model gave (positive-class probability, or the regression value). */
  score: number;
  /** The observed outcome: class label (0/1 for binary) or regression target. */
  actual: number | string;
  predictedAt: number;
  at: number;
}

export type FeedbackListener = (env: Env, event: FeedbackEvent) => Promise<void>;
const feedbackListeners: FeedbackListener[] = [];

export function onFeedback(listener: FeedbackListener) {
  feedbackListeners.push(listener);
}

/**
 * For labels joined outside a request (one that arrived before its prediction was logged, joined
 * when the log's append comes): listeners run detached, kept alive by `waitUntil`.
 */
export function notifyFeedback(env: Env, waitUntil: (task: Promise<unknown>) => void, event: FeedbackEvent) {
  runAll(env, waitUntil, feedbackListeners, event, "feedback");
}

/** Called by whoever joins labels to predictions; listeners run like prediction listeners. */
export function emitFeedback<E extends { Bindings: Env }>(c: Context<E>, event: FeedbackEvent) {
  runAll(c.env, (task) => detach(c, task), feedbackListeners, event, "feedback");
}
