/** Shared helpers for retraining tests: models, traffic with labels, the trainer relay, job polling. */
import { env, SELF } from "cloudflare:test";
import { expect } from "vitest";
import { ADMIN, call, registerStem } from "../support/api";
import { repoJson } from "../support/files";
import { TEST_TRAINER_SECRET } from "../support/trainer-service";
import { eventually } from "../monitoring/helpers";

export { eventually };
export type HoldoutRow = { features: Record<string, unknown>; label: number };

export async function holdout(): Promise<HoldoutRow[]> {
  return (await repoJson("models/credit-risk-holdout.json")).rows;
}

export function configBody(overrides: Record<string, unknown> = {}) {
  return {
    trainer_url: "https://trainer.test/train",
    trainer_secret: TEST_TRAINER_SECRET,
    worker_url: "https://worker.test",
    sample_rate: 1,
    cooldown_minutes: 0,
    validation: { min_oot_samples: 60, min_improvement: 0 },
    release: { steps: [50, 100], step_minutes: 0 },
    watch: { hours: 1, min_labels: 40, alpha: 0.01 },
    ...overrides,
  };
}

/** Registers the demo LR as `model`@1.0.0 champion and configures retraining for it. */
export async function setupModel(model: string, overrides: Record<string, unknown> = {}) {
  const reg = await registerStem("models", "credit-risk-lr", ["champion"], { name: model });
  expect(reg.status, JSON.stringify(reg.json)).toBe(201);
  const cfg = await call("PUT", `/admin/retraining/${model}/config`, configBody(overrides), ADMIN);
  expect(cfg.status, cfg.text).toBe(200);
}

/**
 * Predicts `rows` (100 per request) and reports `label(row)` for each as
 * feedback by the server's request ids until every label is joined (a label whose prediction is
 * not logged yet is `pending`; sent again it is `duplicate` once the log has joined it).
 */
export async function trafficWithLabels(model: string, rows: HoldoutRow[], label: (r: HoldoutRow) => number, prefix: string, extra: Record<string, unknown> = {}) {
  const feedback: { request_id: string; row: number; actual: number }[] = [];
  for (let i = 0; i < rows.length; i += 100) {
    const chunk = rows.slice(i, i + 100);
    const res = await call("POST", `/v1/models/${model}/predict`, { instances: chunk.map((r) => r.features), ...extra }, { "x-request-id": `${prefix}-${i}` });
    expect(res.status, res.text).toBe(200);
    // Labels join by the server's request id (the caller's x-request-id is only a correlation id).
    const id = res.json.request_id as string;
    expect(id).toBeTruthy();
    chunk.forEach((r, k) => feedback.push({ request_id: id, row: k, actual: label(r) }));
  }
  let remaining = feedback;
  await eventually(async () => {
    const missing = new Set<string>();
    for (let i = 0; i < remaining.length; i += 1000) {
      const res = await call("POST", "/v1/feedback", { model, feedback: remaining.slice(i, i + 1000) });
      expect(res.status, res.text).toBe(200);
      // Not joined yet: `not_found` (send again) or `pending` (kept; joined when the prediction is logged).
      for (const n of [...res.json.not_found, ...res.json.pending] as { request_id: string; row: number }[]) missing.add(`${n.request_id}#${n.row}`);
    }
    remaining = remaining.filter((f) => missing.has(`${f.request_id}#${f.row}`));
    expect(remaining).toHaveLength(0);
  }, 20_000);
}

/** Waits until the payload archive holds at least `n` objects for the model. */
export async function archived(model: string, n: number) {
  await eventually(async () => {
    const list = await env.ARTIFACTS.list({ prefix: `retraining/archive/${model}/` });
    expect(list.objects.length).toBeGreaterThanOrEqual(n);
  }, 20_000);
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
function fromBase64(b64: string): Uint8Array {
  const s = atob(b64);
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** Carries the trainer's waiting requests to the worker and the answers back (see trainer-service.ts). */
export async function relayTrainer(): Promise<number> {
  const out = (await (await env.TEST_TRAINER.fetch("http://trainer/_outbox")).json()) as { requests: { id: number; method: string; url: string; headers: Record<string, string>; body: string }[] };
  for (const r of out.requests) {
    const body = fromBase64(r.body);
    const res = await SELF.fetch(r.url, { method: r.method, headers: r.headers, body: r.method === "GET" ? undefined : body });
    const bytes = new Uint8Array(await res.arrayBuffer());
    await env.TEST_TRAINER.fetch(`http://trainer/_reply/${r.id}`, { method: "POST", body: JSON.stringify({ status: res.status, headers: Object.fromEntries(res.headers), body: toBase64(bytes) }) });
  }
  return out.requests.length;
}

export async function job(id: string) {
  const res = await call("GET", `/admin/retraining/jobs/${id}`, undefined, ADMIN);
  expect(res.status, res.text).toBe(200);
  return res.json as { job: Record<string, any>; events: { action: string; from: string | null; to: string; details: Record<string, any> }[] };
}

/** Relays trainer traffic until the job reaches one of `states`. */
export async function untilState(id: string, states: string[], timeoutMs = 240_000) {
  return eventually(async () => {
    await new Promise((r) => setTimeout(r, 300)); // poll gently: admin routes are rate limited
    await relayTrainer();
    const j = await job(id);
    expect(states, `job is ${j.job.state}: ${JSON.stringify(j.events.map((e) => e.action))} ${j.job.error ?? ""}`).toContain(j.job.state);
    return j;
  }, timeoutMs);
}
