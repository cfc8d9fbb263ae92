/**
 * What a model version declares about itself: the registration manifest, the feature schema and
 * how the model's input tensors are built from features. These zod schemas are the single source of
 * these shapes (validation at registration, TypeScript types, API docs in the README).
 *
 * Feature schema in brief:
 * - features: ordered; each has a type (numeric | integer | categorical | boolean), bounds or
 *   categories, and a missing-value policy: `reject` (required), `impute` (a fixed value chosen at
 *   training time) or `nan` (numeric only: the model receives NaN and handles it, as tree ensembles
 *   do). A missing value is never silently turned into 0.
 * - input: `dense` (one 2-D float tensor; `columns` list the tensor's columns in order, categorical
 *   features one-hot as one column per category) or `per_feature` (one [N,1] tensor per feature, as
 *   column-wise exported pipelines expect; dtype float32 | int64 | string | bool).
 * - output: `classifier` (probability output name, optional label output, class labels in column
 *   order, the positive class whose probability is "the score") or `regressor`.
 */
import { z } from "zod";

const NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$/;
export const modelNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "model name: lowercase letters, digits, '_' and '-', starting with a letter or digit, at most 63 characters");
export const semverSchema = z
  .string()
  .regex(/^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$/, "version must be semantic MAJOR.MINOR.PATCH, e.g. 1.2.0");
export const aliasSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,31}$/, "alias: lowercase letters, digits, '_' and '-', starting with a letter");

const missingSchema = z.discriminatedUnion("policy", [
  z.object({ policy: z.literal("reject") }),
  z.object({ policy: z.literal("impute"), value: z.union([z.number(), z.string(), z.boolean()]) }),
  z.object({ policy: z.literal("nan") }),
]);

const bounded = {
  min: z.number().optional(),
  max: z.number().optional(),
};

/**
 * `monitorOnly`: a column the model does not take but users segment and watch by (region, channel,
 * a raw field before encoding). It is validated and accepted with predictions like any feature,
 * never fed to the model (no input column or tensor may use it), and monitored for drift.
 */
const monitorOnly = { monitorOnly: z.boolean().optional() };

/**
 * A feature the worker fetches from the feature store when a prediction names an entity id
 * (src/features/): its group, the store's feature name (default: this feature's name) and version
 * (default: the current one). Registration checks it exists with a compatible type.
 */
export const storeRefSchema = z
  .object({
    group: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, "group: lowercase letters, digits and '_'"),
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/).optional(),
    version: z.number().int().min(1).optional(),
  })
  .strict();
export type StoreRef = z.infer<typeof storeRefSchema>;
const store = { store: storeRefSchema.optional() };

export const featureSpecSchema = z.discriminatedUnion("type", [
  z.object({ name: z.string().regex(NAME), type: z.literal("numeric"), ...bounded, missing: missingSchema, ...monitorOnly, ...store }).strict(),
  z.object({ name: z.string().regex(NAME), type: z.literal("integer"), ...bounded, missing: missingSchema, ...monitorOnly, ...store }).strict(),
  z
    .object({
      name: z.string().regex(NAME),
      type: z.literal("categorical"),
      categories: z.array(z.string().min(1)).min(1).max(1000),
      missing: missingSchema,
      ...monitorOnly,
      ...store,
    })
    .strict(),
  z.object({ name: z.string().regex(NAME), type: z.literal("boolean"), missing: missingSchema, ...monitorOnly, ...store }).strict(),
]);
export type FeatureSpec = z.infer<typeof featureSpecSchema>;

const denseInputSchema = z
  .object({
    kind: z.literal("dense"),
    name: z.string().min(1),
    dtype: z.literal("float32").default("float32"),
    columns: z
      .array(z.object({ feature: z.string(), oneHot: z.string().optional() }).strict())
      .min(1)
      .max(10_000),
  })
  .strict();

const perFeatureInputSchema = z
  .object({
    kind: z.literal("per_feature"),
    tensors: z
      .array(
        z
          .object({ feature: z.string(), name: z.string().min(1), dtype: z.enum(["float32", "int64", "string", "bool"]) })
          .strict(),
      )
      .min(1),
  })
  .strict();

const classLabel = z.union([z.number().int(), z.string().min(1)]);

export const outputSpecSchema = z.discriminatedUnion("kind", [
  z
    .object({
      kind: z.literal("classifier"),
      probabilities: z.string().min(1),
      label: z.string().min(1).optional(),
      classes: z.array(classLabel).min(2).max(1000),
      positiveClass: classLabel.optional(),
    })
    .strict(),
  z.object({ kind: z.literal("regressor"), value: z.string().min(1) }).strict(),
]);
export type OutputSpec = z.infer<typeof outputSpecSchema>;

