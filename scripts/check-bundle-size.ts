/**
 * `npm run check:bundle`: builds the real Worker bundle (`wrangler deploy --dry-run`) and fails when
 * its gzip size exceeds the Workers Paid plan's 10 MB compressed limit. The onnxruntime-web WASM
 * binary is most of the bundle (about 3.6 MB gzip), which is why the Free plan's 3 MB limit cannot
 * hold this Worker.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const LIMIT_KIB = 10 * 1024; // Paid plan: 10 MB after compression
const FREE_KIB = 3 * 1024;

const run = spawnSync(process.execPath, [path.join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "deploy", "--dry-run", "--outdir", "dist"], {
  cwd: ROOT,
  encoding: "utf8",
  env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false" },
});
const output = `${run.stdout}\n${run.stderr}`;
const match = /Total Upload:\s*([\d.]+)\s*KiB\s*\/\s*gzip:\s*([\d.]+)\s*KiB/.exec(output);
if (run.status !== 0 || !match) {
  console.error(output);
  console.error("bundle check: wrangler deploy --dry-run failed or printed no size");
  process.exit(1);
}
const [raw, gzip] = [Number(match[1]), Number(match[2])];
console.log(`bundle: ${raw.toFixed(0)} KiB raw, ${gzip.toFixed(0)} KiB gzip (Paid plan limit ${LIMIT_KIB} KiB; Free plan ${FREE_KIB} KiB)`);
if (gzip > LIMIT_KIB) {
  console.error(`bundle check FAILED: ${gzip} KiB gzip exceeds the ${LIMIT_KIB} KiB limit`);
  process.exit(1);
}
console.log(gzip > FREE_KIB ? "bundle check passed (needs the Workers Paid plan)" : "bundle check passed (fits the Free plan)");
