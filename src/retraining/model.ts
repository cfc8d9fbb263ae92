/**
 * Request shapes and settings of the retraining loop (zod: the single source of validation and
 * types). States of a job:
 *
 *   queued -> dispatched -> training -> validating -> promoted -> (watch) -> rolled_back
 *                                                  \-> rejected
 *   queued | dispatched | training | validating -> failed     (trainer unreachable, trainer error,
 *                                                              time-out, release error)
 *   queued | dispatched | training -> cancelled               (admin)
 *
 * A job is `active` (one per model) until it is terminal; a promoted job stays active until its
 * watch period ends, so no second job starts while the new champion is on probation.
 */
import { z } from "zod";
import { canarySteps } from "../deployments/model";
import { isHttpsUrl } from "../monitoring/notify";
import { BINARY_METRICS, DIRECTION, METRIC_NAMES, REGRESSION_METRICS, THRESHOLD_METRICS, metricLabel } from "./metrics";

export const JOB_STATES = ["queued", "dispatched", "training", "validating", "promoted", "rejected", "failed", "rolled_back", "cancelled"] as const;
export type JobState = (typeof JOB_STATES)[number];
export const TERMINAL: readonly JobState[] = ["rejected", "failed", "rolled_back", "cancelled"];

/** Which state may follow which (anything else is refused with 409). */
export const TRANSITIONS: Record<JobState, readonly JobState[]> = {
  queued: ["dispatched", "training", "failed", "cancelled"],
  dispatched: ["training", "failed", "cancelled"],
  training: ["validating", "failed", "cancelled"],
  validating: ["promoted", "rejected", "failed"],
  promoted: ["rolled_back"],
  rejected: [],
  failed: [],
  rolled_back: [],
  cancelled: [],
};

/** https, or plain http to this machine's loopback (local development with `npm start` only). */
export function isTrainerUrl(u: string): boolean {
  if (isHttpsUrl(u)) return true;
  try {
    const url = new URL(u);
    return url.protocol === "http:" && ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname) && !url.username && !url.password;
  } catch {
    return false;
  }
}
const httpsUrl = z.string().url().refine(isTrainerUrl, { message: "must be an https:// URL without credentials (http only to 127.0.0.1/localhost)" });

/** One business metric of the validation: an objective (min_improvement) or a guardrail (max_degradation). */
export const metricSpecSchema = z
  .object({
    name: z.enum(METRIC_NAMES),
    /** precision, recall, approval_rate: predicted positive iff score > threshold. */
    threshold: z.number().gt(0).lt(1).optional(),
    /** approval_rate only (default higher); every other metric's direction is fixed. */
    direction: z.enum(["higher", "lower"]).optional(),
    /** Objective: the improvement (in the better direction) must credibly exceed this. */
    min_improvement: z.number().min(-1e6).max(1e6).optional(),
    /** Guardrail: the candidate may be worse by at most this (credibly). */
    max_degradation: z.number().min(0).max(1e6).optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    const needsThreshold = THRESHOLD_METRICS.includes(m.name);
    if (needsThreshold && m.threshold === undefined) ctx.addIssue({ code: "custom", path: ["threshold"], message: `${m.name} is read at a score threshold: give threshold (0..1)` });
    if (!needsThreshold && m.threshold !== undefined) ctx.addIssue({ code: "custom", path: ["threshold"], message: `${m.name} takes no threshold (only ${THRESHOLD_METRICS.join(", ")} do)` });
    if (m.direction !== undefined && m.name !== "approval_rate") ctx.addIssue({ code: "custom", path: ["direction"], message: `${m.name}: ${DIRECTION[m.name]} is better (fixed; only approval_rate takes a direction)` });
    if ((m.min_improvement === undefined) === (m.max_degradation === undefined))
      ctx.addIssue({ code: "custom", path: ["min_improvement"], message: "give exactly one of min_improvement (an objective) or max_degradation (a guardrail)" });
  });
export type MetricSpecInput = z.infer<typeof metricSpecSchema>;