export const featureSchemaSchema = z
  .object({
    features: z.array(featureSpecSchema).min(1).max(2000),
    input: z.discriminatedUnion("kind", [denseInputSchema, perFeatureInputSchema]),
    output: outputSpecSchema,
  })
  .strict()
  .superRefine((schema, ctx) => {
    const byName = new Map<string, FeatureSpec>();
    schema.features.forEach((f, i) => {
      if (byName.has(f.name)) ctx.addIssue({ code: "custom", path: ["features", i, "name"], message: `duplicate feature '${f.name}'` });
      byName.set(f.name, f);
      checkFeature(f, ["features", i], ctx);
    });
    const used = new Set<string>();
    if (schema.input.kind === "dense") {
      schema.input.columns.forEach((col, i) => {
        const f = byName.get(col.feature);
        const path = ["input", "columns", i];
        if (!f) return ctx.addIssue({ code: "custom", path, message: `column refers to unknown feature '${col.feature}'` });
        used.add(f.name);
        if (f.type === "categorical") {
          if (col.oneHot === undefined) ctx.addIssue({ code: "custom", path, message: `categorical feature '${f.name}' needs "oneHot": <category> in a dense input` });
          else if (!f.categories.includes(col.oneHot)) ctx.addIssue({ code: "custom", path, message: `'${col.oneHot}' is not a category of '${f.name}'` });
        } else if (col.oneHot !== undefined) {
          ctx.addIssue({ code: "custom", path, message: `"oneHot" only applies to categorical features; '${f.name}' is ${f.type}` });
        }
      });
    } else {
      const names = new Set<string>();
      schema.input.tensors.forEach((t, i) => {
        const f = byName.get(t.feature);
        const path = ["input", "tensors", i];
        if (names.has(t.name)) ctx.addIssue({ code: "custom", path, message: `duplicate input tensor '${t.name}'` });
        names.add(t.name);
        if (!f) return ctx.addIssue({ code: "custom", path, message: `tensor refers to unknown feature '${t.feature}'` });
        used.add(f.name);
        const ok =
          (f.type === "categorical" && t.dtype === "string") ||
          (f.type === "boolean" && (t.dtype === "bool" || t.dtype === "float32" || t.dtype === "int64")) ||
          ((f.type === "numeric" || f.type === "integer") && (t.dtype === "float32" || (t.dtype === "int64" && f.type === "integer")));
        if (!ok) ctx.addIssue({ code: "custom", path, message: `dtype ${t.dtype} cannot carry ${f.type} feature '${f.name}'` });
        if (t.dtype !== "float32" && f.missing.policy === "nan") ctx.addIssue({ code: "custom", path, message: `missing policy "nan" needs a float32 tensor for '${f.name}'` });
      });
    }
    schema.features.forEach((f, i) => {
      if (f.monitorOnly && used.has(f.name)) ctx.addIssue({ code: "custom", path: ["features", i, "monitorOnly"], message: `feature '${f.name}' is monitorOnly but the input uses it` });
      if (!f.monitorOnly && !used.has(f.name)) ctx.addIssue({ code: "custom", path: ["features", i], message: `feature '${f.name}' is not used by the input (declare "monitorOnly": true to accept and monitor it without feeding it to the model)` });
    });
    if (schema.output.kind === "classifier") {
      const { classes, positiveClass } = schema.output;
      if (new Set(classes.map(String)).size !== classes.length) ctx.addIssue({ code: "custom", path: ["output", "classes"], message: "duplicate class labels" });
      if (positiveClass !== undefined && !classes.some((c) => c === positiveClass)) {
        ctx.addIssue({ code: "custom", path: ["output", "positiveClass"], message: `positiveClass ${JSON.stringify(positiveClass)} is not one of classes` });
      }
    }
  });
export type FeatureSchema = z.infer<typeof featureSchemaSchema>;

function checkFeature(f: FeatureSpec, path: (string | number)[], ctx: z.RefinementCtx) {
  if ((f.type === "numeric" || f.type === "integer") && f.min !== undefined && f.max !== undefined && f.min > f.max) {
    ctx.addIssue({ code: "custom", path: [...path, "min"], message: `min ${f.min} is greater than max ${f.max}` });
  }
  const m = f.missing;
  if (m.policy === "nan" && f.type !== "numeric" && f.type !== "integer") {
    ctx.addIssue({ code: "custom", path: [...path, "missing"], message: `policy "nan" only applies to numeric features` });
  }
  if (m.policy !== "impute") return;
  const v = m.value;
  const bad =
    (f.type === "categorical" && (typeof v !== "string" || !f.categories.includes(v))) ||
    (f.type === "boolean" && typeof v !== "boolean") ||
    ((f.type === "numeric" || f.type === "integer") &&
      (typeof v !== "number" ||
        !Number.isFinite(v) ||
        (f.type === "integer" && !Number.isInteger(v)) ||
        (f.min !== undefined && v < f.min) ||
        (f.max !== undefined && v > f.max)));
  if (bad) ctx.addIssue({ code: "custom", path: [...path, "missing", "value"], message: `impute value ${JSON.stringify(v)} is not a valid ${f.type} value for '${f.name}'` });
}

