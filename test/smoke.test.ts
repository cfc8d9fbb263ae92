import { env } from "cloudflare:test";
import { expect, it } from "vitest";
import { getOrt } from "../src/inference/ort";

it("runs onnx in workerd", async () => {
  const ort = await getOrt();
  const bytes = new Uint8Array(await (await env.TEST_FILES.fetch("http://files/test/fixtures/sig.onnx")).arrayBuffer());
  const s = await ort.InferenceSession.create(bytes);
  console.log(s.inputNames, s.outputNames, JSON.stringify(s.inputMetadata));
  const out = await s.run({ x: new ort.Tensor("float32", new Float32Array([0, 1]), [1, 2]) });
  expect(Array.from(out.y.data as Float32Array)[0]).toBeCloseTo(0.5);
});
