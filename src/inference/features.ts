/**
 * From request rows to validated feature values, per a version's feature schema.
 *
 * A zod object is built once per schema (cached by the schema object) and checks every field:
 * type, bounds, categories, unknown fields, and the missing-value policy. Missing means absent or
 * null; `impute` substitutes the training-time value, `nan` passes NaN to the model, `reject`
 * makes the field required. Nothing is ever silently zero. Errors name the row and field
 * (`instances[3].Age`).
 */
import { z } from "zod";
import { ApiError, type FieldIssue } from "../http/errors";
import { formatPath, type FeatureSchema, type FeatureSpec } from "../registry/manifest";

export type FeatureValue = number | string | boolean;
/** One row's values in the schema's feature order. */
export type ResolvedRow = FeatureValue[];

const MISSING = Symbol("missing");

/** The largest finite float32: a larger finite double would reach the model as +/-Infinity. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** Features whose values reach the model in a float32 tensor (every column of a dense input). */
function float32Features(schema: FeatureSchema): Set<string> {
  if (schema.input.kind === "dense") return new Set(schema.input.columns.map((c) => c.feature));
  return new Set(schema.input.tensors.filter((t) => t.dtype === "float32").map((t) => t.feature));
}

function fieldSchema(f: FeatureSpec, float32: boolean): z.ZodType {
  let base: z.ZodType;
  switch (f.type) {
    case "numeric":
    case "integer": {
      let n = z.number({ error: (iss) => (iss.input === undefined ? "required" : `expected a finite number, got ${describe(iss.input)}`) });
      if (f.type === "integer") n = n.int({ error: "expected an integer" });
      if (f.min !== undefined) n = n.min(f.min, { error: `must be >= ${f.min}` });
      if (f.max !== undefined) n = n.max(f.max, { error: `must be <= ${f.max}` });
      base = float32 ? n.refine((v) => Math.abs(v) <= FLOAT32_MAX, { error: (iss) => `${iss.input} overflows float32, the model's input type (largest magnitude ${FLOAT32_MAX})` }) : n;
      break;
    }
    case "categorical": {
      const allowed = new Set(f.categories);
      const shown = f.categories.slice(0, 20).join(", ") + (f.categories.length > 20 ? ", ..." : "");
      base = z
        .string({ error: (iss) => (iss.input === undefined ? "required" : `expected a string category, got ${describe(iss.input)}`) })
        .refine((v) => allowed.has(v), { error: (iss) => `unknown category ${JSON.stringify(iss.input)}; expected one of: ${shown}` });
      break;
    }
    case "boolean":
      base = z.boolean({ error: (iss) => (iss.input === undefined ? "required" : `expected true or false, got ${describe(iss.input)}`) });
      break;
  }
  if (f.missing.policy === "reject") return base;
  // null or absent -> MISSING marker, resolved by policy after validation.
  return base.nullish().transform((v) => (v === null || v === undefined ? MISSING : v));
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "number") return String(value); // NaN or +/-Infinity (1e999 parses as Infinity)
  if (typeof value === "string") return `string ${JSON.stringify(value.slice(0, 40))}`;
  return typeof value;
}

export interface RowValidator {
  /** Validates and resolves rows; throws ApiError(invalid_input) listing every bad field. */
  resolve(rows: unknown[], pathOf: (i: number) => string): ResolvedRow[];
}

const cache = new WeakMap<FeatureSchema, RowValidator>();

export function rowValidator(schema: FeatureSchema): RowValidator {
  let v = cache.get(schema);
  if (!v) {
    v = buildValidator(schema);
    cache.set(schema, v);
  }
  return v;
}

function buildValidator(schema: FeatureSchema): RowValidator {
  const shape: Record<string, z.ZodType> = {};
  const float32 = float32Features(schema);
  for (const f of schema.features) shape[f.name] = fieldSchema(f, float32.has(f.name));
  const object = z.strictObject(shape, { error: (iss) => (iss.code === "unrecognized_keys" ? undefined : "expected an object of feature values") });
  const fill = schema.features.map((f) => (f.missing.policy === "impute" ? f.missing.value : f.missing.policy === "nan" ? Number.NaN : undefined));
  const names = schema.features.map((f) => f.name);

  return {
    resolve(rows, pathOf) {
      const out: ResolvedRow[] = new Array(rows.length);
      const issues: FieldIssue[] = [];
      for (let i = 0; i < rows.length; i++) {
        const parsed = object.safeParse(rows[i]);
        if (!parsed.success) {
          for (const issue of parsed.error.issues) {
            if (issue.code === "unrecognized_keys") {
              for (const key of issue.keys) issues.push({ path: formatPath(pathOf(i), [key]), message: "unknown feature" });
            } else {
              issues.push({ path: formatPath(pathOf(i), issue.path), message: issue.message });
            }
          }
          if (issues.length >= 50) break;
          continue;
        }
        const data = parsed.data as Record<string, FeatureValue | typeof MISSING>;
        const row: ResolvedRow = new Array(names.length);
        for (let j = 0; j < names.length; j++) {
          const value = data[names[j]];
          row[j] = value === MISSING ? (fill[j] as FeatureValue) : (value as FeatureValue);
        }
        out[i] = row;
      }
      if (issues.length) {
        throw new ApiError("invalid_input", `${issues.length} invalid feature value(s); first: ${issues[0].path}: ${issues[0].message}`, issues);
      }
      return out;
    },
  };
}

/** A valid row built from the schema alone: impute values, else the first category, false, or the middle of the bounds. */
export function exampleRow(schema: FeatureSchema): Record<string, FeatureValue> {
  return Object.fromEntries(schema.features.map((f) => [f.name, exampleValue(f)]));
}

function exampleValue(f: FeatureSpec): FeatureValue {
  if (f.missing.policy === "impute") return f.missing.value;
  switch (f.type) {
    case "categorical":
      return f.categories[0];
    case "boolean":
      return false;
    default: {
      const lo = f.min ?? 0;
      const hi = f.max ?? lo;
      const mid = (lo + hi) / 2;
      return f.type === "integer" ? Math.round(mid) : mid;
    }
  }
}
