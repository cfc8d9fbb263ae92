/**
 * What a deployment is: strategies, states, the create-request schema (zod, the single source of
 * the request shape) and the stored configuration. Parsing here rejects malformed input with a
 * path per problem; checks that need the database (versions exist, are not archived, no other
 * open deployment) are in store.ts.
 */
import { z } from "zod";
import { aliasSchema, modelNameSchema, semverSchema } from "../registry/manifest";

export const STRATEGIES = ["direct", "blue_green", "canary", "ab_test", "shadow", "bandit"] as const;
export type Strategy = (typeof STRATEGIES)[number];

export const STATES = ["validating", "active", "promoting", "paused", "completed", "rolled_back", "failed"] as const;
export type State = (typeof STATES)[number];
/** States in which a deployment is open (at most one per model); the last three route traffic. */
export const OPEN_STATES: readonly State[] = ["validating", "active", "promoting", "paused"];
export const ROUTING_STATES: readonly State[] = ["active", "promoting", "paused"];

export interface Variant {
  name: string;
  version: string;
  /** Percent of traffic, 0..100 (may be fractional for bandits). */
  weight: number;
}

const variantName = z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, "variant name: lowercase letters, digits, '_' and '-', starting with a letter");
const reason = z.string().max(1000).optional();

export const validationConfigSchema = z
  .object({
    /** Lowest acceptable AUC on the labelled test set (binary classifiers). */
    min_auc: z.number().min(0).max(1).optional(),
    /** Without min_auc: the candidate may be at most this much below the stable version's AUC on the same set. */
    max_auc_drop: z.number().min(0).max(1).default(0.02),
    /** Highest acceptable RMSE (regressors). */
    max_rmse: z.number().positive().optional(),
    /** Mean single-row latency budget, ms. */
    latency_budget_ms: z.number().positive().default(50),
    /** Allowed range of regression outputs. */
    output_min: z.number().optional(),
    output_max: z.number().optional(),
  })
  .strict();
export type ValidationConfig = z.infer<typeof validationConfigSchema>;

export const canaryAnalysisSchema = z
  .object({
    /** Minutes each step must run before it can advance. */
    step_minutes: z.number().min(0).max(1440).default(1),
    /** Fewest canary requests in the window before any judgement. */
    min_requests: z.number().int().min(1).default(50),
    /** Canary error rate may exceed stable's by at most this (absolute). */
    max_error_rate_increase: z.number().min(0).max(1).default(0.01),
    /** Canary p95 latency may be at most ratio x stable p95 + slack_ms (timers have ~1 ms granularity). */
    max_p95_ratio: z.number().min(1).default(1.5),
    p95_slack_ms: z.number().min(0).default(2),
    /** Largest acceptable PSI of the canary's score distribution against stable's. */
    max_psi: z.number().min(0).default(0.2),
    /**
     * Chance that a canary no worse than stable is rolled back over the whole rollout: split
     * evenly (Bonferroni) over every check of every step, each check a one-sided test at that level.
     */
    alpha: z.number().gt(0).max(0.2).default(0.01),
  })
  .strict();
export type CanaryAnalysis = z.infer<typeof canaryAnalysisSchema>;

/** Canary traffic steps (percent): strictly increasing, ending at 100. Retraining releases use the same rule. */
export const canarySteps = z
  .array(z.number().gt(0).max(100))
  .min(1)
  .max(20)
  .refine((s) => s.every((v, i) => i === 0 || v > s[i - 1]), "steps must increase strictly")
  .refine((s) => s[s.length - 1] === 100, "the last step must be 100");

const common = {
  model: modelNameSchema,
  description: z.string().max(2000).default(""),
  reason,
  /** The version traffic returns to on rollback; default the champion alias's version. */
  baseline: semverSchema.optional(),
  /** Alias moved to the winning version on promote (default champion). */
  alias: aliasSchema.default("champion"),
  validation: validationConfigSchema.default(() => validationConfigSchema.parse({})),
  /** Salt for the sticky assignment hash; random by default. */
  salt: z.string().min(1).max(64).optional(),
};