export const retrainingConfigSchema = z
  .object({
    /** The trainer's endpoint the job spec is POSTed to. */
    trainer_url: httpsUrl,
    /** Shared HMAC-SHA256 secret: the worker signs what it sends, the trainer signs what it sends back. */
    trainer_secret: z.string().min(32, "trainer_secret: at least 32 characters"),
    /** The worker's public base URL, given to the trainer for downloads and callbacks. */
    worker_url: httpsUrl,
    /** Share of predicted rows whose features are archived for training (0 turns archiving off). */
    sample_rate: z.number().min(0).max(1).default(1),
    /** No automatic trigger fires within this many minutes of the model's previous job. */
    cooldown_minutes: z.number().int().min(0).max(525_600).default(360),
    export: z
      .object({
        /** Days of archived traffic (with joined labels) the export covers. */
        days: z.number().int().min(1).max(365).default(30),
        /** The newest share of labelled rows (by prediction time) held out as the out-of-time set. */
        oot_fraction: z.number().gt(0).lt(1).default(0.2),
        /** Cap on exported rows (newest kept). */
        max_rows: z.number().int().min(100).max(500_000).default(200_000),
      })
      .strict()
      .default({ days: 30, oot_fraction: 0.2, max_rows: 200_000 }),
    validation: z
      .object({
        /** Fewest labelled out-of-time rows (of both classes) before any verdict. */
        min_oot_samples: z.number().int().min(30).default(200),
        /** Without `metrics`: the candidate's OOT AUC (RMSE for regressors) must improve by more than this. */
        min_improvement: z.number().min(-1).max(1).default(0.0),
        /** The business metrics compared (see metrics.ts); absent: AUC (RMSE) with `min_improvement`. */
        metrics: z.array(metricSpecSchema).min(1).max(12).optional(),
        /** One-sided level of each metric's bootstrap bound. */
        alpha: z.number().gt(0).max(0.2).default(0.05),
        /** Paired bootstrap resamples of the OOT rows (seeded: the same rows give the same verdict). */
        bootstrap_iterations: z.number().int().min(200).max(5000).default(1000),
      })
      .strict()
      .superRefine((v, ctx) => {
        if (!v.metrics) return;
        if (!v.metrics.some((m) => m.min_improvement !== undefined))
          ctx.addIssue({ code: "custom", path: ["metrics"], message: "at least one metric needs min_improvement (the candidate must be better at something; guardrails alone would promote an identical model)" });
        const seen = new Set<string>();
        v.metrics.forEach((m, i) => {
          const key = metricLabel(m);
          if (seen.has(key)) ctx.addIssue({ code: "custom", path: ["metrics", i, "name"], message: `${key} is listed twice` });
          seen.add(key);
        });
        const binary = v.metrics.some((m) => (BINARY_METRICS as readonly string[]).includes(m.name));
        const regression = v.metrics.some((m) => (REGRESSION_METRICS as readonly string[]).includes(m.name));
        if (binary && regression) ctx.addIssue({ code: "custom", path: ["metrics"], message: `mixes classifier metrics (${BINARY_METRICS.join(", ")}) with regression metrics (${REGRESSION_METRICS.join(", ")})` });
      })
      .default({ min_oot_samples: 200, min_improvement: 0, alpha: 0.05, bootstrap_iterations: 1000 }),
    release: z
      .object({
        steps: canarySteps.default([5, 25, 50, 100]),
        step_minutes: z.number().min(0).max(1440).default(10),
      })
      .strict()
      .default({ steps: [5, 25, 50, 100], step_minutes: 10 }),
    watch: z
      .object({
        /** How long after release live metrics are compared with the old champion's. */
        hours: z.number().gt(0).max(24 * 90).default(72),
        /** Fewest labels per version (both classes present) before the comparison counts. */
        min_labels: z.number().int().min(30).default(200),
        /** One-sided false-alarm rate of the rollback test. */
        alpha: z.number().gt(0).max(0.2).default(0.01),
      })
      .strict()
      .default({ hours: 72, min_labels: 200, alpha: 0.01 }),
    /** How long a dispatched job may wait for the trainer's completion callback. */
    training_timeout_hours: z.number().gt(0).max(24 * 7).default(24),
  })
  .strict();
export type RetrainingConfig = z.infer<typeof retrainingConfigSchema>;
export type StoredConfig = Omit<RetrainingConfig, "trainer_url" | "trainer_secret">;

const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "time: HH:MM (UTC)");

export const triggerSchema = z.discriminatedUnion("type", [
  z
    .object({
      type: z.literal("degradation"),
      /** Fire when the champion's live AUC is below its registered AUC by more than this... */
      max_auc_drop: z.number().gt(0).max(1),
      /** ...with confidence: the upper bound of the live AUC (one-sided, this alpha) is below the limit. */
      alpha: z.number().gt(0).max(0.2).default(0.01),
      min_labels: z.number().int().min(30).default(200),
      window_days: z.number().int().min(1).max(30).default(7),
    })
    .strict(),
  z
    .object({
      type: z.literal("drift"),
      /** PSI above this counts as drift (score or feature). */
      psi: z.number().gt(0).max(10).default(0.2),
      /** Fire on score drift, or when at least `min_features` features drift. */
      on: z.enum(["score", "features"]).default("score"),
      min_features: z.number().int().min(1).default(1),
      window: z.enum(["1h", "6h", "24h", "7d"]).default("24h"),
      /** Fewest observations in the window before PSI is trusted. */
      min_samples: z.number().int().min(100).default(1000),
    })
    .strict(),
  z
    .object({
      type: z.literal("schedule"),
      every: z.enum(["daily", "weekly", "monthly", "quarterly"]),
      at: hhmm.default("02:00"),
      /** weekly: 0 (Sunday) .. 6; monthly/quarterly: day of month 1..28. */
      day: z.number().int().min(0).max(28).optional(),
    })
    .strict()
    .superRefine((t, ctx) => {
      if (t.every === "weekly" && t.day !== undefined && t.day > 6) ctx.addIssue({ code: "custom", path: ["day"], message: "weekly: day is 0 (Sunday) .. 6" });
      if ((t.every === "monthly" || t.every === "quarterly") && t.day === 0) ctx.addIssue({ code: "custom", path: ["day"], message: "monthly/quarterly: day of month 1..28" });
    }),
]);
export type Trigger = z.infer<typeof triggerSchema>;

export const manualJobSchema = z.object({ reason: z.string().trim().min(3, "reason: say why (at least 3 characters)").max(1000) }).strict();
export const cancelSchema = z.object({ reason: z.string().max(1000).optional() }).strict();

/** What the trainer may report (signed callbacks). */
export const statusCallbackSchema = z.object({ status: z.literal("training"), detail: z.string().max(2000).optional() }).strict();
export const completeCallbackSchema = z.discriminatedUnion("status", [
  z.object({ status: z.literal("succeeded"), metrics: z.record(z.string(), z.number()).default({}), detail: z.string().max(4000).optional() }).strict(),
  z.object({ status: z.literal("failed"), error: z.string().min(1).max(4000) }).strict(),
]);
export type CompleteCallback = z.infer<typeof completeCallbackSchema>;

/** The message on the dispatch queue. */
export interface DispatchMessage {
  job_id: string;
}
