/**
 * What a label (an observed outcome) may be for a model, in one place for every route that takes
 * labels: feedback `actual` (src/monitoring/routes.ts) and deployment test sets
 * (src/deployments/routes.ts). A label is one of the model's classes, compared as text (so 1 and
 * "1" both name class 1; booleans only when the classes are "true"/"false"), or a finite number for
 * a regressor. A label the model could never predict is refused with a 422 naming it rather than
 * counted: a binary metric would silently read it as the negative class.
 */
import type { FieldIssue } from "../http/errors";
import type { OutputSpec } from "./manifest";

export interface LabelAt {
  /** Where the label is in the request, e.g. `feedback[3].actual` or `rows[7].label`. */
  path: string;
  value: unknown;
}

/**
 * The labels that are none of the classes of `outputs` (taken together: a label of any of them
 * passes) and, when one of them is a regressor, not a finite number. Empty when all fit.
 */
export function labelIssues(labels: LabelAt[], outputs: OutputSpec[]): FieldIssue[] {
  const classes = new Set<string>();
  let regressor = false;
  for (const out of outputs) {
    if (out.kind === "regressor") regressor = true;
    else for (const k of out.classes) classes.add(String(k));
  }
  const shown = [...classes].slice(0, 20).join(", ");
  const expected = regressor && classes.size ? `a number or one of the classes ${shown}` : regressor ? "a finite number (regression model)" : `one of the model's classes ${shown}`;
  const issues: FieldIssue[] = [];
  for (const { path, value } of labels) {
    const scalar = typeof value === "string" || typeof value === "number" || typeof value === "boolean";
    const ok = (regressor && typeof value === "number" && Number.isFinite(value)) || (scalar && classes.has(String(value)));
    if (!ok) issues.push({ path, message: `expected ${expected}; got ${JSON.stringify(value)}` });
  }
  return issues;
}
