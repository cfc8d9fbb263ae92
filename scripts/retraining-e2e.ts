/**
 * The retraining loop with real processes on loopback: a running worker (`npm start`, default
 * http://127.0.0.1:8787, WORKER_URL to change) and the reference trainer (`npm run trainer`, default
 * http://127.0.0.1:8817, TRAINER_URL), both with the same TRAINER_SECRET.
 *
 * It configures retraining for the demo model, sends the holdout rows as traffic with labels from a
 * changed world (the outcome now follows Age > 40), starts a manual job and prints the job's states
 * until it is final. Run: npm run e2e:retraining
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./lib/dev-server.ts";

const W = process.env.WORKER_URL ?? "http://127.0.0.1:8787";
const T = process.env.TRAINER_URL ?? "http://127.0.0.1:8817";
const SECRET = process.env.TRAINER_SECRET;
if (!SECRET) throw new Error("set TRAINER_SECRET (the same value the trainer runs with, at least 32 characters)");
const MODEL = process.env.MODEL ?? "credit-risk";
const token = /ADMIN_TOKEN=(.*)/.exec(readFileSync(join(ROOT, ".dev.vars"), "utf8"))![1].trim();
const admin = { authorization: `Bearer ${token}`, "content-type": "application/json" };

async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = admin) {
  const res = await fetch(`${W}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = (await res.json().catch(() => null)) as any;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

const rows = (JSON.parse(readFileSync(join(ROOT, "models/credit-risk-holdout.json"), "utf8")).rows as { features: Record<string, unknown> }[]);
await api("PUT", `/admin/retraining/${MODEL}/config`, {
  trainer_url: `${T}/train`,
  trainer_secret: SECRET,
  worker_url: W,
  sample_rate: 1,
  validation: { min_oot_samples: 60, min_improvement: 0 },
  release: { steps: [50, 100], step_minutes: 1 },
});
const run = `e2e-${Date.now()}`;
const feedback: { request_id: string; row: number; actual: number }[] = [];
for (let i = 0; i < rows.length; i += 100) {
  // Labels name the server's request id (the answer's request_id): a caller's x-request-id is a
  // correlation id only, never joined (README, "Feedback").
  const res = await fetch(`${W}/v1/models/${MODEL}/predict`, { method: "POST", headers: { "content-type": "application/json", "x-request-id": `${run}-${i}` }, body: JSON.stringify({ instances: rows.slice(i, i + 100).map((r) => r.features) }) });
  if (!res.ok) throw new Error(`predict answered ${res.status}: ${await res.text()}`);
  const id = ((await res.json()) as { request_id: string }).request_id;
  rows.slice(i, i + 100).forEach((r, k) => feedback.push({ request_id: id, row: k, actual: Number(r.features.Age) > 40 ? 1 : 0 }));
}
await new Promise((r) => setTimeout(r, 3000)); // monitoring flushes the prediction log every 2 s
const joined = await api("POST", "/v1/feedback", { model: MODEL, feedback }, { "content-type": "application/json" });
console.log(`traffic: ${rows.length} rows, ${joined.joined} labels joined`);
if (!joined.joined) throw new Error("no label joined a prediction: the export would be empty and the trainer would fail");
console.log("waiting for the payload archive to flush (RETRAINING_ARCHIVE_FLUSH_MS, 60 s by default)...");
await new Promise((r) => setTimeout(r, Number(process.env.ARCHIVE_WAIT_MS ?? 65_000)));
// One more request makes each isolate that holds a buffer older than the flush interval write it.
await fetch(`${W}/v1/models/${MODEL}/predict`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ features: rows[0].features }) });
await api("POST", "/v1/feedback", { model: MODEL, feedback: feedback.slice(0, 1) }, { "content-type": "application/json" }).catch(() => undefined);
await new Promise((r) => setTimeout(r, 2000));
const started = await api("POST", `/admin/retraining/${MODEL}/jobs`, { reason: "e2e: outcome shifted to age" });
const id = started.job.id as string;
let last = "";
for (let i = 0; i < 600; i++) {
  const j = await api("GET", `/admin/retraining/jobs/${id}`);
  const path = j.events.filter((e: any) => e.from !== e.to).map((e: any) => e.to).join(" -> ");
  if (path !== last) console.log(`${new Date().toISOString()}  ${path}${j.job.error ? `  (${j.job.error})` : ""}`);
  last = path;
  if (["promoted", "rejected", "failed", "rolled_back", "cancelled"].includes(j.job.state)) {
    console.log(JSON.stringify({ job: j.job, export: j.job.export }, null, 2));
    if (j.job.state !== "failed") console.log(JSON.stringify((await api("GET", `/admin/retraining/jobs/${id}/report`)).report, null, 2));
    break;
  }
  await new Promise((r) => setTimeout(r, 1000));
}
