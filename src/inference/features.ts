/**
 * From request rows to validated feature values, per a version's feature schema.
 *
 * A zod object is built once per schema (cached by the schema object) and checks every field:
 * type, bounds, categories, unknown fields, and the missing-value policy. Missing means absent or
 * null; `impute` substitutes the training-time value, `nan` passes NaN to the model, `reject`
 * makes the field required. Nothing is ever silently zero. Errors name the row and field
 * (`instances[3].Age`).
 *
 * Rows are first offered to a plain-JavaScript check built from the same schema (`fastRow`): it
 * accepts a row only when every field is certainly valid (a subset of what zod accepts) and then
 * resolves it exactly as zod's output would be resolved. Anything else, every bad row included, goes
 * through zod, which alone decides and words the errors. workerd forbids code generation, so zod's
 * compiled object parser is unavailable there and its generic path costs several microseconds per
 * field; measured with `npm run bench:stages`.
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

/**
 * A check of one field that never accepts what zod would reject: finite numbers (safe integers for
 * "integer") within the bounds and float32's range, known categories, booleans; null or absent only
 * where the missing policy allows it. Returns the resolved value, or FAIL to hand the row to zod.
 */
const FAIL = Symbol("fail");
type FieldCheck = (value: unknown) => FeatureValue | typeof FAIL;

function fieldCheck(f: FeatureSpec, float32: boolean, fill: FeatureValue | undefined): FieldCheck {
  const optional = f.missing.policy !== "reject";
  let present: (v: unknown) => boolean;
  switch (f.type) {
    case "numeric":
    case "integer": {
      const lo = f.min ?? -Infinity;
      const hi = f.max ?? Infinity;
      const integer = f.type === "integer";
      present = (v) => typeof v === "number" && (integer ? Number.isSafeInteger(v) : Number.isFinite(v)) && v >= lo && v <= hi && (!float32 || Math.abs(v) <= FLOAT32_MAX);
      break;
    }
    case "categorical": {
      const allowed = new Set(f.categories);
      present = (v) => typeof v === "string" && allowed.has(v);
      break;
    }
    case "boolean":
      present = (v) => typeof v === "boolean";
      break;
  }
  return (v) => (v === undefined || v === null ? (optional ? (fill as FeatureValue) : FAIL) : present(v) ? (v as FeatureValue) : FAIL);
}

/** The resolved row when every field is certainly valid and no key is unknown; undefined: ask zod. */
function fastRow(row: unknown, names: string[], known: Set<string>, checks: FieldCheck[]): ResolvedRow | undefined {
  if (typeof row !== "object" || row === null || Array.isArray(row)) return undefined;
  const proto = Object.getPrototypeOf(row);
  if (proto !== Object.prototype && proto !== null) return undefined;
  for (const key in row) if (!known.has(key)) return undefined;
  const values = row as Record<string, unknown>;
  const out: ResolvedRow = new Array(names.length);
  for (let j = 0; j < names.length; j++) {
    const name = names[j];
    const value = checks[j](Object.prototype.hasOwnProperty.call(values, name) ? values[name] : undefined);
    if (value === FAIL) return undefined;
    out[j] = value;
  }
  return out;
}

export interface RowValidator {
  /** Validates and resolves rows; throws ApiError(invalid_input) listing every bad field. */
  resolve(rows: unknown[], pathOf: (i: number) => string, options?: { zodOnly?: boolean }): ResolvedRow[];
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
  const known = new Set(names);
  const checks = schema.features.map((f, j) => fieldCheck(f, float32.has(f.name), fill[j] as FeatureValue | undefined));

  return {
    resolve(rows, pathOf, options) {
      const out: ResolvedRow[] = new Array(rows.length);
      const issues: FieldIssue[] = [];
      const fast = options?.zodOnly !== true;
      for (let i = 0; i < rows.length; i++) {
        const quick = fast ? fastRow(rows[i], names, known, checks) : undefined;
        if (quick) {
          out[i] = quick;
          continue;
        }
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
