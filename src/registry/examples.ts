/**
 * Registration's check of a manifest's example rows: each row is validated and scored with the
 * uploaded artifact exactly as serving would score it (schema -> tensors -> session -> decoded
 * outputs), and every output must match what the trained model gave within EXAMPLE_TOLERANCE.
 *
 * One probe row built from the schema proves only that the artifact runs; examples with known
 * outputs prove that the manifest describes this artifact: a swapped class order relabels the
 * probabilities, permuted dense columns feed features to the wrong weights, and a corrupted (for
 * instance bit-flipped) artifact computes something else. Each shows as a differing output.
 */
import { ApiError } from "../http/errors";
import { rowValidator } from "../inference/features";
import { assertFinite, decodeOutputs, requestedOutputs } from "../inference/outputs";
import { getOrt } from "../inference/ort";
import type { LoadedModel } from "../inference/sessions";
import { buildFeeds } from "../inference/tensors";
import { EXAMPLE_TOLERANCE, type FeatureSchema, type ManifestExample } from "./manifest";

export async function checkExamples(model: LoadedModel, schema: FeatureSchema, examples: ManifestExample[]): Promise<void> {
  const resolved = rowValidator(schema).resolve(
    examples.map((e) => e.features),
    (i) => `manifest.examples[${i}].features`,
  );
  const ort = await getOrt();
  let decoded;
  try {
    const results = await model.run(buildFeeds(ort, schema, resolved), requestedOutputs(schema.output));
    decoded = decodeOutputs(schema.output, results, resolved.n, model.info.zipMapClasses);
    assertFinite(decoded, resolved.n);
  } catch (error) {
    if (error instanceof ApiError && error.code === "invalid_input") throw error;
    throw new ApiError("invalid_artifact", "model failed to score the manifest's example rows, or returned non-finite outputs for them");
  }
  const issues: { path: string; message: string }[] = [];
  examples.forEach((e, i) => {
    const p = decoded.predictions[i];
    const compare = (path: string, got: number | undefined, want: number) => {
      const diff = got === undefined ? Infinity : Math.abs(got - want);
      if (!(diff <= EXAMPLE_TOLERANCE)) issues.push({ path, message: `model gives ${got}, the manifest expects ${want} (difference ${diff.toExponential(2)} > ${EXAMPLE_TOLERANCE})` });
    };
    if ("value" in e.expected) compare(`manifest.examples[${i}].expected.value`, "value" in p ? p.value : undefined, e.expected.value);
    else for (const [cls, want] of Object.entries(e.expected.probabilities)) compare(`manifest.examples[${i}].expected.probabilities.${cls}`, "probabilities" in p ? p.probabilities[cls] : undefined, want);
  });
  if (issues.length) {
    throw new ApiError(
      "invalid_artifact",
      `the artifact does not reproduce ${issues.length} output(s) of the manifest's example rows: the artifact is not the trained model, or the manifest's class order or input columns do not match it`,
      issues.slice(0, 50),
    );
  }
}
