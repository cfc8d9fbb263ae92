/**
 * From request rows to validated feature values, per a version's feature schema: `Resolved`, one
 * column per feature (numbers, or category indexes) with a mask of the values each row left out.
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

/**
 * Validated rows as columns, one per schema feature in schema order: what the input tensors are
 * built from (tensors.ts) and what monitoring folds (src/monitoring/collector.ts), so neither reads
 * the request's row objects again.
 */
export interface Resolved {
  /** Rows. */
  n: number;
  /**
   * Per feature: numeric and integer features a Float64Array of values; categorical and boolean
   * features an Int32Array of indexes into `levelsOf(feature)` (boolean: 0 false, 1 true). A
   * missing value holds what its policy resolved it to: the impute value, or NaN (index -1) under
   * "nan".
   */
  columns: (Float64Array | Int32Array)[];
  /** Per feature: 1 at each row that left the value out (absent or null), whatever the policy filled in; null when no row did. */
  missing: (Uint8Array | null)[];
}

/** The values a categorical or boolean column's indexes refer to (a category's index is its first position in `categories`). */
export function levelsOf(f: FeatureSpec): string[] {
  return f.type === "categorical" ? f.categories : f.type === "boolean" ? BOOLEAN_LEVELS : [];
}
const BOOLEAN_LEVELS = ["false", "true"];

/** Whether a feature's column holds level indexes (categorical, boolean) rather than numbers. */
export const isLevelColumn = (f: FeatureSpec) => f.type === "categorical" || f.type === "boolean";

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
 * where the missing policy allows it. It writes the resolved value into the feature's column at the
 * row and says how: OK, FILLED (missing, filled by the policy), or FAIL (hand the row to zod).
 */
const OK = 0;
const FILLED = 1;
const FAIL = 2;
type FieldCheck = (value: unknown, column: Float64Array | Int32Array, row: number) => number;

/** A level column's index of each level (the first position of a repeated category). */
function levelIndex(f: FeatureSpec): Map<string, number> {
  const index = new Map<string, number>();
  levelsOf(f).forEach((c, i) => {
    if (!index.has(c)) index.set(c, i);
  });
  return index;
}

/** What the missing policy writes into the column: the impute value (a level index, through `index`, for level columns), NaN (-1) under "nan". */
function fillOf(f: FeatureSpec, index: Map<string, number> | null): number {
  if (f.missing.policy !== "impute") return index ? -1 : Number.NaN;
  const v = f.missing.value;
  if (f.type === "boolean") return v === true ? 1 : 0;
  if (index) return index.get(v as string) ?? -1;
  return v as number;
}

/** `index`: the feature's `levelIndex` for level columns, else null; `fill`: its `fillOf`. */
function fieldCheck(f: FeatureSpec, float32: boolean, index: Map<string, number> | null, fill: number): FieldCheck {
  const optional = f.missing.policy !== "reject";
  const absent = (column: Float64Array | Int32Array, row: number) => {
    if (!optional) return FAIL;
    column[row] = fill;
    return FILLED;
  };
  switch (f.type) {
    case "numeric":
    case "integer": {
      const lo = f.min ?? -Infinity;
      const hi = f.max ?? Infinity;
      const integer = f.type === "integer";
      return (v, column, row) => {
        if (v === undefined || v === null) return absent(column, row);
        if (typeof v !== "number" || !(integer ? Number.isSafeInteger(v) : Number.isFinite(v)) || !(v >= lo && v <= hi) || (float32 && Math.abs(v) > FLOAT32_MAX)) return FAIL;
        column[row] = v;
        return OK;
      };
    }
    case "categorical": {
      const levels = index!;
      return (v, column, row) => {
        if (v === undefined || v === null) return absent(column, row);
        const k = typeof v === "string" ? levels.get(v) : undefined;
        if (k === undefined) return FAIL;
        column[row] = k;
        return OK;
      };
    }
    case "boolean":
      return (v, column, row) => {
        if (v === undefined || v === null) return absent(column, row);
        if (typeof v !== "boolean") return FAIL;
        column[row] = v ? 1 : 0;
        return OK;
      };
  }
}

/** Writes row i when every field is certainly valid and no key is unknown (true); false: ask zod. */
function fastRow(row: unknown, i: number, names: string[], known: Set<string>, checks: FieldCheck[], out: Resolved): boolean {
  if (typeof row !== "object" || row === null || Array.isArray(row)) return false;
  const proto = Object.getPrototypeOf(row);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key in row) if (!known.has(key)) return false;
  const values = row as Record<string, unknown>;
  for (let j = 0; j < names.length; j++) {
    const name = names[j];
    const how = checks[j](Object.prototype.hasOwnProperty.call(values, name) ? values[name] : undefined, out.columns[j], i);
    if (how === OK) continue;
    if (how === FAIL) return false;
    (out.missing[j] ??= new Uint8Array(out.n))[i] = 1;
  }
  return true;
}

export interface RowValidator {
  /** Validates and resolves rows into columns; throws ApiError(invalid_input) listing every bad field. */
  resolve(rows: unknown[], pathOf: (i: number) => string, options?: { zodOnly?: boolean }): Resolved;
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
  const features = schema.features;
  const names = features.map((f) => f.name);
  const known = new Set(names);
  const levelColumn = features.map(isLevelColumn);
  const indexes = features.map((f) => (isLevelColumn(f) ? levelIndex(f) : null));
  const fills = features.map((f, j) => fillOf(f, indexes[j]));
  const checks = features.map((f, j) => fieldCheck(f, float32.has(f.name), indexes[j], fills[j]));

  return {
    resolve(rows, pathOf, options) {
      const n = rows.length;
      const out: Resolved = { n, columns: levelColumn.map((level) => (level ? new Int32Array(n) : new Float64Array(n))), missing: features.map(() => null) };
      const issues: FieldIssue[] = [];
      const fast = options?.zodOnly !== true;
      for (let i = 0; i < n; i++) {
        if (fast && fastRow(rows[i], i, names, known, checks, out)) continue;
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
        for (let j = 0; j < names.length; j++) {
          const value = data[names[j]];
          const column = out.columns[j];
          if (value === MISSING) {
            column[i] = fills[j];
            (out.missing[j] ??= new Uint8Array(n))[i] = 1;
            continue;
          }
          if (out.missing[j]) out.missing[j]![i] = 0; // a fast-path attempt may have marked it
          column[i] = typeof value === "boolean" ? (value ? 1 : 0) : levelColumn[j] ? indexes[j]!.get(value as string)! : (value as number);
        }
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