const histogramSchema = z.object({
  edges: z.array(z.number()).min(2),
  counts: z.array(z.number().nonnegative()),
  missing: z.number().nonnegative().optional(),
  sample: z.array(z.number()).max(5000).optional(),
});

/** Training-time distributions, kept for drift monitoring. */
export const referenceSchema = z.object({
  features: z.record(
    z.string(),
    z.union([
      histogramSchema.extend({ type: z.literal("numeric") }),
      z.object({ type: z.literal("categorical"), counts: z.record(z.string(), z.number().nonnegative()), missing: z.number().nonnegative().optional() }),
    ]),
  ),
  score: histogramSchema,
});
export type Reference = z.infer<typeof referenceSchema>;

export const taskSchema = z.enum(["binary_classification", "multiclass_classification", "regression"]);
export const environmentSchema = z.enum(["development", "staging", "production"]);

/**
 * An example row with the output the trained model gave it (written by the training side, e.g. the
 * CLI from its training data). Registration scores every example with the uploaded artifact under
 * the declared schema and refuses the version if any output differs by more than
 * EXAMPLE_TOLERANCE: a swapped class order, permuted dense columns or a corrupted artifact all
 * change the outputs of some row, though a single probe row built from the schema may not notice.
 */
export const manifestExampleSchema = z
  .object({
    features: z.record(z.string(), z.unknown()),
    expected: z.union([
      z.object({ value: z.number().refine(Number.isFinite, "expected value must be finite") }).strict(),
      z.object({ probabilities: z.record(z.string(), z.number().min(0).max(1)) }).strict(),
    ]),
  })
  .strict();
export type ManifestExample = z.infer<typeof manifestExampleSchema>;
export const EXAMPLE_TOLERANCE = 1e-5;

/** The JSON part of a registration request (the ONNX artifact travels beside it). */
/** Registered metrics whose range is known: a value outside it is a typo that would mislead degradation checks and reports. */
const UNIT_METRICS = ["auc", "roc_auc", "pr_auc", "average_precision", "accuracy", "balanced_accuracy", "precision", "recall", "f1", "brier", "ks", "approval_rate"];
const NON_NEGATIVE_METRICS = ["rmse", "mae", "mse", "log_loss", "logloss"];

export const manifestSchema = z
  .object({
    name: modelNameSchema,
    version: semverSchema,
    task: taskSchema,
    description: z.string().max(2000).default(""),
    environment: environmentSchema.default("development"),
    metrics: z
      .record(z.string().regex(/^[a-z][a-z0-9_]{0,63}$/), z.number().refine(Number.isFinite, "metric must be finite"))
      .superRefine((metrics, ctx) => {
        for (const [name, value] of Object.entries(metrics)) {
          if (UNIT_METRICS.includes(name) && !(value >= 0 && value <= 1)) ctx.addIssue({ code: "custom", path: [name], message: `${name} is between 0 and 1, not ${value}` });
          if (NON_NEGATIVE_METRICS.includes(name) && !(value >= 0)) ctx.addIssue({ code: "custom", path: [name], message: `${name} is never negative, not ${value}` });
        }
      })
      .default({}),
    featureSchema: featureSchemaSchema,
    reference: referenceSchema.optional(),
    /** Hex SHA-256 of the artifact as the uploader computed it; a different upload is refused. */
    artifactSha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, "artifactSha256 must be 64 hex digits")
      .transform((h) => h.toLowerCase())
      .optional(),
    /** Rows with the trained model's outputs, checked at registration (see manifestExampleSchema). */
    examples: z.array(manifestExampleSchema).min(1).max(100).optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    const out = m.featureSchema.output;
    m.examples?.forEach((e, i) => {
      if (("value" in e.expected) !== (out.kind === "regressor")) {
        ctx.addIssue({ code: "custom", path: ["examples", i, "expected"], message: out.kind === "regressor" ? 'a regressor\'s example expects { "value": number }' : 'a classifier\'s example expects { "probabilities": { <class>: p } }' });
      } else if ("probabilities" in e.expected && out.kind === "classifier") {
        const keys = Object.keys(e.expected.probabilities).sort();
        const classes = out.classes.map(String).sort();
        if (keys.length !== classes.length || keys.some((k, j) => k !== classes[j])) {
          ctx.addIssue({ code: "custom", path: ["examples", i, "expected", "probabilities"], message: `must give one probability per class (${out.classes.join(", ")})` });
        }
      }
    });
    if ((m.task === "regression") !== (out.kind === "regressor")) {
      ctx.addIssue({ code: "custom", path: ["featureSchema", "output", "kind"], message: `task ${m.task} does not match output kind ${out.kind}` });
    }
    if (m.task === "binary_classification" && out.kind === "classifier" && out.classes.length !== 2) {
      ctx.addIssue({ code: "custom", path: ["featureSchema", "output", "classes"], message: "binary_classification needs exactly 2 classes" });
    }
    if (m.reference) checkReference(m.reference, m.featureSchema, ctx);
  });

