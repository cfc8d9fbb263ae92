/**
 * Per-isolate cache of onnxruntime-web sessions, keyed by artifact sha256.
 *
 * - Single flight: concurrent first requests for one artifact share one creation promise, so an
 *   isolate creates each session once.
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
  promise: Promise<LoadedModel>;
  sizeBytes: number;
  release?: () => Promise<void>;
}

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
  private bytes = 0;
  private readonly counters = { created: 0, hits: 0, evicted: 0 };

  constructor(private readonly maxBytes: number) {}

  /** Returns the session for `sha256`, creating it from `load()` once if it is not cached. */
  get(sha256: string, sizeBytes: number, load: () => Promise<Uint8Array>): Promise<LoadedModel> {
    const hit = this.entries.get(sha256);
    if (hit) {
      this.counters.hits++;
      this.entries.delete(sha256); // re-insert: Map order is the LRU order
      this.entries.set(sha256, hit);
      return hit.promise;
    }
    const entry: Entry = { sizeBytes, promise: undefined as never };
    entry.promise = (async () => {
      this.counters.created++;
      const bytes = await load();
      const { model, release } = await createLoadedModel(sha256, bytes);
      entry.release = release;
      return model;
    })();
    entry.promise.catch(() => {
      if (this.entries.get(sha256) === entry) this.remove(sha256, entry);
    });
    this.entries.set(sha256, entry);
    this.bytes += sizeBytes;
    this.evict(sha256);
    return entry.promise;
  }

  stats(): SessionCacheStats {
    return { ...this.counters, entries: this.entries.size, bytes: this.bytes };
  }

  private remove(sha256: string, entry: Entry) {
    this.entries.delete(sha256);
    this.bytes -= entry.sizeBytes;
  }

  private evict(keep: string) {
    for (const [sha, entry] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      if (sha === keep) continue;
      this.remove(sha, entry);
      this.counters.evicted++;
      // Release once created and idle; never blocks the caller.
      void entry.promise.then(() => entry.release?.()).catch(() => undefined);
    }
  }
}
