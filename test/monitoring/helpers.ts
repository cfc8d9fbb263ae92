/** Shared helpers for monitoring tests. */
import { expect } from "vitest";
import { call } from "../support/api";

/** Polls `check` until it stops throwing (monitoring data arrives from waitUntil, asynchronously). */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Sends rows as single-row predictions with known request ids; returns the served scores. */
export async function predictRows(model: string, rows: Record<string, unknown>[], idPrefix: string, extra: Record<string, unknown> = {}): Promise<{ id: string; score: number }[]> {
  const out: { id: string; score: number }[] = [];
  for (let i = 0; i < rows.length; i++) {
    const res = await call("POST", `/v1/models/${model}/predict`, { features: rows[i], ...extra }, { "x-request-id": `${idPrefix}-${i}` });
    expect(res.status, res.text).toBe(200);
    // Feedback takes the server's id (the caller's x-request-id is only a correlation id).
    out.push({ id: res.json.request_id, score: res.json.prediction.score });
  }
  return out;
}
