/**
 * onnxruntime-web's WASM backend, started inside workerd.
 *
 * Workers refuse to compile WebAssembly from bytes, so the runtime's .wasm is imported as an ES
 * module (wrangler's default `CompiledWasm` rule) and arrives already compiled. onnxruntime-web only
 * accepts bytes or URLs, and its emscripten glue calls `WebAssembly.instantiate(bytes, imports)`
 * once. We hand it a placeholder `wasmBinary`, and for the duration of that one call route
 * `WebAssembly.instantiate` on the placeholder to the precompiled Module. Everything else is left to
 * onnxruntime-web. One thread (Workers have no threads); no proxy worker.
 *
 * The promise is per isolate and shared: concurrent first requests wait on the same start-up.
 */
import * as ort from "onnxruntime-web/wasm";
import ortWasmModule from "onnxruntime-web/ort-wasm-simd-threaded.wasm";
import { encodeModel } from "./onnx-model";

let ready: Promise<typeof ort> | undefined;
/** The runtime's linear memory: it grows with the largest tensors and sessions ever held, and never shrinks. */
let memory: WebAssembly.Memory | undefined;

/** Bytes of onnxruntime's WASM linear memory in this isolate (0 before start-up). */
export function ortMemoryBytes(): number {
  return memory?.buffer.byteLength ?? 0;
}

function findMemory(...namespaces: (object | undefined)[]): WebAssembly.Memory | undefined {
  for (const ns of namespaces) {
    for (const value of Object.values(ns ?? {})) {
      if (value instanceof WebAssembly.Memory) return value;
      if (value && typeof value === "object" && !(value instanceof WebAssembly.Module)) {
        const inner = Object.values(value).find((v) => v instanceof WebAssembly.Memory);
        if (inner) return inner as WebAssembly.Memory;
      }
    }
  }
  return undefined;
}

/** Starts the WASM runtime once per isolate and returns the onnxruntime-web namespace. */
export function getOrt(): Promise<typeof ort> {
  ready ??= start().catch((error) => {
    ready = undefined; // let the next request retry a failed start
    throw error;
  });
  return ready;
}

// onnxruntime-web copies `wasmBinary` before handing it to emscripten, so the placeholder is
// recognised by content. It is not a WebAssembly binary (those start with "\0asm").
const PLACEHOLDER = "edge-ml:precompiled-ort-wasm";

function isPlaceholder(source: unknown): boolean {
  if (!ArrayBuffer.isView(source) || source.byteLength !== PLACEHOLDER.length) return false;
  const bytes = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  return new TextDecoder().decode(bytes) === PLACEHOLDER;
}

async function start(): Promise<typeof ort> {
  const placeholder = new TextEncoder().encode(PLACEHOLDER);
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmBinary = placeholder;
  ort.env.logLevel = "error";

  const original = WebAssembly.instantiate;
  const patched = function (source: unknown, imports?: WebAssembly.Imports) {
    if (isPlaceholder(source)) {
      return original(ortWasmModule, imports).then((instance) => {
        memory = findMemory(instance.exports, imports);
        return { instance, module: ortWasmModule };
      });
    }
    return (original as (s: unknown, i?: WebAssembly.Imports) => Promise<unknown>)(source, imports);
  };
  (WebAssembly as { instantiate: unknown }).instantiate = patched;
  try {
    await initBackend();
  } finally {
    (WebAssembly as { instantiate: unknown }).instantiate = original;
  }
  return ort;
}

/**
 * onnxruntime-web initialises its backend lazily on the first `InferenceSession.create`. To keep the
 * instantiate hook scoped to start-up, we force that initialisation here with the smallest valid
 * model (Identity on a float scalar) and drop the session.
 */
async function initBackend(): Promise<void> {
  const session = await ort.InferenceSession.create(IDENTITY_MODEL, { executionProviders: ["wasm"] });
  await session.release();
}

// y = Identity(x), x: float[1]; built with the same ONNX writer the registry uses.
const IDENTITY_MODEL = encodeModel({
  irVersion: 8,
  opsetImport: [{ domain: "", version: 13 }],
  graph: {
    name: "warmup",
    node: [{ opType: "Identity", input: ["x"], output: ["y"] }],
    input: [{ name: "x", type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }] } } } }],
    output: [{ name: "y", type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }] } } } }],
  },
});
