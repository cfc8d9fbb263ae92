/**
 * Where batch objects live in the BATCH bucket. Everything the system writes for itself is under
 * `_batch/`, which user output keys may not use, so a job cannot overwrite another job's parts.
 */
export const INTERNAL_PREFIX = "_batch/";

const pad = (part: number) => String(part).padStart(6, "0");
export const jobPrefix = (jobId: string) => `${INTERNAL_PREFIX}jobs/${jobId}/`;
export const outputPartKey = (jobId: string, part: number) => `${jobPrefix(jobId)}parts/${pad(part)}.out`;
export const errorsPartKey = (jobId: string, part: number) => `${jobPrefix(jobId)}errors/${pad(part)}.ndjson`;
export const uploadKey = (jobId: string, format: string) => `${INTERNAL_PREFIX}uploads/${jobId}.${format}`;
/** The errors file of a job sits beside its output (migrations/0009_batch_output_keys.sql repeats the suffix). */
export const ERRORS_SUFFIX = ".errors.ndjson";
export const errorsKeyOf = (outputKey: string) => `${outputKey}${ERRORS_SUFFIX}`;
/**
 * The output keys whose job would write `outputKey` or have it written over: the key itself, the
 * key its errors file takes, and the output whose errors file `outputKey` is.
 */
export function outputKeysTouching(outputKey: string): string[] {
  const keys = [outputKey, errorsKeyOf(outputKey)];
  if (outputKey.endsWith(ERRORS_SUFFIX)) keys.push(outputKey.slice(0, -ERRORS_SUFFIX.length));
  return keys;
}
/** Custom metadata on a job's output and errors objects naming the job that wrote them. */
export const JOB_METADATA = "batch_job";
