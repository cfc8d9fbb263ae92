/**
 * Per-model SLA configuration (the original design's SLAConfig) and the checks an evaluation
 * derives from a version's windows: threshold checks (latency p95/p99, server error rate, score
 * PSI, feature drift, live AUC and its degradation) and multiwindow burn-rate checks for the
 * availability and latency SLOs (Google SRE workbook: page when both the 1 h and 5 min burn rates
 * exceed 14.4, ticket when both the 6 h and 30 min rates exceed 6).
 *
 * A version is SLA-compliant at an evaluation when no threshold check fires; checks without data
 * (no traffic, too few labels) neither fire nor count against compliance.
 *
 * Small windows: the error-rate and latency-quantile thresholds fire only when the 5-minute
 * window is evidence of a breach, not merely an observed excess: the count of failed requests
 * (or of requests slower than the threshold) must be improbable, at level ALERT_ALPHA (exact
 * binomial tail), for a version exactly at the SLA. Two requests with one error are not a 50%
 * error rate; two hundred with twenty are. Evaluations run every minute, so at ALERT_ALPHA = 0.001
 * a version sitting exactly at its SLA alerts about once a day, and one below it far less often.
 */
import { z } from "zod";
import { binomialUpperTail } from "../stats/binomial";
import { DDSketch } from "../stats/sketch";
import { failures, round, type Aggregate } from "./aggregate";
import type { DriftReport } from "./drift";
import type { LivePerformance } from "./performance";

export const severitySchema = z.enum(["info", "warning", "critical"]);
export type Severity = z.infer<typeof severitySchema>;
export const SEVERITY_RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };

const fraction = z.number().gt(0).lt(1);

export const slaConfigSchema = z
  .object({
    p95_latency_ms: z.number().positive().optional(),
    p99_latency_ms: z.number().positive().optional(),
    max_error_rate: z.number().min(0).max(1).optional(),
    min_auc: z.number().min(0).max(1).optional(),
    max_auc_degradation: z.number().min(0).max(1).optional(),
    max_psi: z.number().positive().optional(),
    availability_slo: z.object({ target: fraction }).strict().optional(),
    latency_slo: z.object({ threshold_ms: z.number().positive(), target: fraction }).strict().optional(),
    /** Minimum labelled predictions before live AUC is judged. */
    min_labels: z.number().int().positive().default(50),
    /** Minutes after a notification during which the same alert firing again is not re-notified. */
    cooldown_minutes: z.number().int().min(0).max(10_080).default(15),
  })
  .strict();
export type SlaConfig = z.infer<typeof slaConfigSchema>;
export const DEFAULT_SLA: SlaConfig = slaConfigSchema.parse({});

/**
 * The rules an SLA config asks to evaluate (what evaluateChecks can emit under it). A firing
 * alert whose rule is configured but has no check at an evaluation had no data; one whose rule
 * is not configured any more resolves.
 */
export function configuredRules(sla: SlaConfig): Set<string> {
  const rules = new Set<string>(["feature_drift"]);
  if (sla.p95_latency_ms !== undefined) rules.add("latency_p95");
  if (sla.p99_latency_ms !== undefined) rules.add("latency_p99");
  if (sla.max_error_rate !== undefined) rules.add("error_rate");
  if (sla.max_psi !== undefined) rules.add("score_psi");
  if (sla.min_auc !== undefined) rules.add("live_auc");
  if (sla.max_auc_degradation !== undefined) rules.add("auc_degradation");
  for (const [slo, name] of [[sla.availability_slo, "availability"], [sla.latency_slo, "latency"]] as const) {
    if (slo) for (const speed of ["fast", "slow"]) rules.add(`${name}_burn_${speed}`);
  }
  return rules;
}

/** Level of the evidence threshold checks need on the 5-minute window (see the header). */
export const ALERT_ALPHA = 0.001;

export interface Check {
  rule: string;
  severity: Severity;
  firing: boolean;
  value: number | null;
  threshold: number | null;
  message: string;
  /** Threshold checks count for compliance; burn-rate and drift-detail checks do not. */
  sla: boolean;
}

export interface EvaluationInput {
  /** Aggregates over 5m, 30m, 1h, 6h windows. */
  windows: Record<"5m" | "30m" | "1h" | "6h", Aggregate>;
  drift: DriftReport | null;
  performance: LivePerformance | null;
}

function quantile(a: Aggregate, q: number): number | null {
  if (!a.latency || a.latency.count === 0) return null;
  return DDSketch.fromJSON(a.latency).quantile(q);
}

function errorRate(a: Aggregate): number | null {
  return a.requests ? failures(a).server / a.requests : null;
}

function slowRate(a: Aggregate, thresholdMs: number): number | null {
  if (!a.latency || a.latency.count === 0) return null;
  return DDSketch.fromJSON(a.latency).fractionAbove(thresholdMs);
}

export function burnRate(badFraction: number | null, target: number): number | null {
  return badFraction === null ? null : badFraction / (1 - target);
}

