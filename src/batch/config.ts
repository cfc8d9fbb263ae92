/**
 * Batch limits from optional wrangler vars, with defaults. The input bounds are the ones the design
 * is built and tested for (1 GB, 1,000,000 rows); uploads through the Worker are bounded lower,
 * by the request-body limit of the Workers plan (100 MB on Free and Pro): larger files go to the
 * BATCH bucket directly (wrangler r2 object put, the S3 API) and are named by key.
 */
import { intVar } from "../http/limits";

export interface BatchConfig {
  maxInputBytes: number;
  maxRows: number;
  maxUploadBytes: number;
  /** A chunk closes at this many bytes even before its row count (bounds a consumer's memory). */
  chunkMaxBytes: number;
  /** Multipart piece size of the assembled output (>= 5 MiB, R2's minimum part size). */
  pieceBytes: number;
  /** First retry delay of a failing message; doubles per attempt, capped at 5 minutes. */
  retryDelaySeconds: number;
  /** How long an assembler holds its lease before another delivery may take over. */
  assemblyLeaseMs: number;
}

export const CHUNK_ROWS = { min: 100, max: 50_000, default: 1000 } as const;

function nonNegative(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return value !== undefined && value !== "" && Number.isFinite(n) && n >= 0 ? Math.floor(n) : fallback;
}

export function batchConfig(env: Env): BatchConfig {
  const vars = env as unknown as Record<string, string | undefined>;
  return {
    maxInputBytes: intVar(vars.BATCH_MAX_INPUT_BYTES, 1024 * 1024 * 1024),
    maxRows: intVar(vars.BATCH_MAX_ROWS, 1_000_000),
    maxUploadBytes: intVar(vars.BATCH_MAX_UPLOAD_BYTES, 100 * 1024 * 1024),
    chunkMaxBytes: intVar(vars.BATCH_CHUNK_MAX_BYTES, 8 * 1024 * 1024),
    pieceBytes: Math.max(intVar(vars.BATCH_PIECE_BYTES, 8 * 1024 * 1024), 5 * 1024 * 1024),
    retryDelaySeconds: nonNegative(vars.BATCH_RETRY_DELAY_SECONDS, 5),
    assemblyLeaseMs: intVar(vars.BATCH_ASSEMBLY_LEASE_MS, 10 * 60 * 1000),
  };
}
