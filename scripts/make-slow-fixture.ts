/**
 * `npm run fixtures:slow`: writes test/fixtures/slow/credit-risk-lr-slow.onnx, the demo logistic
 * regression (models/credit-risk-lr.onnx) with a CPU ballast of 200 256x256 MatMul+Tanh layers
 * (scripts/lib/slow-model.ts): same answers, milliseconds of CPU per row. Registered with the demo
 * model's manifest, it is the slow shadow of the shadow CPU-budget tests. Deterministic.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
import { slowCopy } from "./lib/slow-model.ts";

const out = path.join(ROOT, "test/fixtures/slow/credit-risk-lr-slow.onnx");
writeFileSync(out, slowCopy(readFileSync(path.join(ROOT, "models/credit-risk-lr.onnx")), 200, 256));
console.log(`wrote ${path.relative(ROOT, out)}`);