export const createDeploymentSchema = z.discriminatedUnion("strategy", [
  z.object({ strategy: z.literal("direct"), version: semverSchema, ...common }).strict(),
  z.object({ strategy: z.literal("blue_green"), version: semverSchema, ...common }).strict(),
  z
    .object({
      strategy: z.literal("canary"),
      version: semverSchema,
      steps: canarySteps.default([5, 25, 50, 100]),
      analysis: canaryAnalysisSchema.default(() => canaryAnalysisSchema.parse({})),
      ...common,
    })
    .strict(),
  z
    .object({
      strategy: z.literal("ab_test"),
      variants: z.array(z.object({ name: variantName, version: semverSchema, weight: z.number().min(0).max(100) }).strict()).min(2).max(10),
      /** Metric that decides a winner when labels exist. */
      metric: z.enum(["auc", "conversion"]).default("auc"),
      ...common,
    })
    .strict(),
  z
    .object({
      strategy: z.literal("shadow"),
      version: semverSchema,
      /** Percent of requests also scored by the shadow version. */
      fraction: z.number().gt(0).max(100).default(100),
      ...common,
    })
    .strict(),
  z
    .object({
      strategy: z.literal("bandit"),
      variants: z.array(z.object({ name: variantName, version: semverSchema }).strict()).min(2).max(10),
      /** Least share of traffic every variant keeps (0..1/k). */
      floor: z.number().min(0).max(0.5).default(0.05),
      /** correct: label matches the prediction (binary: score >= 0.5); conversion: the outcome is positive. */
      reward: z.enum(["correct", "conversion"]).default("correct"),
      ...common,
    })
    .strict(),
]);
export type CreateDeployment = z.infer<typeof createDeploymentSchema>;

/** Strategy-specific settings kept in `deployments.config`. */
export interface DeploymentConfig {
  alias: string;
  validation: ValidationConfig;
  /** The version being released (all but ab_test / bandit). */
  candidate?: string;
  steps?: number[];
  step?: number;
  analysis?: CanaryAnalysis;
  metric?: "auc" | "conversion";
  fraction?: number;
  floor?: number;
  reward?: "correct" | "conversion";
  /** Bandit posteriors as of the last cron update. */
  arms?: Record<string, { successes: number; failures: number }>;
  /** The last analysis the cron made (canary), for the state endpoint. */
  lastAnalysis?: unknown;
  /** Stable's metrics from the last canary window, the yardstick while the canary holds 100%. */
  baselineSnapshot?: { error_rate: number; p95_ms: number | null };
  /** A/B ranges after an in-place weight change (assignment.ts); absent: cumulative ranges. */
  segments?: [number, number][];
  /** A/B weight periods, oldest first: each from `from` (epoch ms; 0 = the start) until the next. */
  periods?: { from: number; weights: Record<string, number> }[];
  /** Version promoted (completed deployments). */
  promoted?: string;
}

export const reasonBodySchema = z.object({ reason }).strict();
/** An A/B weight change in place: every variant once, weights summing to 100. */
export const weightsBodySchema = z
  .object({
    variants: z.array(z.object({ name: variantName, weight: z.number().min(0).max(100) }).strict()).min(2).max(10),
    reason,
  })
  .strict();
export const promoteBodySchema = z.object({ reason, variant: variantName.optional() }).strict();

export const validateBodySchema = z
  .object({
    /** A labelled (or unlabelled) test set; without it the model's stored test set is used. */
    test_set: z
      .object({
        rows: z
          .array(z.object({ features: z.record(z.string(), z.unknown()), label: z.union([z.number(), z.string(), z.boolean()]).optional() }).strict())
          .min(1)
          .max(20_000),
      })
      .optional(),
    validation: validationConfigSchema.partial().optional(),
    reason,
  })
  .strict();

export const testSetSchema = z
  .object({
    rows: z
      .array(z.object({ features: z.record(z.string(), z.unknown()), label: z.union([z.number(), z.string(), z.boolean()]).optional() }).passthrough())
      .min(1)
      .max(20_000),
  })
  .passthrough();
export type TestSet = { rows: { features: Record<string, unknown>; label?: number | string | boolean }[] };
