/** Shared set-up for deployment tests: demo model versions under a test-specific name, the stored test set, predictions. */
import { expect } from "vitest";
import { ADMIN, call, registerStem } from "../support/api";
import { repoJson } from "../support/files";

/** Registers credit-risk-lr as 1.0.0 (champion) and credit-risk-gbt as 1.1.0 under `name`. */
export async function setupModel(name: string, extra: { stem: string; version: string }[] = []) {
  expect((await registerStem("models", "credit-risk-lr", ["champion"], { name })).status).toBe(201);
  expect((await registerStem("models", "credit-risk-gbt", [], { name })).status).toBe(201);
  for (const e of extra) expect((await registerStem("models", e.stem, [], { name, version: e.version })).status).toBe(201);
}

let holdout: { rows: { features: Record<string, unknown>; label: number }[] } | undefined;
export async function holdoutSet() {
  holdout ??= await repoJson("models/credit-risk-holdout.json");
  return holdout!;
}

export async function storeTestSet(model: string) {
  const set = await holdoutSet();
  const res = await call("PUT", `/admin/deployments/test-sets/${model}`, { rows: set.rows }, ADMIN);
  expect(res.status, res.text).toBe(200);
}

/** Admin deployments API; "/" and "/?query" address the collection itself (/admin/deployments). */
export const admin = (method: string, path: string, body?: unknown) =>
  call(method, `/admin/deployments${path === "/" ? "" : path.startsWith("/?") ? path.slice(1) : path}`, body, ADMIN);

export async function createValidated(body: Record<string, unknown>) {
  const created = await admin("POST", "/", body);
  expect(created.status, created.text).toBe(201);
  const id = created.json.deployment.id as string;
  const validated = await admin("POST", `/${id}/validate`, {});
  expect(validated.status, validated.text).toBe(200);
  expect(validated.json.report.passed, JSON.stringify(validated.json.report)).toBe(true);
  return id;
}

export async function createStarted(body: Record<string, unknown>) {
  const id = await createValidated(body);
  const started = await admin("POST", `/${id}/start`, { reason: "test" });
  expect(started.status, started.text).toBe(200);
  return id;
}

/** One prediction with a holdout row; returns status, variant, version, headers. */
export async function predict(model: string, opts: { unit?: string; headers?: Record<string, string>; row?: number } = {}) {
  const set = await holdoutSet();
  const features = set.rows[(opts.row ?? 0) % set.rows.length].features;
  const res = await call("POST", `/v1/models/${model}/predict`, { features, ...(opts.unit ? { unit: opts.unit } : {}) }, opts.headers ?? {});
  return { ...res, variant: res.json?.variant as string | undefined, version: res.json?.version as string | undefined };
}

export async function until<T>(probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}