export function evaluateChecks(sla: SlaConfig, input: EvaluationInput): Check[] {
  const checks: Check[] = [];
  const w5 = input.windows["5m"];
  const push = (c: Omit<Check, "firing"> & { firing?: boolean }) => checks.push({ firing: false, ...c });
  const fmt = (v: number | null, d = 4) => (v === null ? "n/a" : String(round(v, d)));

  /** Fires when quantile q exceeds the threshold and the requests above it are more than a share 1 - q could give by chance. */
  const latencyCheck = (rule: string, q: number, threshold: number) => {
    const v = quantile(w5, q);
    if (v === null) return;
    const sketch = DDSketch.fromJSON(w5.latency!);
    const above = Math.round(sketch.fractionAbove(threshold) * sketch.count);
    const p = binomialUpperTail(above, sketch.count, 1 - q);
    const label = `p${Math.round(q * 100)}`;
    push({
      rule,
      severity: "warning",
      value: round(v),
      threshold,
      firing: v > threshold && p < ALERT_ALPHA,
      message: `${label} latency ${fmt(v)} ms (5m) vs SLA ${threshold} ms; ${above}/${sketch.count} requests above it (p = ${fmt(p, 3)})`,
      sla: true,
    });
  };
  if (sla.p95_latency_ms !== undefined) latencyCheck("latency_p95", 0.95, sla.p95_latency_ms);
  if (sla.p99_latency_ms !== undefined) latencyCheck("latency_p99", 0.99, sla.p99_latency_ms);
  if (sla.max_error_rate !== undefined) {
    const v = errorRate(w5);
    if (v !== null) {
      const errors = failures(w5).server;
      const p = binomialUpperTail(errors, w5.requests, sla.max_error_rate);
      push({
        rule: "error_rate",
        severity: "critical",
        value: round(v),
        threshold: sla.max_error_rate,
        firing: v > sla.max_error_rate && p < ALERT_ALPHA,
        message: `server error rate ${fmt(v)} (${errors}/${w5.requests}, 5m) vs SLA ${sla.max_error_rate} (p = ${fmt(p, 3)})`,
        sla: true,
      });
    }
  }
  if (sla.max_psi !== undefined && input.drift?.score?.psi != null) {
    const v = input.drift.score.psi;
    push({ rule: "score_psi", severity: "warning", value: v, threshold: sla.max_psi, firing: v > sla.max_psi, message: `prediction PSI ${fmt(v)} vs SLA ${sla.max_psi}`, sla: true });
  }
  if (input.drift && input.drift.n > 0) {
    const drifted = input.drift.drifted_features;
    push({ rule: "feature_drift", severity: "info", value: drifted.length, threshold: 0, firing: drifted.length > 0, message: drifted.length ? `feature drift: ${drifted.join(", ")}` : "no feature drift", sla: false });
  }
  const perf = input.performance;
  if (perf && perf.n >= sla.min_labels && perf.metrics.auc !== undefined) {
    const v = perf.metrics.auc;
    if (sla.min_auc !== undefined) push({ rule: "live_auc", severity: "critical", value: v, threshold: sla.min_auc, firing: v < sla.min_auc, message: `live AUC ${fmt(v)} on ${perf.n} labels vs SLA minimum ${sla.min_auc}`, sla: true });
    const d = perf.degradation.auc;
    if (sla.max_auc_degradation !== undefined && d) {
      push({ rule: "auc_degradation", severity: "warning", value: d.degradation, threshold: sla.max_auc_degradation, firing: d.degradation > sla.max_auc_degradation, message: `AUC degraded by ${fmt(d.degradation)} (registered ${d.registered}, live ${d.live}) vs SLA ${sla.max_auc_degradation}`, sla: true });
    }
  }
  const burn = (name: string, bad: (a: Aggregate) => number | null, target: number) => {
    const r = (k: keyof EvaluationInput["windows"]) => burnRate(bad(input.windows[k]), target);
    const [b1h, b5m, b6h, b30m] = [r("1h"), r("5m"), r("6h"), r("30m")];
    if (b1h !== null && b5m !== null) {
      push({ rule: `${name}_burn_fast`, severity: "critical", value: round(Math.min(b1h, b5m)), threshold: 14.4, firing: b1h > 14.4 && b5m > 14.4, message: `${name} error budget burning at ${fmt(b1h, 3)}x (1h) and ${fmt(b5m, 3)}x (5m); page threshold 14.4x`, sla: false });
    }
    if (b6h !== null && b30m !== null) {
      push({ rule: `${name}_burn_slow`, severity: "warning", value: round(Math.min(b6h, b30m)), threshold: 6, firing: b6h > 6 && b30m > 6, message: `${name} error budget burning at ${fmt(b6h, 3)}x (6h) and ${fmt(b30m, 3)}x (30m); ticket threshold 6x`, sla: false });
    }
  };
  if (sla.availability_slo) burn("availability", errorRate, sla.availability_slo.target);
  if (sla.latency_slo) {
    const { threshold_ms, target } = sla.latency_slo;
    burn("latency", (a) => slowRate(a, threshold_ms), target);
  }
  return checks;
}
