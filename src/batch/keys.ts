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
/** The errors file of a job sits beside its output. */
export const errorsKeyOf = (outputKey: string) => `${outputKey}.errors.ndjson`;