/**
 * A reference must describe the schema it is registered with, in the shape drift monitoring reads:
 * histogram edges increasing, one count per bin, samples sorted ascending, numeric
 * references for numeric features and categorical ones (whose categories the feature has) for
 * categorical and boolean features. Otherwise drift would be computed on nonsense (reversed edges
 * put every value in one bin and report PSI 7 for an unshifted feature).
 * Edges may repeat (deciles of tied training values do, and scripts/lib/manifest.ts writes them so):
 * a bin between equal edges can hold no value under the binning rule (src/stats/drift.ts), so it
 * must count 0; any edge below the one before it is an error.
 */
function checkReference(ref: Reference, schema: FeatureSchema, ctx: z.RefinementCtx) {
  const byName = new Map(schema.features.map((f) => [f.name, f]));
  const histogram = (h: z.infer<typeof histogramSchema>, path: (string | number)[]) => {
    const bad = h.edges.findIndex((e, i) => i > 0 && !(e >= h.edges[i - 1]));
    if (bad > 0) ctx.addIssue({ code: "custom", path: [...path, "edges", bad], message: `edges must increase; ${h.edges[bad]} follows ${h.edges[bad - 1]}` });
    if (h.edges[h.edges.length - 1] === h.edges[0]) ctx.addIssue({ code: "custom", path: [...path, "edges"], message: "edges must span a range (first and last edge are equal)" });
    if (h.counts.length !== h.edges.length - 1) ctx.addIssue({ code: "custom", path: [...path, "counts"], message: `${h.edges.length} edges make ${h.edges.length - 1} bins, but there are ${h.counts.length} counts` });
    else if (bad < 0) {
      const empty = h.counts.findIndex((c, i) => c > 0 && h.edges[i + 1] === h.edges[i] && i > 0 && i < h.counts.length - 1); // the end bins also take out-of-range values
      if (empty >= 0) ctx.addIssue({ code: "custom", path: [...path, "counts", empty], message: `bin ${empty} lies between equal edges (${h.edges[empty]}), so no value falls in it; its count must be 0` });
    }
    const unsorted = h.sample ? h.sample.findIndex((x, i) => i > 0 && x < h.sample![i - 1]) : -1;
    if (unsorted > 0) ctx.addIssue({ code: "custom", path: [...path, "sample", unsorted], message: "sample must be sorted ascending" });
  };
  for (const [name, r] of Object.entries(ref.features)) {
    const path = ["reference", "features", name];
    const f = byName.get(name);
    if (!f) {
      ctx.addIssue({ code: "custom", path, message: `reference for unknown feature '${name}'` });
      continue;
    }
    const numeric = f.type === "numeric" || f.type === "integer";
    if (r.type === "numeric") {
      if (!numeric) ctx.addIssue({ code: "custom", path: [...path, "type"], message: `'${name}' is ${f.type}; its reference must be categorical` });
      histogram(r, path);
    } else {
      if (numeric) ctx.addIssue({ code: "custom", path: [...path, "type"], message: `'${name}' is ${f.type}; its reference must be numeric` });
      const allowed = f.type === "categorical" ? new Set(f.categories) : f.type === "boolean" ? new Set(["true", "false"]) : null;
      if (allowed) {
        const unknown = Object.keys(r.counts).filter((k) => !allowed.has(k));
        if (unknown.length) ctx.addIssue({ code: "custom", path: [...path, "counts"], message: `categories not in the schema of '${name}': ${unknown.slice(0, 10).map((k) => JSON.stringify(k)).join(", ")}` });
      }
    }
  }
  histogram(ref.score, ["reference", "score"]);
}
export type Manifest = z.infer<typeof manifestSchema>;

/** Turns zod issues into the API's field issues (`featureSchema.features[2].min`). */
export function zodIssues(error: z.ZodError, prefix = ""): { path: string; message: string }[] {
  return error.issues.slice(0, 50).map((issue) => ({ path: formatPath(prefix, issue.path), message: issue.message }));
}

export function formatPath(prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix;
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || "(root)";
}
