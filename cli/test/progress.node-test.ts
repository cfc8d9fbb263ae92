/**
 * The upload progress bar (cli/progress.ts) and the streamed upload behind it (Api.sendBlob), against
 * a local HTTP server in this test that reads slowly: the byte counts reported are monotone, end at
 * the body's size, and follow what the server takes (the client never reports the whole body while
 * the server has read less than half of it; socket buffers hold far less than the 24 MiB sent).
 * The bar's drawing is checked with an injected clock: a redrawn bar on a terminal, a plain line per
 * tenth otherwise, nothing with --quiet. `eml register` uploads through the same path. No timing
 * assertions.
 * (*.node-test.ts: run by `node --test`, not by vitest.)
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Api } from "../api.ts";
import type { Config } from "../config.ts";
import { ProgressBar } from "../progress.ts";
import { register } from "../verbs/register.ts";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
/** An ephemeral port unless PROGRESS_TEST_PORT is set (a fixed port can clash with other servers). */
let PORT = Number(process.env.PROGRESS_TEST_PORT ?? 0);
let server: Server;
/** What the client had reported when the server got each chunk: [server bytes so far, client bytes so far]. */
let observed: [number, number][] = [];
let clientSent = 0;
let last: { headers: IncomingMessage["headers"]; body: Buffer } | undefined;

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let received = 0;
    req.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      observed.push([received, clientSent]);
      // Read slowly: a pause after every chunk.
      req.pause();
      setTimeout(() => req.resume(), 2);
    });
    req.on("end", () => {
      last = { headers: req.headers, body: Buffer.concat(chunks) };
      res.writeHead(201, { "content-type": "application/json" });
      res.end(JSON.stringify({ received }));
    });
  });
  await new Promise<void>((resolve) => server.listen(PORT, "127.0.0.1", resolve));
  PORT = (server.address() as { port: number }).port;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

const config = (): Config => ({ url: `http://127.0.0.1:${PORT}`, token: "t0k3n", source: { url: "test", token: "test" } });
const api = () => new Api(config());

test("a streamed upload reports monotone byte counts that end at the size and follow the slow reader", async () => {
  const size = 24 * 1024 * 1024 + 123;
  const body = new Blob([new Uint8Array(size).map((_, i) => i % 251)]);
  observed = [];
  clientSent = 0;
  const reports: [number, number][] = [];
  const res = await api().sendBlob<{ received: number }>("POST", "/upload", body, "application/octet-stream", (sent, total) => {
    reports.push([sent, total]);
    clientSent = sent;
  });
  assert.equal(res.received, size);
  assert.equal(last!.headers["content-length"], String(size));
  assert.equal(last!.headers.authorization, "Bearer t0k3n");
  assert.ok(last!.body.equals(Buffer.from(await body.arrayBuffer())), "the server got the exact bytes");
  assert.ok(reports.length > 10, `${reports.length} reports`);
  for (let i = 1; i < reports.length; i++) assert.ok(reports[i][0] > reports[i - 1][0], `monotone at ${i}`);
  assert.ok(reports.every(([, total]) => total === size));
  assert.equal(reports.at(-1)![0], size);
  // Backpressure: while the server had read less than half, the client had not reported everything.
  const early = observed.filter(([server]) => server < size / 2);
  assert.ok(early.length > 0);
  assert.ok(early.every(([, client]) => client < size), "the count follows the bytes the connection takes");
});

test("the bar: redrawn in place on a terminal, a line per tenth otherwise, nothing with --quiet", () => {
  let t = 0;
  const out: string[] = [];
  const tty = new ProgressBar(4 * 1024 * 1024, { tty: true, write: (s) => out.push(s), now: () => t, label: "uploading" });
  t = 1000;
  tty.update(1024 * 1024);
  t = 1050; // within the redraw interval: not drawn
  tty.update(1024 * 1024 + 10);
  t = 2000;
  tty.update(2 * 1024 * 1024);
  t = 2001; // the last update is always drawn
  tty.update(4 * 1024 * 1024);
  tty.finish();
  assert.deepEqual(out, [
    "\ruploading [######..................] 1.0 MiB / 4.0 MiB   25%  1.0 MiB/s  ETA 3s\x1b[K",
    "\ruploading [############............] 2.0 MiB / 4.0 MiB   50%  1.0 MiB/s  ETA 2s\x1b[K",
    "\ruploading [########################] 4.0 MiB / 4.0 MiB  100%  2.0 MiB/s  done\x1b[K",
    "\n",
  ]);

  const lines: string[] = [];
  t = 0;
  const plain = new ProgressBar(1000, { tty: false, write: (s) => lines.push(s), now: () => t });
  for (let sent = 7; sent <= 1000; sent += 7) {
    t += 10;
    plain.update(sent);
  }
  plain.update(1000);
  plain.update(500); // a smaller count is ignored
  plain.finish();
  assert.equal(lines.length, 10);
  assert.ok(lines.every((l) => l.endsWith("\n") && !l.includes("\r")));
  assert.match(lines[0], /^uploading 105 B \/ 1000 B +10%  /);
  assert.match(lines[9], /^uploading 1000 B \/ 1000 B  100%  .* done\n$/);

  const quiet: string[] = [];
  const q = new ProgressBar(10, { quiet: true, tty: true, write: (s) => quiet.push(s) });
  q.update(5);
  q.update(10);
  q.finish();
  assert.deepEqual(quiet, []);
});

test("eml register uploads manifest and artifact through the streamed upload", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "eml-progress-"));
  const onnx = path.join(ROOT, "test/fixtures/onnx/lr-gemm-sigmoid.onnx");
  const logs: string[] = [];
  await register(
    config(),
    onnx,
    { data: path.join(ROOT, "test/fixtures/onnx/lr-gemm-sigmoid.train.csv"), label: "label", name: "progress-test", version: "1.0.0", out: path.join(dir, "m.json"), quiet: true, alias: ["champion"] },
    (s) => logs.push(s),
  );
  assert.equal(last!.headers["content-length"], String(last!.body.length));
  assert.equal(last!.headers["x-actor"], "eml-cli");
  const form = await new Request("http://x/", { method: "POST", headers: { "content-type": last!.headers["content-type"]! }, body: last!.body }).formData();
  assert.deepEqual(new Uint8Array(await (form.get("artifact") as Blob).arrayBuffer()), new Uint8Array(readFileSync(onnx)));
  assert.deepEqual(JSON.parse(form.get("manifest") as string), JSON.parse(readFileSync(path.join(dir, "m.json"), "utf8")));
  assert.deepEqual(form.getAll("alias"), ["champion"]);
  assert.match(logs.at(-1)!, /^registered progress-test@1\.0\.0 as champion$/);
});
