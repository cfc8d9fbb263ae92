/**
 * Queue messages of the batch queue: references to work, never rows (a chunk is a byte range of the
 * input object), so every message is a few hundred bytes whatever the chunk size.
 */
export interface PlanMessage {
  kind: "plan";
  job: string;
}
export interface ChunkMessage {
  kind: "chunk";
  job: string;
  part: number;
  /** Byte range [start, end) of the input object, on record boundaries. */
  start: number;
  end: number;
  /** Row number (from 1) of the chunk's first row, and its row count. */
  first_row: number;
  rows: number;
}
export interface AssembleMessage {
  kind: "assemble";
  job: string;
}
export type BatchMessage = PlanMessage | ChunkMessage | AssembleMessage;

export const BATCH_QUEUE = "edge-ml-batch";
export const BATCH_DLQ = "edge-ml-batch-dlq";
