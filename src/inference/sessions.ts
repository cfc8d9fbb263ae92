/**
 * Per-isolate cache of onnxruntime-web sessions, keyed by artifact sha256.
 *
 * - Single flight without sharing a promise across requests: the cache holds created sessions only,
 *   never a promise of one, because a creation promise wraps the creating request's R2 read, and a
 *   second request awaiting it can fail with "Cannot perform I/O on behalf of a different request"
 *   (or hang if the first request is cancelled). A request that finds a creation in flight waits on
 *   its own timer (CREATION_POLL_MS) and looks again, so an isolate still creates each session
 *   once; if the creation fails, or is still unfinished CREATION_WAIT_MS after it began (its
 *   request was cancelled), the waiting request loads the artifact and creates the session itself.
 * - Bounded: least-recently-used sessions are released when the artifacts held exceed
 *   `maxBytes` (artifact size is the proxy for session memory; the Worker has 128 MB in all).
 *   A session being run is released only after its runs finish.
 * - A failed creation is not cached; the next request tries again.
 *
 * Runs on one session are serialised: onnxruntime-web's single-threaded WASM backend executes one
 * run at a time anyway, and this keeps interleaved async runs from sharing its I/O buffers.
 */
import type * as Ort from "onnxruntime-web";
import { prepareForWeb, type ModelInfo } from "./onnx-model";
import { getOrt } from "./ort";

export interface LoadedModel {
  sha256: string;
  sizeBytes: number;
  info: ModelInfo;
  inputNames: readonly string[];
  outputNames: readonly string[];
  inputMetadata: readonly Ort.InferenceSession.ValueMetadata[];
  outputMetadata: readonly Ort.InferenceSession.ValueMetadata[];
  /** Runs the session; runs on one session are queued one after another. */
  run(feeds: Record<string, Ort.Tensor>, outputs?: readonly string[]): Promise<Ort.InferenceSession.OnnxValueMapType>;
}

interface Entry {
  model: LoadedModel;
  sizeBytes: number;
  release: () => Promise<void>;
}

/** How often a request waiting for another request's session creation looks again. */
export const CREATION_POLL_MS = 5;
/** How long after a creation began a waiting request stops waiting and creates the session itself. */
export const CREATION_WAIT_MS = 30_000;

export interface SessionCacheStats {
  created: number;
  hits: number;
  evicted: number;
  entries: number;
  bytes: number;
}

/** Creates a session from ONNX bytes (ZipMap stripped), outside any cache. */
export async function createLoadedModel(sha256: string, bytes: Uint8Array): Promise<{ model: LoadedModel; release: () => Promise<void> }> {
  const ort = await getOrt();
  const prepared = prepareForWeb(bytes);
  const session = await ort.InferenceSession.create(prepared.bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  let queue: Promise<unknown> = Promise.resolve();
  let released = false;
  const model: LoadedModel = {
    sha256,
    sizeBytes: bytes.byteLength,
    info: prepared.info,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    inputMetadata: session.inputMetadata,
    outputMetadata: session.outputMetadata,
    run(feeds, outputs) {
      const result = queue.then(() => {
        if (released) throw new Error(`session ${sha256} was released`);
        return outputs ? session.run(feeds, outputs as string[]) : session.run(feeds);
      });
      queue = result.catch(() => undefined);
      return result;
    },
  };
  const release = async () => {
    await queue;
    released = true;
    await session.release();
  };
  return { model, release };
}

export class SessionCache {
  private readonly entries = new Map<string, Entry>();
  /** When some request began creating an artifact's session (a time, never a shared promise). */
  private readonly creating = new Map<string, number>();
  private bytes = 0;
  private readonly counters = { created: 0, hits: 0, evicted: 0 };

  constructor(
    private readonly maxBytes: number,
    private readonly waitMs = CREATION_WAIT_MS,
  ) {}

  /** Returns the session for `sha256`, creating it from `load()` once if it is not cached. */
  async get(sha256: string, sizeBytes: number, load: () => Promise<Uint8Array>): Promise<LoadedModel> {
    const hit = this.hit(sha256);
    if (hit) return hit;
    // Workers clocks move across I/O; each poll is a timer, so Date.now() advances between checks.
    for (let since = this.creating.get(sha256); since !== undefined && Date.now() - since < this.waitMs; since = this.creating.get(sha256)) {
      await new Promise((resolve) => setTimeout(resolve, CREATION_POLL_MS));
      const ready = this.hit(sha256);
      if (ready) return ready;
    }
    const mine = Date.now();
    this.creating.set(sha256, mine);
    try {
      this.counters.created++;
      const bytes = await load();
      const { model, release } = await createLoadedModel(sha256, bytes);
      const raced = this.entries.get(sha256); // a request that gave up waiting on us finished first
      if (raced) {
        void release().catch(() => undefined);
        return raced.model;
      }
      this.entries.set(sha256, { model, sizeBytes, release });
      this.bytes += sizeBytes;
      this.evict(sha256);
      return model;
    } finally {
      if (this.creating.get(sha256) === mine) this.creating.delete(sha256);
    }
  }

  stats(): SessionCacheStats {
    return { ...this.counters, entries: this.entries.size, bytes: this.bytes };
  }

  private hit(sha256: string): LoadedModel | undefined {
    const hit = this.entries.get(sha256);
    if (!hit) return undefined;
    this.counters.hits++;
    this.entries.delete(sha256); // re-insert: Map order is the LRU order
    this.entries.set(sha256, hit);
    return hit.model;
  }

  private evict(keep: string) {
    for (const [sha, entry] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      if (sha === keep) continue;
      this.entries.delete(sha);
      this.bytes -= entry.sizeBytes;
      this.counters.evicted++;
      // Released after its queued runs finish; never blocks the caller.
      void entry.release().catch(() => undefined);
    }
  }
}
